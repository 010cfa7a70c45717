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
# held at a time, and one state (b, N, E) per chunk is kept from forward to backward. On the CPU, a
# chunk's arrays should stay in cache, and each chunk costs some 40 operations' dispatch: 16
# measured fastest on an AMD EPYC, 2 threads (training steps, round-robin medians: the Shakespeare
# Mamba LM at batch 16 and benchmarks/torch_speed.py's Mamba at L 256 and 1024, b N E = 65,536
# state entries a step: 4 was 1.25-1.3x slower, 8 1.1x, 32 1.06-1.13x, 64 1.3x); 4 had measured
# fastest on an Intel Xeon. Elsewhere longer chunks mean fewer kernel launches per step.
SCAN_CHUNK = {"cpu": 16}
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
    torch's grouped Conv1d with its transposes. Without a prefix, a Function whose backward
    is the same taps reversed (`_CausalConv1d`), with no padded copy of x.
    """
    if prefix is None:
        return _CausalConv1d.apply(x, weight, bias)
    L, K = x.shape[1], weight.shape[1]
    x_pad = conv_input(x, K, prefix)  # (B, L + K - 1, C)
    y = torch.addcmul(bias, x_pad[:, :L], weight[:, 0])  # (B, L, C)
    for k in range(1, K):
        y = torch.addcmul(y, x_pad[:, k : k + L], weight[:, k])
    return y


class _CausalConv1d(torch.autograd.Function):
    """causal_conv1d from zeros: y_t = bias + sum_j weight[:, K-1-j] x_{t-j}, each tap j one in-place
    multiply-add over the steps t >= j. Backward: dx_t = sum_j weight[:, K-1-j] dy_{t+j},
    dweight[:, K-1-j] = sum_{b,t} dy_t x_{t-j}, dbias = sum_{b,t} dy_t."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        L, K = x.shape[1], weight.shape[1]  # x: (B, L, C); weight: (C, K)
        y = torch.addcmul(bias, x, weight[:, K - 1])  # (B, L, C) the tap on x_t
        for j in range(1, min(K, L)):  # the tap on x_{t-j}
            y[:, j:].addcmul_(x[:, : L - j], weight[:, K - 1 - j])
        ctx.save_for_backward(x, weight)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        L, K = x.shape[1], weight.shape[1]
        dx = dy * weight[:, K - 1]  # (B, L, C)
        dweight = torch.zeros_like(weight)  # (C, K)
        dweight[:, K - 1] = (dy * x).sum(dim=(0, 1))
        for j in range(1, min(K, L)):
            dx[:, : L - j].addcmul_(dy[:, j:], weight[:, K - 1 - j])
            dweight[:, K - 1 - j] = (dy[:, j:] * x[:, : L - j]).sum(dim=(0, 1))
        return dx, dweight, dy.sum(dim=(0, 1))


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

# exp(x) = 2^(x log2 e): torch's exp2 measured about twice as fast as its exp on the CPU (AVX2), and
# exp(delta A) is the one transcendental per state entry.
LOG2_E = 1.4426950408889634


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
    chunk = options.get("chunk") or SCAN_CHUNK.get(u.device.type, DEFAULT_SCAN_CHUNK)
    if options.get("delta_softplus", False):
        delta = F.softplus(delta)
    B_t, C_t = B.transpose(0, 1).contiguous(), C.transpose(0, 1).contiguous()  # (L, b, N)
    h = h0.to(u.dtype).transpose(1, 2).contiguous()  # (b, N, E)
    discretization = options.get("discretization", "delta_b")
    y, h = _scan_forward(u, delta, A.t().contiguous(), B_t, C_t, h, chunk, discretization)
    return _output(y, u, D, options.get("z")), h.transpose(1, 2).contiguous()  # (b, L, E), (b, E, N)


