"""Shared NumPy building blocks, each a forward function beside its backward.

Shapes: B batch, L sequence length, F input features, D hidden size.
Every backward takes the upstream gradient and what its forward cached, and
returns the gradients of its inputs and parameters. Each piece has a
finite-difference test of its own in tests/models/numpy/test_layers.py.
"""

from __future__ import annotations

import itertools

import numpy as np

# A decay factor below exp(-MAX_LOG_DECAY) is treated as exp(-MAX_LOG_DECAY): far below
# float32 resolution, and it keeps exp() of cumulative decays finite inside a chunk.
MAX_LOG_DECAY = 60.0


def init_uniform(
    rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, dtype: np.dtype
) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the default of torch.nn.Linear and torch.nn.GRU."""
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, stable for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)), stable for large |x|; its derivative is sigmoid(x)."""
    return np.logaddexp(0, x).astype(x.dtype, copy=False)


# ---- linear ---------------------------------------------------------------------------------


def linear(x: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """y = x W + b over the last axis: (..., F) @ (F, O) -> (..., O)."""
    return x @ W + b


def linear_backward(
    dy: np.ndarray, x: np.ndarray, W: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dW, db) of y = x W + b, for x of any leading shape."""
    x2 = x.reshape(-1, x.shape[-1])  # (N, F)
    dy2 = dy.reshape(-1, dy.shape[-1])  # (N, O)
    return dy @ W.T, x2.T @ dy2, dy2.sum(axis=0)


# ---- linear recurrence h_t = a_t * h_{t-1} + b_t -------------------------------------------------


def _chunk_bounds(neg_log_a: np.ndarray, limit: float) -> list[int]:
    """Split [0, L) so that the total decay inside each chunk stays below exp(-limit).

    The bound uses, per step, the largest decay over all other axes, so it holds for
    every element; a single step may exceed it, which then forms a chunk of its own.
    """
    L = neg_log_a.shape[1]
    step_max = neg_log_a.reshape(neg_log_a.shape[0], L, -1).max(axis=(0, 2))  # (L,)
    bounds, total = [0], 0.0
    for t in range(L):
        if total + step_max[t] > limit and t > bounds[-1]:
            bounds.append(t)
            total = 0.0
        total += step_max[t]
    return [*bounds, L]


def linear_scan(log_a: np.ndarray, b: np.ndarray, h0: np.ndarray | None = None) -> np.ndarray:
    """All states of h_t = exp(log_a_t) * h_{t-1} + b_t, over axis 1, without a loop per step.

    log_a, b: (B, L, ...); h0: (B, ...) or None for zeros. Returns h: (B, L, ...).

    Inside a chunk that starts at s, with c_t = -sum_{j=s..t} log_a_j (the decay so far),
        h_t = exp(-c_t) * (h_{s-1} + sum_{k=s..t} exp(c_k) * b_k),
    two cumulative sums over time. Chunks are cut so that exp(c_k) stays finite.
    """
    neg_log_a = np.minimum(-log_a, MAX_LOG_DECAY)  # (B, L, ...)
    limit = 30.0 if b.dtype == np.float32 else 200.0
    h = np.empty_like(b)
    carry = np.zeros_like(b[:, 0]) if h0 is None else h0  # (B, ...)
    bounds = _chunk_bounds(neg_log_a, limit)
    for s, e in itertools.pairwise(bounds):
        c = np.cumsum(neg_log_a[:, s:e], axis=1)  # (B, C, ...)
        h[:, s:e] = np.exp(-c) * (carry[:, None] + np.cumsum(np.exp(c) * b[:, s:e], axis=1))
        carry = h[:, e - 1]
    return h


def linear_scan_backward(
    dh: np.ndarray, log_a: np.ndarray, h: np.ndarray, h0: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dlog_a, db, dh0) of linear_scan, given dL/dh for every step.

    The total gradient g_t of h_t obeys the same recurrence run backwards,
        g_t = dh_t + a_{t+1} * g_{t+1},
    so it is one more linear_scan on reversed time. Then db_t = g_t and
    dlog_a_t = g_t * a_t * h_{t-1}.
    """
    a = np.exp(np.maximum(log_a, -MAX_LOG_DECAY))  # (B, L, ...)
    log_a_next = np.zeros_like(log_a)
    log_a_next[:, :-1] = log_a[:, 1:]  # a_{t+1}; the last step has no successor
    g = linear_scan(log_a_next[:, ::-1], dh[:, ::-1])[:, ::-1]  # (B, L, ...)
    h_prev = np.empty_like(h)
    h_prev[:, 0] = 0.0 if h0 is None else h0
    h_prev[:, 1:] = h[:, :-1]
    return g * a * h_prev, g, g[:, 0] * a[:, 0]


# ---- losses ------------------------------------------------------------------------------------


def mse_loss(y: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean squared error and its gradient with respect to y."""
    diff = y - target
    return float(np.mean(diff * diff)), (2.0 / diff.size) * diff


# ---- activations with their derivatives --------------------------------------------------------


def silu(x: np.ndarray) -> np.ndarray:
    """x * sigmoid(x)."""
    return x * sigmoid(x)


def silu_grad(x: np.ndarray) -> np.ndarray:
    """d silu(x) / dx = sigmoid(x) * (1 + x * (1 - sigmoid(x)))."""
    s = sigmoid(x)
    return s * (1 + x * (1 - s))


# ---- RMSNorm (Zhang & Sennrich, 2019) ---------------------------------------------------------------


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float = 1e-5) -> tuple[np.ndarray, tuple]:
    """y = x / sqrt(mean(x^2) + eps) * weight over the last axis; returns (y, cache)."""
    r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)  # (..., 1)
    x_hat = x * r  # (..., D)
    return x_hat * weight, (x_hat, r, weight)


def rms_norm_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Gradients (dx, dweight) of rms_norm."""
    x_hat, r, weight = cache
    d_hat = dy * weight  # (..., D)
    dx = r * (d_hat - x_hat * np.mean(d_hat * x_hat, axis=-1, keepdims=True))
    return dx, (dy * x_hat).reshape(-1, x_hat.shape[-1]).sum(axis=0)


# ---- causal depthwise convolution over time ---------------------------------------------------------


def causal_conv1d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """y_t = sum_k weight[:, k] * x_{t - (K-1) + k} + bias, zeros before the start.

    x: (B, L, C); weight: (C, K); bias: (C,). Each channel has its own filter (depthwise),
    and y_t sees only x_{<= t} (causal), like torch's Conv1d(groups=C, padding=K-1)[..., :L].
    """
    B, L, C = x.shape
    K = weight.shape[1]
    x_pad = np.concatenate([np.zeros((B, K - 1, C), dtype=x.dtype), x], axis=1)  # (B, L+K-1, C)
    y = np.broadcast_to(bias, (B, L, C)).copy()
    for k in range(K):  # K is small (4): one vectorised multiply-add per tap
        y += weight[:, k] * x_pad[:, k : k + L]
    return y


def causal_conv1d_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, ...]:
    """Gradients (dx, dweight, dbias) of causal_conv1d."""
    B, L, C = x.shape
    K = weight.shape[1]
    x_pad = np.concatenate([np.zeros((B, K - 1, C), dtype=x.dtype), x], axis=1)
    dx_pad = np.zeros_like(x_pad)
    dweight = np.empty_like(weight)
    for k in range(K):
        dweight[:, k] = np.einsum("blc,blc->c", dy, x_pad[:, k : k + L])
        dx_pad[:, k : k + L] += weight[:, k] * dy
    return dx_pad[:, K - 1 :], dweight, dy.sum(axis=(0, 1))


# ---- selective scan (Mamba's S6, Gu & Dao 2023, algorithm 2) ----------------------------------------


def selective_scan(
    u: np.ndarray, delta: np.ndarray, A: np.ndarray, B: np.ndarray, C: np.ndarray, D: np.ndarray
) -> tuple[np.ndarray, tuple]:
    """y = SSM(A, B, C)(u) with input-dependent step delta, zero-order-hold discretisation.

    u, delta: (b, L, E); A: (E, N) (negative); B, C: (b, L, N); D: (E,). For each channel e and
    state n:   A_bar = exp(delta A),   B_bar = (exp(delta A) - 1) / A * B   (exact ZOH for diagonal A)
               h_t = A_bar_t * h_{t-1} + B_bar_t * u_t,   y_t = sum_n C_t h_t + D u_t
    """
    log_a = delta[..., None] * A  # (b, L, E, N) = log A_bar
    zoh = np.expm1(log_a) / A  # (b, L, E, N) = (A_bar - 1) / A
    bu = zoh * B[:, :, None, :] * u[..., None]  # (b, L, E, N) = B_bar u
    h = linear_scan(log_a, bu)  # (b, L, E, N)
    y = np.einsum("blen,bln->ble", h, C) + D * u  # (b, L, E)
    return y, (u, delta, A, B, C, D, log_a, zoh, h)


def selective_scan_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray, ...]:
    """Gradients (du, ddelta, dA, dB, dC, dD) of selective_scan."""
    u, delta, A, B, C, D, log_a, zoh, h = cache
    dh = dy[..., None] * C[:, :, None, :]  # (b, L, E, N)
    dC = np.einsum("ble,blen->bln", dy, h)  # (b, L, N)
    dD = np.einsum("ble,ble->e", dy, u)
    dlog_a, dbu, _ = linear_scan_backward(dh, log_a, h)  # (b, L, E, N) each
    a_bar = zoh * A + 1  # exp(delta A), recovered without another exp
    d_zoh = dbu * B[:, :, None, :] * u[..., None]  # dL/d((A_bar - 1) / A)
    du = dy * D + np.einsum("blen,blen->ble", dbu, zoh * B[:, :, None, :])
    dB = np.einsum("blen,blen->bln", dbu * u[..., None], zoh)
    # log_a = delta A enters directly and through zoh = expm1(delta A) / A:
    #   d zoh / d delta = A_bar,   d zoh / dA = (delta A_bar A - (A_bar - 1)) / A^2
    ddelta = np.einsum("blen,en->ble", dlog_a, A) + np.einsum("blen,blen->ble", d_zoh, a_bar)
    dA = np.einsum("blen,ble->en", dlog_a, delta)
    dA += np.einsum("blen,blen->en", d_zoh, (delta[..., None] * a_bar * A - zoh * A) / (A * A))
    return du, ddelta, dA, dB, dC, dD
