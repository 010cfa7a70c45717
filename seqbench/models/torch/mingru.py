"""minGRU, the minimal GRU of "Were RNNs All We Needed?" (Feng et al., 2024, arXiv 2410.01201).

The same function as seqbench/models/numpy/mingru.py. The gate and the candidate
depend on the input only, not on h_{t-1} (section 3.1):

    z_t  = sigmoid(x_t W_z + b_z)                 update gate
    h~_t = x_t W_h + b_h                          candidate state
    h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t

so the recurrence is linear in h and all L states come from one scan over time
(section 3.1.2). The NumPy twin writes that scan as prefix sums in log space,
log(1 - z_t) = -softplus(k_t); here it is a loop of one in-place
h_t = lerp(h_{t-1}, h~_t, z_t) per step inside a custom autograd Function whose
backward is the NumPy one. Measured on CPU (batch 32, hidden 128, one thread, a
training step at L = 20 / 1024): this 1.0 / 81 ms; a generic scan Function 1.7 / 98 ms;
an autograd loop over unbind slices 2.0 / 123 ms; the prefix-sum form 2.6 / 540 ms (in
float32 its chunks restart every few dozen steps, and each restart re-sums the rest).
A layer's state is its last h (B, D): `forward_state` starts the same loop from it, and
`step` is one lerp.

`variant: log_space` (appendix B.3, as minGRU-pytorch): no biases, h~ = g(x W_h) > 0, an output
projection W_out when expansion != 1. B.3.1 computes log h_t by a scan in log space (Heinsen's
log-cumsum-exp), as minGRU-pytorch does with plain autograd; h_t is the same recurrence, so here
it is the same loop and Function as above, with g and its derivative inside. Measured on CPU
(batch 32, hidden 128, one thread, L = 1024): a training step about 6x faster than the log-space
scan; a linear scan over chunks of 16-64 steps (one loop inside all chunks at once, one over the
chunks' ends; no division, so nothing overflows) took 2-4x the loop's time, forward.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from seqbench.models.numpy.mingru import MinGRU as NumpyMinGRU
from seqbench.models.torch.base import TorchStack
from seqbench.models.torch.layers import reverse_scan_steps_


def min_gru_scan(z: torch.Tensor, h_tilde: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """All states h (B, L, D) of h_t = (1 - z_t) h_{t-1} + z_t h~_t from h_{-1} = h0 (None: zeros)."""
    h = torch.empty_like(z)  # (B, L, D)
    hs, zs, h_tildes = h.unbind(1), z.unbind(1), h_tilde.unbind(1)  # (B, D) per step
    if h0 is None:
        torch.mul(zs[0], h_tildes[0], out=hs[0])  # h_{-1} = 0
    else:
        torch.lerp(h0, h_tildes[0], zs[0], out=hs[0])
    for t in range(1, len(hs)):
        torch.lerp(hs[t - 1], h_tildes[t], zs[t], out=hs[t])  # (1 - z) h_{t-1} + z h~
    return h


class _MinGRUScan(torch.autograd.Function):
    """Gate pre-activations and candidates (B, L, 2D) = [k, a] -> all states h (B, L, D), h~ = a, or
    h~ = g(a) > 0 when `positive` (appendix B.3)."""

    @staticmethod
    def forward(ctx, kh: torch.Tensor, positive: bool = False) -> torch.Tensor:
        D = kh.shape[-1] // 2
        k, a = kh[..., :D], kh[..., D:]  # (B, L, D) each
        z = torch.sigmoid(k)  # (B, L, D)
        h_tilde = g(a) if positive else a  # (B, L, D)
        h = min_gru_scan(z, h_tilde)  # (B, L, D)
        ctx.positive = positive
        ctx.save_for_backward(z, a, h_tilde, h)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, dh: torch.Tensor) -> tuple[torch.Tensor, None]:
        """g_t = dh_t + (1 - z_{t+1}) g_{t+1};  dh~ = g z;  dk = g (h~ - h_{t-1}) z (1 - z);
        da = dh~ g'(a) for h~ = g(a), else dh~."""
        z, a, h_tilde, h = ctx.saved_tensors
        B, L, D = z.shape
        one_minus_z = 1 - z  # (B, L, D) the decay a_t
        grad = reverse_scan_steps_(one_minus_z, dh.clone(memory_format=torch.contiguous_format), dim=1)
        dkh = torch.empty(B, L, 2 * D, dtype=z.dtype, device=z.device)
        dk, da = dkh[..., :D], dkh[..., D:]  # (B, L, D) each
        torch.mul(grad, z, out=da)  # dh~
        dk[:, 0] = h_tilde[:, 0]  # h~ - h_{t-1}, with h_{-1} = 0
        torch.sub(h_tilde[:, 1:], h[:, :-1], out=dk[:, 1:])
        dk.mul_(da).mul_(one_minus_z)
        if ctx.positive:
            da.mul_(g_grad(a))
        return dkh, None