def _output(y: torch.Tensor, u: torch.Tensor, D: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
    """y_t (L, b, E) = C_t h_t -> (C h + D u) (b, L, E), times SiLU(z) when the gate is fused in."""
    out = torch.addcmul(y.transpose(0, 1), u, D)  # (b, L, E)
    return out if z is None else out.mul_(F.silu(z))


def _chunks(L: int, chunk: int) -> list[tuple[int, int]]:
    return [(s, min(s + chunk, L)) for s in range(0, L, chunk)]


def _time_major(x: torch.Tensor, s: int, e: int) -> torch.Tensor:
    """Steps s to e of x (b, L, E) as a chunk reads them, (T, b, E), each step's slab contiguous (x's
    own memory when b or T is 1: not to be written)."""
    return x[:, s:e].transpose(0, 1).contiguous()


class _Scratch:
    """(T, b, N, E) arrays by name, made once per call and reused by every chunk: one chunk's arrays
    are alive at a time, so they stay in cache and cost no allocation. None (the kept path): fresh."""

    def __init__(self, like: torch.Tensor, shape: tuple[int, ...]) -> None:
        self.like, self.shape, self.arrays = like, shape, {}

    def __call__(self, name: str, T: int) -> torch.Tensor:
        if name not in self.arrays:
            self.arrays[name] = self.like.new_empty(self.shape)
        return self.arrays[name][:T]


def _out(scratch: _Scratch | None, name: str, T: int) -> torch.Tensor | None:
    return None if scratch is None else scratch(name, T)


def _discretise(
    delta: torch.Tensor,
    u: torch.Tensor,
    A_t: torch.Tensor,
    B: torch.Tensor,
    discretization: str = "delta_b",
    scratch: _Scratch | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One chunk's A_bar (T, b, N, E), w = B_bar / B and s, time-major with E innermost.

    delta, u: (T, b, E); A_t: (N, E), A transposed; B: (T, b, N).
    delta_b: A_bar = 2^(delta A log2 e), w = delta (T, b, 1, E), s = B (delta u) = B_bar u, the scan's input.
    zoh: one transcendental per entry, expm1(delta A), from which A_bar = expm1 + 1 (within 2 ulp
    of exp) and w = (A_bar - 1) / A (T, b, N, E); s = B u, and the scan's input is w s.
    """
    T = len(delta)
    delta_ = delta.unsqueeze(2)  # (T, b, 1, E)
    if discretization != "zoh":
        a_bar = torch.mul(delta_, A_t * LOG2_E, out=_out(scratch, "a_bar", T))  # (T, b, N, E)
        torch.exp2(a_bar, out=a_bar)  # exp(delta A)
        s = torch.mul(B.unsqueeze(-1), (delta * u).unsqueeze(2), out=_out(scratch, "s", T))  # (T, b, N, E)
        return a_bar, delta_, s
    em1 = expm1_(torch.mul(delta_, A_t, out=_out(scratch, "w", T)))  # (T, b, N, E) exp(delta A) - 1
    a_bar = torch.add(em1, 1, out=_out(scratch, "a_bar", T))  # (T, b, N, E)
    w = em1.div_(A_t)  # (T, b, N, E) (A_bar - 1) / A, in place
    s = torch.mul(B.unsqueeze(-1), u.unsqueeze(2), out=_out(scratch, "s", T))  # (T, b, N, E) B u
    return a_bar, w, s


def _scan_forward(u, delta, A_t, B, C, h, chunk, discretization="delta_b", h_starts=None, kept=None):
    """The forward pass of the selective scan, chunk by chunk, from the state h (b, N, E).

    u, delta: (b, L, E), delta after softplus; A_t: (N, E); B, C: (L, b, N), time-major. Returns
    y_t = C_t h_t (L, b, E) and the state after the last step (b, N, E). Fills `h_starts` (the state
    before each chunk) when given; with a list `kept`, appends every chunk's arrays for backward:
    delta_b: A_bar, h and Q = A A_bar h_{t-1} (d h_t / d delta_t less B u); zoh: A_bar, w, B u and h.
    """
    b, L, E = u.shape
    N = A_t.shape[0]
    scratch = None if kept is not None else _Scratch(u, (min(chunk, L), b, N, E))
    y = u.new_empty(L, b, E)
    for i, (s, e) in enumerate(_chunks(L, chunk)):
        T = e - s
        h = h.clone() if h_starts is None else h_starts[i].copy_(h)  # the last chunk's h is overwritten
        u_c, delta_c = _time_major(u, s, e), _time_major(delta, s, e)  # (T, b, E)
        a_bar, w, s_ = _discretise(delta_c, u_c, A_t, B[s:e], discretization, scratch)
        if discretization != "zoh":
            hs = scan_steps_(a_bar, s_, h)  # (T, b, N, E) h_t = A_bar h_{t-1} + B_bar u, over s
            if kept is not None:
                Q = torch.empty_like(hs)  # (T, b, N, E) A A_bar h_{t-1}
                torch.mul(a_bar[0], h, out=Q[0])
                torch.mul(a_bar[1:], hs[:-1], out=Q[1:])
                kept += [a_bar, hs, Q.mul_(A_t)]
        else:
            hs = scan_steps_(a_bar, torch.mul(w, s_, out=_out(scratch, "h", T)), h)  # (T, b, N, E)
            if kept is not None:
                kept += [a_bar, w, s_, hs]
        sum_n(C[s:e], hs, out=y[s:e])  # C h
        h = hs[-1]
    return y, h


def sum_n(w: torch.Tensor, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """sum_n w[..., n] x[..., n, e]: w (T, b, N), x (T, b, N, E) -> (T, b, E), one batched product."""
    T, b, N, E = x.shape
    y = torch.bmm(
        w.reshape(T * b, 1, N), x.view(T * b, N, E), out=None if out is None else out.view(T * b, 1, E)
    )
    return y.view(T, b, E)


def sum_e(x: torch.Tensor, v: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """sum_e x[..., n, e] v[..., e]: x (T, b, N, E), v (T, b, E) -> out (T, b, N), as one batched product
    v x^T with x read transposed (bmm(x, v), the product over x's inner axis, measured 10x slower on
    the CPU)."""
    T, b, N, E = x.shape
    torch.bmm(v.reshape(T * b, 1, E), x.view(T * b, N, E).transpose(1, 2), out=out.view(T * b, 1, N))
    return out


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


class _SelectiveScan(torch.autograd.Function):
    """The selective scan, recomputing states chunk by chunk in backward.

    Inside, a chunk is time-major, (T, b, N, E), so that each step's state is one contiguous
    slab, with the long channel axis E innermost as in the NumPy backend. Saved for backward:
    the inputs (delta after softplus) and the state before each chunk (L / chunk states of
    (b, N, E)), and for small problems (KEEP_STATES_MAX) every chunk's arrays too (see
    _scan_forward). Backward works on one chunk's (T, b, .) slices at a time, so that its only
    arrays of the sequence's length are the gradients.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_softplus, chunk, discretization="delta_b"):
        b, L, E = u.shape  # u, delta, z: (b, L, E); A: (E, N); B, C: (b, L, N); D: (E,)
        N = A.shape[1]
        keep = any(ctx.needs_input_grad) and b * L * N * E <= KEEP_STATES_MAX
        if delta_softplus:
            delta = F.softplus(delta)
        A_t = A.t().contiguous()  # (N, E)
        B_t, C_t = B.transpose(0, 1).contiguous(), C.transpose(0, 1).contiguous()  # (L, b, N)
        h_starts = None if keep else u.new_empty(len(_chunks(L, chunk)), b, N, E)  # before each chunk
        kept: list[torch.Tensor] | None = [] if keep else None
        h0 = u.new_zeros(b, N, E)
        y, _ = _scan_forward(u, delta, A_t, B_t, C_t, h0, chunk, discretization, h_starts, kept)
        ctx.chunk, ctx.delta_softplus, ctx.discretization = chunk, delta_softplus, discretization
        ctx.save_for_backward(u, delta, A_t, B_t, C_t, D, z, h_starts, *(kept or []))
        return _output(y, u, D, z)  # (b, L, E)

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        """With G the total gradient of h (a reverse scan), w = B_bar / B (zoh, or delta) and
        GB = sum_n G B:  du = w GB (delta_b) or sum_n G w B (zoh), + D dy,
        dB = sum_e G w u,   dC = sum_e h dy,   dD = sum_{b,t} dy u, and with M = G A P,
        delta_b, P = A_bar h_{t-1}:  ddelta = sum_n M + u GB,   dA = sum_{b,t} delta M / A,
        zoh, P = h_t (A zoh = A_bar - 1):  ddelta = sum_n M + u GB,
                                           dA = (sum_{b,t} delta M + sum_{b,t} (delta - zoh) G B u) / A,
        where dy = dout * SiLU(z) (and dz = dout * y * SiLU'(z)) when the gate is fused in, and
        softplus' = sigmoid = 1 - exp(-softplus) takes ddelta to the pre-softplus delta.
        """
        u, delta, A_t, B, C, D, z, h_starts, *kept = ctx.saved_tensors  # delta after softplus; B, C (L, b, N)
        b, L, E = u.shape
        N = A_t.shape[0]
        zoh = ctx.discretization == "zoh"
        du, ddelta = u.new_empty(L, b, E), u.new_empty(L, b, E)  # time-major
        dz = None if z is None else u.new_empty(L, b, E)
        dB, dC = torch.empty_like(B), torch.empty_like(C)  # (L, b, N)
        dA_t = torch.zeros_like(A_t)  # (N, E) A dL/dA until the end
        dD = torch.zeros_like(D)  # (E,)
        scratch = None if kept else _Scratch(u, (min(ctx.chunk, L), b, N, E))
        carry = None  # A_bar_{t+1} G_{t+1} from the first step of the chunk after
        for i, (s, e) in reversed(list(enumerate(_chunks(L, ctx.chunk)))):
            T = e - s
            u_c, delta_c, dy_c = (_time_major(v, s, e) for v in (u, delta, dout))  # (T, b, E)
            delta_ = delta_c.unsqueeze(2)  # (T, b, 1, E)
            if kept:
                chunk_kept = kept[4 * i : 4 * i + 4] if zoh else kept[3 * i : 3 * i + 3]
                a_bar, w, s_, hs = chunk_kept if zoh else (chunk_kept[0], delta_, None, chunk_kept[1])
            else:  # recompute the chunk's states from the one at its start
                a_bar, w, s_ = _discretise(delta_c, u_c, A_t, B[s:e], ctx.discretization, scratch)
                hs = scan_steps_(a_bar, torch.mul(w, s_, out=scratch("h", T)) if zoh else s_, h_starts[i])
            if z is not None:  # the gate: out = y * SiLU(z)
                z_c = _time_major(z, s, e)  # (T, b, E)
                sig = torch.sigmoid(z_c)
                y_c = sum_n(C[s:e], hs).addcmul_(u_c, D)  # (T, b, E) C h + D u
                torch.mul(dy_c * y_c, silu_grad(z_c, sig), out=dz[s:e])
                dy_c = dy_c * z_c * sig  # (T, b, E) dL/dy
            sum_e(hs, dy_c, out=dC[s:e])  # sum_e h dy
            dD += (dy_c * u_c).sum(dim=(0, 1))
            G = torch.mul(C[s:e].unsqueeze(-1), dy_c.unsqueeze(2), out=_out(scratch, "G", T))  # (T, b, N, E)
            reverse_scan_steps_(a_bar, G, carry)  # dL/dh_t, in G
            carry = torch.mul(a_bar[0], G[0], out=carry)
            GB = sum_n(B[s:e], G)  # (T, b, E) sum_n G B
            if zoh:
                GW = torch.mul(G, w, out=_out(scratch, "GW", T))  # (T, b, N, E) dL/d(B u)
                sum_n(B[s:e], GW, out=du[s:e])
                sum_e(GW, u_c, out=dB[s:e])
                M = torch.mul(hs, G, out=None if kept else hs).mul_(A_t)  # (T, b, N, E) G A h_t
            else:
                torch.mul(delta_c, GB, out=du[s:e])
                sum_e(G, delta_c * u_c, out=dB[s:e])  # sum_e G delta u
                if kept:
                    M = torch.mul(chunk_kept[2], G)  # (T, b, N, E) G A A_bar h_{t-1}
                else:
                    a_bar[0].mul_(h_starts[i])  # A_bar h_{t-1}, over A_bar
                    a_bar[1:].mul_(hs[:-1])
                    M = a_bar.mul_(G).mul_(A_t)
            torch.sum(M, dim=2, out=ddelta[s:e])
            ddelta[s:e].addcmul_(u_c, GB)
            dA_t += M.mul_(delta_).sum(dim=(0, 1))
            if zoh:  # + sum_{b,t} (delta - w) G B u
                dA_t += torch.sub(delta_, w, out=GW).mul_(G).mul_(s_).sum(dim=(0, 1))
            if ctx.delta_softplus:
                ddelta[s:e].mul_(expm1_(-delta_c).neg_())  # sigmoid(pre-softplus delta)
            du[s:e].addcmul_(dy_c, D)
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
