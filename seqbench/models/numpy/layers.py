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
