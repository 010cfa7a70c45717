"""Shared PyTorch building blocks: the same functions as seqbench/models/numpy/layers.py.

Shapes: B batch, L sequence length, F input features, D hidden size, V vocabulary size,
E channels of Mamba's inner width, N state size. Weights keep the NumPy layout: a linear layer's
weight is (in, out) and computes x W + b, so that a module's `state_dict()` has the
names and shapes of the NumPy model's `params`.

Recurrences over time are loops of one in-place multiply-add per step on slices
from `unbind` (`scan_steps_`, `reverse_scan_steps_`), inside custom autograd
Functions whose backward passes are those of the NumPy backend, so autograd records
no node per time step. `selective_scan` (Mamba's S6) runs in chunks of `SCAN_CHUNK`
steps: forward keeps only its inputs and the state at each chunk's start, backward
recomputes one chunk's states at a time, so no (B, L, E, N) array is ever held whole.
`selective_scan_state` is the same forward from a given state, without autograd, for
running a sequence in chunks (it returns the state after the last step).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

# Time steps per chunk of the selective scan, by device type: one chunk's (T, b, N, E) arrays are
# held at a time, and one state (b, N, E) per chunk is kept from forward to backward. On the CPU,
# short chunks stay in cache: 4 measured fastest (L 64 and 1024; 2, 8, 16 and 32 were 5-40%
# slower). Elsewhere longer chunks mean fewer kernel launches per step.
SCAN_CHUNK = {"cpu": 4}
DEFAULT_SCAN_CHUNK = 16
# Up to this many state entries (b x L x N x E), forward keeps every chunk's states and
# discretisation for backward instead of recomputing them: 16 MB per array in float32, and
# about 20% less time for short sequences (the guide's L = 20).
KEEP_STATES_MAX = 1 << 22


# ---- modules that hold weights in the NumPy layout ------------------------------------------


class Linear(nn.Module):
    """y = x W + b with W (in, out), the NumPy layout (torch.nn.Linear stores W transposed)."""

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, dtype: torch.dtype | None = None
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(out_features, dtype=dtype)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


class Embedding(nn.Module):
    """Row `ids` of weight (V, D): token ids (...) -> (..., D), like torch.nn.Embedding (same layout),
    without drawing initial weights from torch's generator (they come from the NumPy twin)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, dtype: torch.dtype | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_embeddings, embedding_dim, dtype=dtype))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight over the last axis (Zhang & Sennrich, 2019)."""

    def __init__(self, size: int, eps: float = 1e-5, dtype: torch.dtype | None = None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


class CausalConv1d(nn.Module):
    """Depthwise causal convolution over time with weight (C, K) and bias (C,)."""

    def __init__(self, channels: int, kernel_size: int, dtype: torch.dtype | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, kernel_size, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(channels, dtype=dtype))

    def forward(self, x: torch.Tensor, prefix: torch.Tensor | None = None) -> torch.Tensor:
        return causal_conv1d(x, self.weight, self.bias, prefix)


# ---- functions ------------------------------------------------------------------------------


def linear(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """x W + b over the last axis: (..., F) @ (F, O) -> (..., O), as one 2-D matrix product."""
    x2 = x.reshape(-1, x.shape[-1])  # (M, F)
    y = x2 @ W if b is None else torch.addmm(b, x2, W)  # (M, O)
    return y.view(*x.shape[:-1], W.shape[1])


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) * weight over the last axis."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight  # (..., D)


def conv_input(x: torch.Tensor, K: int, prefix: torch.Tensor | None = None) -> torch.Tensor:
    """x (B, L, C) with the K-1 inputs before it in front, (B, L+K-1, C): `prefix`, or zeros."""
    return F.pad(x, (0, 0, K - 1, 0)) if prefix is None else torch.cat([prefix.to(x.dtype), x], dim=1)


def causal_conv1d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, prefix: torch.Tensor | None = None
) -> torch.Tensor:
    """y_t = sum_k weight[:, k] * x_{t - (K-1) + k} + bias, zeros (or `prefix`) before the start.

    x: (B, L, C); weight: (C, K); bias: (C,); prefix: (B, K-1, C), the inputs before x (the
    convolution's state when a sequence runs in pieces). One tap per multiply-add over the
    whole sequence (K is small), like the NumPy backend; measured faster on CPU than
    torch's grouped Conv1d with its transposes.
    """
    L, K = x.shape[1], weight.shape[1]
    x_pad = conv_input(x, K, prefix)  # (B, L + K - 1, C)
    y = torch.addcmul(bias, x_pad[:, :L], weight[:, 0])  # (B, L, C)
    for k in range(1, K):
        y = torch.addcmul(y, x_pad[:, k : k + L], weight[:, k])
    return y