class MinGRULayer(nn.Module):
    """One minGRU layer: x (B, L, F) -> h (B, L, D)."""

    def __init__(self, input_size: int, hidden_size: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.W_z = nn.Parameter(torch.empty(input_size, hidden_size, dtype=dtype))
        self.b_z = nn.Parameter(torch.empty(hidden_size, dtype=dtype))
        self.W_h = nn.Parameter(torch.empty(input_size, hidden_size, dtype=dtype))
        self.b_h = nn.Parameter(torch.empty(hidden_size, dtype=dtype))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, F) -> [k, h~] (B, L, 2D), the gate pre-activations and candidates of every step."""
        B, L, F = x.shape
        D = self.b_z.shape[0]
        W = torch.cat([self.W_z, self.W_h], dim=1)  # (F, 2D): both projections in one product
        b = torch.cat([self.b_z, self.b_h])  # (2D,)
        return torch.addmm(b, x.reshape(B * L, F), W).view(B, L, 2 * D)  # (B, L, 2D) [k, h~]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _MinGRUScan.apply(self.project(x))  # (B, L, D)

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return self.b_z.new_zeros(batch_size, self.b_z.shape[0])  # h (B, D)

    def forward_state(self, x: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, L, F) from the state h0 (B, D) -> h (B, L, D) and the last state (B, D); no autograd."""
        k, h_tilde = self.project(x).chunk(2, dim=-1)  # (B, L, D) each
        h = min_gru_scan(torch.sigmoid(k), h_tilde, h0)  # (B, L, D)
        return h, h[:, -1].clone()

    def step(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h_t = (1 - z_t) h_{t-1} + z_t h~_t once: x (B, F), h (B, D) -> h_t (B, D), output and state."""
        z = torch.sigmoid(torch.addmm(self.b_z, x, self.W_z))  # (B, D)
        h = torch.lerp(h, torch.addmm(self.b_h, x, self.W_h), z)  # (B, D)
        return h, h


def g(a: torch.Tensor) -> torch.Tensor:
    """Appendix B.3's positive activation: a + 1/2 for a >= 0, sigmoid(a) below, written
    sigmoid(min(a, 0)) + max(a, 0) (the same numbers; torch.where measured 4x slower on CPU)."""
    return a.clamp(max=0).sigmoid_().add_(a.clamp(min=0))


def g_grad(a: torch.Tensor) -> torch.Tensor:
    """dg/da: 1 for a >= 0, s (1 - s) below with s = sigmoid(a), as s (1 - s) + [a >= 0] (1 - s (1 - s))
    (at a >= 0, s = sigmoid(0) and the sum is exactly 1)."""
    s = a.clamp(max=0).sigmoid_()  # sigmoid(min(a, 0))
    step = torch.ge(a, 0, out=torch.empty_like(a))  # [a >= 0] as 0. / 1.
    return torch.addcmul(s, s, s, value=-1).lerp_(torch.ones_like(s[..., :1]), step)


class MinGRULogSpaceLayer(nn.Module):
    """One minGRU layer of appendix B.3: x (B, L, F) -> y (B, L, D), the state h (B, L, ED) > 0."""

    def __init__(self, input_size: int, hidden_size: int, inner: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.W_z = nn.Parameter(torch.empty(input_size, inner, dtype=dtype))
        self.W_h = nn.Parameter(torch.empty(input_size, inner, dtype=dtype))
        self.W_out = (
            nn.Parameter(torch.empty(inner, hidden_size, dtype=dtype)) if inner != hidden_size else None
        )

    def out(self, h: torch.Tensor) -> torch.Tensor:
        return h if self.W_out is None else h @ self.W_out  # (..., D)

    def states(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, L, F) -> h (B, L, ED), from h_{-1} = h0 (B, ED) (None: zeros; a given h0: no autograd)."""
        B, L, F = x.shape
        W = torch.cat([self.W_z, self.W_h], dim=1)  # (F, 2ED): both projections in one product
        kh = (x.reshape(B * L, F) @ W).view(B, L, -1)  # (B, L, 2ED) [k, a]
        if h0 is None:
            return _MinGRUScan.apply(kh, True)  # (B, L, ED)
        k, a = kh.chunk(2, dim=-1)  # (B, L, ED) each
        return min_gru_scan(torch.sigmoid(k), g(a), h0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.states(x))  # (B, L, D)

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return self.W_z.new_zeros(batch_size, self.W_z.shape[1])  # h (B, ED)

    def forward_state(self, x: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, L, F) from the state h0 (B, ED) -> y (B, L, D) and the last state (B, ED)."""
        with torch.no_grad():
            h = self.states(x, h0)  # (B, L, ED)
        return self.out(h), h[:, -1].clone()

    def step(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: x (B, F), h (B, ED) -> y_t (B, D) and h_t (B, ED)."""
        h = torch.lerp(h, g(x @ self.W_h), torch.sigmoid(x @ self.W_z))  # (B, ED)
        return self.out(h), h


class MinGRU(TorchStack):
    """A stack of minGRU layers with a linear head on the last state."""

    numpy_class = NumpyMinGRU
    options = NumpyMinGRU.options

    def make_layer(self, input_size: int, hidden_size: int) -> nn.Module:
        if self.variant == "log_space":
            inner = int(hidden_size * self.expansion)
            return MinGRULogSpaceLayer(input_size, hidden_size, inner, self.dtype)
        return MinGRULayer(input_size, hidden_size, self.dtype)
