"""The classic GRU cell (Cho et al., 2014), in the gate order and form of torch.nn.GRU.

The same function as seqbench/models/numpy/gru.py:

    r_t = sigmoid(x_t W_xr + b_xr + h_{t-1} W_hr + b_hr)      reset gate
    z_t = sigmoid(x_t W_xz + b_xz + h_{t-1} W_hz + b_hz)      update gate
    n_t = tanh(x_t W_xn + b_xn + r_t * (h_{t-1} W_hn + b_hn))  candidate
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

W_x (F, 3D) and W_h (D, 3D) hold the r, z, n blocks side by side (torch.nn.GRU's
weight_ih_l0 is W_x transposed, weight_hh_l0 is W_h transposed).

These are torch.nn.GRU's equations, so without autograd (inference, `forward_state`) the
loop over time is torch's own GRU kernel (`gru_fused`), given views of these weights.
To train, the gates depend on h_{t-1}, so time is a loop, here inside a custom autograd
Function whose backward is the NumPy one: everything that does not need the loop is
outside it (the input projections of all steps, the local derivatives of every gate, and
the weight gradients: one matrix product each, where autograd would make one per step),
and each step is five in-place operations forward, three backward. Inside, arrays are
time-major (L, B, .) and each step's slices come from `unbind`. A layer's state is its
last h (B, D): `forward_state` starts torch's kernel from it, and `step` is the cell once.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from seqbench.models.numpy.gru import GRU as NumpyGRU
from seqbench.models.torch.base import TorchStack


def gru_fused(x: torch.Tensor, h0: torch.Tensor, W_x, b_x, W_h, b_h) -> torch.Tensor:
    """The GRU over time by torch's own kernel (torch.nn.GRU's, the same function): x (B, L, F) from
    h_{-1} = h0 (B, D) -> h (B, L, D). Without autograd (its graph has nodes per step).

    The kernel's input and weights are copies in its layouts: time-major x makes its input projection
    one matrix product (a strided x made it a batched product, 15% slower), and weights (3D, .) are
    4% faster than views of ours."""
    weights = [W_x.t().contiguous(), W_h.t().contiguous(), b_x, b_h]  # weight_ih, weight_hh, biases
    x = x.transpose(0, 1).contiguous()  # (L, B, F)
    return torch._VF.gru(x, h0[None], weights, True, 1, 0.0, False, False, False)[0].transpose(0, 1)


def gru_loop(
    x: torch.Tensor, W_x: torch.Tensor, b_x: torch.Tensor, W_h: torch.Tensor, b_h: torch.Tensor, h_all
) -> tuple[torch.Tensor, torch.Tensor]:
    """The GRU over time: x (L, B, F) and h_all (L+1, B, D) holding h_{-1} in row 0 -> h_all filled in,
    and what backward needs: rzh (L, B, 3D) = [r, z, h_{t-1} W_hn + b_hn] and n (L, B, D).

    Each step is one in-place product h_{t-1} W_h added to [x W_xr + b_r, x W_xz + b_z, b_hn]
    (b_r = b_xr + b_hr, b_z = b_xz + b_hz), then sigmoid, tanh and lerp: five operations.
    """
    L, B, F = x.shape
    D = W_h.shape[0]
    rzh = torch.addmm(b_x, x.reshape(L * B, F), W_x).view(L, B, 3 * D)  # (L, B, 3D) x W_x + b_x
    n = rzh[..., 2 * D :].clone()  # (L, B, D) x W_xn + b_xn, then the candidates, in place
    rzh[..., : 2 * D] += b_h[: 2 * D]  # pre-activations of r and z but h_{t-1} W_h
    rzh[..., 2 * D :] = b_h[2 * D :]  # b_hn; after each step [r, z, hn]
    h_s = h_all.unbind(0)
    for t, (rzh_t, n_t) in enumerate(zip(rzh.unbind(0), n.unbind(0), strict=True)):
        rzh_t.addmm_(h_s[t], W_h)  # (B, 3D) [a_r, a_z, hn]
        rz = rzh_t[:, : 2 * D].sigmoid_()  # (B, 2D) [r, z]
        n_t.addcmul_(rz[:, :D], rzh_t[:, 2 * D :]).tanh_()  # (B, D)
        torch.lerp(n_t, h_s[t], rz[:, D:], out=h_s[t + 1])  # n + z * (h_{t-1} - n)
    return rzh, n


class _GRULayer(torch.autograd.Function):
    """x (L, B, F) time-major, W_x (F, 3D), b_x (3D,), W_h (D, 3D), b_h (3D,) -> h (L, B, D)."""

    @staticmethod
    def forward(ctx, x, W_x, b_x, W_h, b_h):
        L, B, _ = x.shape
        h_all = x.new_zeros(L + 1, B, W_h.shape[0])  # h_{-1} = 0, h_0 .. h_{L-1}
        rzh, n = gru_loop(x, W_x, b_x, W_h, b_h, h_all)
        ctx.save_for_backward(x, W_x, W_h, h_all, rzh, n)
        return h_all[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, dh):
        """With g_t the total gradient of h_t and the local derivatives of every step computed at once,
            dL/d(h_{t-1} W_h + b_h) = g_t [d_n hn r (1 - r), (h_{t-1} - n) z (1 - z), d_n r] = g_t M_t,
            g_{t-1} = dh_{t-1} + g_t z_t + (g_t M_t) W_h^T,      d_n = (1 - z)(1 - n^2),
        a loop of three operations per step; dL/d(x W_x + b_x) is the same but d_n g_t for n."""
        x, W_x, W_h, h_all, rzh, n = ctx.saved_tensors
        L, B, F = x.shape
        D = W_h.shape[0]
        h_prev = h_all[:-1]  # (L, B, D)
        r, z, hn = rzh[..., :D], rzh[..., D : 2 * D], rzh[..., 2 * D :]  # (L, B, D) each
        one_z = 1 - z
        d_n = (1 - n * n).mul_(one_z)  # (L, B, D) dh/da_n through tanh
        M = x.new_empty(L, B, 3, D)  # dh/d(h_{t-1} W_h + b_h) per gate
        torch.mul(d_n, r, out=M[:, :, 2])  # dh/dhn
        torch.mul(M[:, :, 2], hn, out=M[:, :, 0]).mul_(1 - r)  # dh/da_r
        torch.sub(h_prev, n, out=M[:, :, 1]).mul_(z).mul_(one_z)  # dh/da_z
        g = dh.clone(memory_format=torch.contiguous_format)  # (L, B, D) dh, then total gradients g
        d_hp = M  # (L, B, 3, D) dL/d(h_{t-1} W_h + b_h) = g M, in M's memory
        W_h_T = W_h.t()
        g_s, d_hp_s, z_s = g.unbind(0), d_hp.unbind(0), z.unbind(0)
        for t in range(L - 1, -1, -1):
            d_hp_s[t].mul_(g_s[t].unsqueeze(1))  # (B, 3, D)
            if t:
                g_s[t - 1].addmm_(d_hp_s[t].view(B, 3 * D), W_h_T).addcmul_(g_s[t], z_s[t])  # (B, D)
        d_hp2 = d_hp.view(L * B, 3 * D)
        dW_h, db_h = h_prev.reshape(L * B, D).t() @ d_hp2, d_hp2.sum(0)
        torch.mul(g, d_n, out=d_hp[:, :, 2])  # d_hp becomes dL/d(x W_x + b_x), in place
        d_xp2 = d_hp2
        dx = (d_xp2 @ W_x.t()).view(L, B, F) if ctx.needs_input_grad[0] else None
        dW_x = x.reshape(L * B, F).t() @ d_xp2
        return dx, dW_x, d_xp2.sum(0), dW_h, db_h


class GRULayer(nn.Module):
    """One GRU layer: x (B, L, F) -> h (B, L, D)."""

    def __init__(self, input_size: int, hidden_size: int, dtype: torch.dtype) -> None:
        super().__init__()
        D = hidden_size
        self.W_x = nn.Parameter(torch.empty(input_size, 3 * D, dtype=dtype))
        self.b_x = nn.Parameter(torch.empty(3 * D, dtype=dtype))
        self.W_h = nn.Parameter(torch.empty(D, 3 * D, dtype=dtype))
        self.b_h = nn.Parameter(torch.empty(3 * D, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (torch.is_grad_enabled() and (x.requires_grad or self.W_h.requires_grad)):
            return self.forward_state(x, self.initial_state(x.shape[0]))[0]  # torch's kernel
        h = _GRULayer.apply(x.transpose(0, 1), self.W_x, self.b_x, self.W_h, self.b_h)  # (L, B, D)
        return h.transpose(0, 1)  # (B, L, D)

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return self.W_h.new_zeros(batch_size, self.W_h.shape[0])  # h (B, D)

    def forward_state(self, x: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, L, F) from the state h0 (B, D) -> h (B, L, D) and the last state (B, D); no autograd."""
        with torch.no_grad():
            h = gru_fused(x, h0, self.W_x, self.b_x, self.W_h, self.b_h)  # (B, L, D)
        return h, h[:, -1].clone()

    def step(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The cell once: x (B, F), h_{t-1} (B, D) -> h_t (B, D), as output and as the next state."""
        D = self.W_h.shape[0]
        xp = torch.addmm(self.b_x, x, self.W_x)  # (B, 3D)
        hp = torch.addmm(self.b_h, h, self.W_h)  # (B, 3D)
        rz = torch.sigmoid(xp[:, : 2 * D] + hp[:, : 2 * D])  # (B, 2D)
        n = torch.tanh(torch.addcmul(xp[:, 2 * D :], rz[:, :D], hp[:, 2 * D :]))  # (B, D)
        h = torch.lerp(n, h, rz[:, D:])  # n + z (h_{t-1} - n)
        return h, h


class GRU(TorchStack):
    """A stack of GRU layers with a linear head on the last state."""

    numpy_class = NumpyGRU

    def make_layer(self, input_size: int, hidden_size: int) -> nn.Module:
        return GRULayer(input_size, hidden_size, self.dtype)