def mse_loss(y: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean (weighted) squared error over every entry, mean(w (y - target)^2)."""
    squared = (y - target).pow(2)
    return (squared if weight is None else weight * squared).mean()


def mae_loss(y: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean (weighted) absolute error, mean(sqrt(w) |y - target|): w a scale squared, as in mse_loss."""
    absolute = (y - target).abs()
    return (absolute if weight is None else weight.sqrt() * absolute).mean()


def forecast_loss(
    name: str, y: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Loss `name`: mse, mae, or mse+mae (their sum), as seqbench.models.numpy.layers.forecast_loss."""
    if name == "mse":
        return mse_loss(y, target, weight)
    if name == "mae":
        return mae_loss(y, target, weight)
    if name == "mse+mae":
        return mse_loss(y, target, weight) + mae_loss(y, target, weight)
    raise ValueError(f"unknown forecast loss {name!r}")


def cross_entropy_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy in nats of logits (..., V) against integer targets (...)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


# ---- linear recurrence h_t = a_t * h_{t-1} + b_t, step by step ------------------------------------


def scan_steps_(
    a: torch.Tensor, bu: torch.Tensor, h0: torch.Tensor | None = None, dim: int = 0
) -> torch.Tensor:
    """All states of h_t = a_t * h_{t-1} + bu_t along `dim`, written over bu (returned).

    One multiply-add over a whole step's slab per step; slices come from `unbind`. h0 is the
    state before the first step (None: zeros).
    """
    hs, a_s = bu.unbind(dim), a.unbind(dim)
    if h0 is not None:
        hs[0].addcmul_(a_s[0], h0)
    for t in range(1, len(hs)):
        hs[t].addcmul_(a_s[t], hs[t - 1])
    return bu


def reverse_scan_steps_(
    a: torch.Tensor, g: torch.Tensor, carry: torch.Tensor | None = None, dim: int = 0
) -> torch.Tensor:
    """The total gradients of scan_steps_'s states, g_t = dh_t + a_{t+1} * g_{t+1}, over g = dh.

    `carry` is a_{T} * g_{T} from beyond the last step (None: nothing). Returns g.
    """
    gs, a_s = g.unbind(dim), a.unbind(dim)
    if carry is not None:
        gs[-1].add_(carry)
    for t in range(len(gs) - 2, -1, -1):
        gs[t].addcmul_(a_s[t + 1], gs[t + 1])
    return g


# ---- selective scan (Mamba's S6, Gu & Dao 2023, algorithm 2) --------------------------------------


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    z: torch.Tensor | None = None,
    delta_softplus: bool = False,
    chunk: int | None = None,
    discretization: str = "delta_b",
) -> torch.Tensor:
    """y = SSM(A, B, C)(u) with input-dependent step delta.

    u, delta: (b, L, E); A: (E, N) (negative); B, C: (b, L, N); D: (E,). For each channel e
    and state n:  A_bar = exp(delta A),  B_bar = delta B  (delta_b: the official code)
                                      or B_bar = (exp(delta A) - 1) / A * B  (zoh: exact ZOH)
                  h_t = A_bar_t * h_{t-1} + B_bar_t * u_t,   y_t = sum_n C_t h_t + D u_t
    As in the reference implementation's `selective_scan_fn`, two neighbours can be fused in
    (they change nothing but memory): `delta_softplus` takes delta = softplus(delta), and z
    (b, L, E) returns y * SiLU(z). Then only the inputs are kept for the backward pass.
    """
    chunk = chunk or SCAN_CHUNK.get(u.device.type, DEFAULT_SCAN_CHUNK)
    return _SelectiveScan.apply(u, delta, A, B, C, D, z, delta_softplus, chunk, discretization)  # (b, L, E)


@torch.no_grad()
def selective_scan_state(
    *inputs: torch.Tensor, h0: torch.Tensor, **options: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """selective_scan(*inputs, **options), of the same u, delta, A, B, C, D and keyword options, run
    from the state h0 (b, E, N) before the first step, without autograd: returns the output (b, L, E)
    and the state after the last step (b, E, N)."""
    u, delta, A, B, C, D = inputs
    A_t = A.t().contiguous()  # (N, E)
    B_t, C_t = B.transpose(0, 1).contiguous(), C.transpose(0, 1).contiguous()  # (L, b, N)
    h = h0.to(u.dtype).transpose(1, 2).contiguous()  # (b, N, E)
    out, _, _, h = _scan_forward(u, delta, A_t, B_t, C_t, D, h, keep=False, save_starts=False, **options)
    return out, h.transpose(1, 2).contiguous()  # (b, L, E), (b, E, N)


def _scan_forward(
    u,
    delta,
    A_t,
    B_t,
    C_t,
    D,
    h,
    keep,
    save_starts=True,
    z=None,
    delta_softplus=False,
    chunk=None,
    discretization="delta_b",
):
    """The forward pass of the selective scan, chunk by chunk, from the state h (b, N, E).

    Returns the output (b, L, E), the state before each chunk (None unless `save_starts`), the
    (a_bar, B_bar / B, B u, states) of every chunk if `keep`, and the state after the last step (b, N, E).
    """
    b, L, E = u.shape  # u, delta, z: (b, L, E); A_t: (N, E); B_t, C_t: (L, b, N); D: (E,)
    N = A_t.shape[0]
    chunk = chunk or SCAN_CHUNK.get(u.device.type, DEFAULT_SCAN_CHUNK)
    starts = range(0, L, chunk)
    h_starts = u.new_empty(len(starts), b, N, E) if save_starts else None  # the state before each chunk
    kept: list[torch.Tensor] = []  # (a_bar, zoh, B u, h) of every chunk, if keep
    y = u.new_empty(L, b, E)
    for i, s in enumerate(starts):
        e = min(s + chunk, L)
        T = e - s
        if save_starts:
            h_starts[i] = h
        delta_c = delta[:, s:e].transpose(0, 1).contiguous()  # (T, b, E)
        if delta_softplus:
            delta_c = F.softplus(delta_c)
        a_bar, zoh, s_ = _discretise(
            delta_c, A_t, B_t[s:e], u[:, s:e].transpose(0, 1).contiguous(), discretization
        )
        hs = scan_steps_(a_bar, zoh * s_ if keep else s_.mul_(zoh), h)  # (T, b, N, E)
        torch.bmm(C_t[s:e].view(T * b, 1, N), hs.view(T * b, N, E), out=y[s:e].view(T * b, 1, E))
        h = hs[-1]
        if keep:
            kept += [a_bar, zoh, s_, hs]
    out = torch.addcmul(y.transpose(0, 1), u, D)  # (b, L, E) C h + D u
    if z is not None:
        out *= F.silu(z)
    return out, h_starts, kept, h


def silu_grad(z: torch.Tensor, sig: torch.Tensor) -> torch.Tensor:
    """d SiLU(z) / dz = sigmoid(z) (1 + z (1 - sigmoid(z))), given sig = sigmoid(z)."""
    return sig * (1 + z * (1 - sig))


def expm1_(x: torch.Tensor) -> torch.Tensor:
    """exp(x) - 1 in place. On the CPU through NumPy's ufunc, which measured 2-3x faster than
    torch's there (a pure speed choice: both are accurate to an ulp or two)."""
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        array = x.numpy()
        np.expm1(array, out=array)
        return x
    return x.expm1_()


def _discretise(
    delta: torch.Tensor, A_t: torch.Tensor, B: torch.Tensor, u: torch.Tensor, discretization: str = "delta_b"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One chunk's A_bar, w = B_bar / B and B u, time-major with E innermost: (T, b, N, E) each.

    delta, u: (T, b, E); A_t: (N, E), A transposed; B: (T, b, N). delta_b: w = delta (T, b, 1, E).
    zoh: one transcendental per entry, expm1(delta A), from which A_bar = expm1 + 1 (within 2 ulp
    of exp) and w = (A_bar - 1) / A.
    """
    s = B.unsqueeze(-1) * u.unsqueeze(2)  # (T, b, N, E) B u
    if discretization != "zoh":
        return torch.exp(delta.unsqueeze(2) * A_t), delta.unsqueeze(2), s
    em1 = expm1_(torch.mul(delta.unsqueeze(2), A_t))  # (T, b, N, E) exp(delta A) - 1
    a_bar = em1 + 1  # (T, b, N, E)
    zoh = em1.div_(A_t)  # (T, b, N, E) (A_bar - 1) / A, in place
    return a_bar, zoh, s


class _SelectiveScan(torch.autograd.Function):
    """The selective scan, recomputing states chunk by chunk in backward.

    Inside, a chunk is time-major, (T, b, N, E), so that each step's state is one contiguous
    slab, with the long channel axis E innermost as in the NumPy backend. Saved for backward:
    the inputs and the state before each chunk (L / chunk states of (b, N, E)), and for small
    problems (KEEP_STATES_MAX) every chunk's states too.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_softplus, chunk, discretization="delta_b"):
        b, L, E = u.shape  # u, delta, z: (b, L, E); A: (E, N); B, C: (b, L, N); D: (E,)
        N = A.shape[1]
        keep = any(ctx.needs_input_grad) and b * L * N * E <= KEEP_STATES_MAX
        A_t = A.t().contiguous()  # (N, E)
        B_t, C_t = B.transpose(0, 1).contiguous(), C.transpose(0, 1).contiguous()  # (L, b, N)
        h0 = u.new_zeros(b, N, E)
        out, h_starts, kept, _ = _scan_forward(
            u, delta, A_t, B_t, C_t, D, h0, keep, True, z, delta_softplus, chunk, discretization
        )
        ctx.chunk, ctx.delta_softplus, ctx.discretization = chunk, delta_softplus, discretization
        ctx.save_for_backward(u, delta, A_t, B_t, C_t, D, z, h_starts, *kept)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        """With G the total gradient of h (a reverse scan) and w = B_bar / B (zoh or delta):
        du = sum_n G w B + D dy,   dB = sum_e G w u,   dC = sum_e h dy,   dD = sum_{b,t} dy u, and
        zoh, with R = A h_t + B u (= (A h_{t-1} + B u) A_bar, since A zoh = A_bar - 1):
            ddelta = sum_n G R,   dA = (sum_{b,t} delta G R - sum_{b,t} G zoh B u) / A,
        delta_b, with P = A_bar A h_{t-1}:
            ddelta = sum_n G (P + B u),   dA = sum_{b,t} delta G P / A,
        where dy = dout * SiLU(z) (and dz = dout * y * SiLU'(z)) when the gate is fused in.
        """
        u, delta, A_t, B_t, C_t, D, z, h_starts, *kept = ctx.saved_tensors
        b, L, E = u.shape
        N = A_t.shape[0]
        du, ddelta = u.new_empty(L, b, E), u.new_empty(L, b, E)  # time-major
        dz = None if z is None else u.new_empty(L, b, E)
        dB, dC = torch.empty_like(B_t), torch.empty_like(C_t)  # (L, b, N)
        dA_t = torch.zeros_like(A_t)  # (N, E)
        dD = torch.zeros_like(D)  # (E,)
        carry = None  # a_{t+1} * G_{t+1} from the first step of the chunk after
        for i in reversed(range(len(h_starts))):
            s = i * ctx.chunk
            e = min(s + ctx.chunk, L)
            T = e - s
            u_c, delta_c, dy_c = (
                v[:, s:e].transpose(0, 1).contiguous() for v in (u, delta, dout)
            )  # (T, b, E)
            if ctx.delta_softplus:
                pre_delta_c, delta_c = delta_c, F.softplus(delta_c)
            if kept:
                a_bar, zoh, s_, hs = kept[4 * i : 4 * i + 4]  # (T, b, N, E) each
            else:  # recompute the chunk's states from the one at its start
                a_bar, zoh, s_ = _discretise(delta_c, A_t, B_t[s:e], u_c, ctx.discretization)  # (T, b, N, E)
                hs = scan_steps_(a_bar, zoh * s_, h_starts[i])  # (T, b, N, E)
            if z is not None:  # the gate: out = y * SiLU(z)
                z_c = z[:, s:e].transpose(0, 1).contiguous()  # (T, b, E)
                y_c = torch.bmm(C_t[s:e].view(T * b, 1, N), hs.view(T * b, N, E)).view(T, b, E)
                y_c.addcmul_(u_c, D)  # (T, b, E) C h + D u
                sig = torch.sigmoid(z_c)
                torch.mul(dy_c * y_c, silu_grad(z_c, sig), out=dz[s:e])
                dy_c = dy_c * z_c * sig  # (T, b, E) dL/dy
            torch.sum(hs * dy_c.unsqueeze(2), dim=-1, out=dC[s:e])
            dD += (dy_c * u_c).sum(dim=(0, 1))
            G = C_t[s:e].unsqueeze(-1) * dy_c.unsqueeze(2)  # (T, b, N, E) dL/dh_t from y_t
            reverse_scan_steps_(a_bar, G, carry)
            carry = a_bar[0] * G[0]
            if ctx.discretization == "zoh":
                GR = torch.addcmul(s_, hs, A_t).mul_(G)  # (T, b, N, E)
                torch.sum(GR, dim=2, out=ddelta[s:e])
            else:
                GR = torch.empty_like(hs)  # (T, b, N, E) h_{t-1}, then G A_bar A h_{t-1}
                GR[0], GR[1:] = h_starts[i], hs[:-1]
                GR.mul_(a_bar).mul_(A_t).mul_(G)
                torch.sum(GR + G * s_, dim=2, out=ddelta[s:e])
            dA_t += GR.mul_(delta_c.unsqueeze(2)).sum(dim=(0, 1))
            if ctx.delta_softplus:
                ddelta[s:e] *= torch.sigmoid(pre_delta_c)  # softplus' = sigmoid
            GZ = G.mul_(zoh)  # (T, b, N, E) dL/d(B u)
            torch.bmm(B_t[s:e].view(T * b, 1, N), GZ.view(T * b, N, E), out=du[s:e].view(T * b, 1, E))
            du[s:e].addcmul_(dy_c, D)
            torch.sum(GZ * u_c.unsqueeze(2), dim=-1, out=dB[s:e])
            if ctx.discretization == "zoh":
                dA_t -= GZ.mul_(s_).sum(dim=(0, 1))
        dA_t /= A_t
        return (
            du.transpose(0, 1),
            ddelta.transpose(0, 1),
            dA_t.t(),
            dB.transpose(0, 1),
            dC.transpose(0, 1),
            dD,
            None if dz is None else dz.transpose(0, 1),
            None,
            None,
            None,
        )
