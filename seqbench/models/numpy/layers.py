"""Shared NumPy building blocks, each a forward function beside its backward.

Shapes: B batch, L sequence length, F input features, D hidden size, V vocabulary size.
Every backward takes the upstream gradient and what its forward cached, and
returns the gradients of its inputs and parameters. Each piece has a
finite-difference test of its own in tests/models/numpy/test_layers.py.
"""

from __future__ import annotations

import numpy as np

# The largest decay exp(c) that the prefix-sum scan lets grow inside one chunk, by dtype; it also
# caps one step's decay (see _scan_prefix).
DECAY_LIMIT = {np.float32: 60.0, np.float64: 600.0}
MAX_CHUNK = 128  # the prefix-sum scan's longest chunk: its matrix of ones is MAX_CHUNK^2


def init_uniform(
    rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, dtype: np.dtype
) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the default of torch.nn.Linear and torch.nn.GRU."""
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function as 0.5 * tanh(x / 2) + 0.5: finite for any x and one fast ufunc.

    Its absolute error is a few ulps of 1; for x below about -17 (float32) that rounds to 0,
    where 1 / (1 + exp(-x)) would give a tiny positive value no computation here depends on.
    """
    out = np.multiply(x, 0.5)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), stable for large |x|; its derivative is sigmoid(x)."""
    out = np.abs(x)
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.log1p(out, out=out)
    out += np.maximum(x, 0)
    return out


# ---- linear ---------------------------------------------------------------------------------


def linear(x: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """y = x W + b over the last axis: (..., F) @ (F, O) -> (..., O), as one 2-D matrix product."""
    y = x.reshape(-1, x.shape[-1]) @ W  # (N, O)
    y += b
    return y.reshape(*x.shape[:-1], W.shape[1])


def linear_backward(
    dy: np.ndarray, x: np.ndarray, W: np.ndarray, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients (dx, dW, db) of y = x W + b, for x of any leading shape (dx None if not needed)."""
    x2 = x.reshape(-1, x.shape[-1])  # (N, F)
    dy2 = dy.reshape(-1, dy.shape[-1])  # (N, O)
    dx = (dy2 @ W.T).reshape(x.shape) if need_dx else None
    return dx, x2.T @ dy2, dy2.sum(axis=0)


# ---- embedding ------------------------------------------------------------------------------------


def init_embedding(rng: np.random.Generator, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """N(0, 1) entries, the default of torch.nn.Embedding: each embedded token has about unit RMS."""
    return rng.normal(size=shape).astype(dtype)


def check_ids(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """`ids` as an integer array, or a ValueError if it is not one or holds an id outside 0 .. V-1."""
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"token ids must be integers, got an array of {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"token ids must lie in 0 .. {vocab_size - 1}, got {ids.min()} .. {ids.max()}")
    return ids


def embedding(ids: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Row `ids` of weight: ids (...) integers in 0 .. V-1, weight (V, D) -> (..., D)."""
    return np.take(weight, ids, axis=0)


def embedding_backward(d_out: np.ndarray, ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """dL/dweight (V, D) of embedding: row v sums d_out over every position whose id is v.

    One weighted bincount over (id, column) pairs: measured 9 ms for B*L = 16k, D = 256,
    V = 256 (np.add.at 27 ms, a sort and np.add.reduceat 25 ms, a one-hot product 350 ms).
    It sums in float64 whatever the dtype.
    """
    D = d_out.shape[-1]
    flat = ids.reshape(-1, 1) * D + np.arange(D)  # (N, D) the flat index of each entry in (V, D)
    dW = np.bincount(flat.reshape(-1), weights=d_out.reshape(-1), minlength=vocab_size * D)
    return dW.reshape(vocab_size, D).astype(d_out.dtype, copy=False)


# ---- linear recurrence h_t = a_t * h_{t-1} + b_t -------------------------------------------------


# Above this many values per time step (batch x channels x state), a loop over time with
# in-place array operations beats the prefix-sum form, whose cost grows with the chunk length.
STEP_LOOP_MIN_SIZE = 1 << 15


def linear_scan(log_a: np.ndarray, b: np.ndarray, h0: np.ndarray | None = None) -> np.ndarray:
    """All states of h_t = exp(log_a_t) * h_{t-1} + b_t, over axis 1.

    log_a, b: (B, L, ...); h0: (B, ...) or None for zeros. Returns h: (B, L, ...).
    Small states (minGRU) use `_scan_prefix`, vectorised over time; large ones (Mamba's
    B x ED x N per step) use `_scan_steps`, a few whole-array operations per step, which
    measured 15x faster there (see benchmarks/README.md).
    """
    carry = np.zeros_like(b[:, 0]) if h0 is None else h0  # (B, ...)
    if b[:, 0].size >= STEP_LOOP_MIN_SIZE:
        return _scan_steps(log_a, b, carry)
    return _scan_prefix(log_a, b, carry)


def scan_in_place(a: np.ndarray, h: np.ndarray, h0: np.ndarray | None = None) -> None:
    """h_t = a_t * h_{t-1} + h_t along axis 0 (time), in place: h holds b on entry, the states after.

    Each step is one multiply-add over the whole slab h[t]; a time-major (or swapped-axes) view
    keeps the loop over time and nothing else.
    """
    step = np.empty_like(h[0])
    if h0 is not None:
        np.multiply(a[0], h0, out=step)
        h[0] += step
    for t in range(1, len(h)):
        np.multiply(a[t], h[t - 1], out=step)
        h[t] += step


def reverse_scan_in_place(a: np.ndarray, g: np.ndarray) -> None:
    """g_t = g_t + a_{t+1} * g_{t+1} along axis 0, in place: dL/dh on entry, total gradients after."""
    step = np.empty_like(g[0])
    for t in range(len(g) - 2, -1, -1):
        np.multiply(a[t + 1], g[t + 1], out=step)
        g[t] += step


def _scan_steps(log_a: np.ndarray, b: np.ndarray, carry: np.ndarray) -> np.ndarray:
    """The recurrence step by step over axis 1 of (B, L, ...) arrays."""
    h = b.copy()
    scan_in_place(np.exp(log_a).swapaxes(0, 1), h.swapaxes(0, 1), carry)
    return h


def reverse_scan(a: np.ndarray, dh: np.ndarray) -> np.ndarray:
    """The total gradients g of linear_scan's states: g_t = dh_t + a_{t+1} * g_{t+1}.

    a = exp(log_a) and dh = dL/dh_t: (B, L, ...). A loop over time with whole-slab operations
    (used where states are large; small ones go through the prefix form, see linear_scan_backward).
    """
    g = dh.copy()
    reverse_scan_in_place(a.swapaxes(0, 1), g.swapaxes(0, 1))
    return g


def _scan_prefix(log_a: np.ndarray, b: np.ndarray, carry: np.ndarray) -> np.ndarray:
    """The recurrence for all steps at once, as prefix sums over time.

    With c_t = -sum_{j<=t} log_a_j (the decay so far, >= 0),
        h_t = exp(-c_t) * (h_0 + sum_{k<=t} exp(c_k) * b_k),
    and both prefix sums are one batched product with a lower-triangular matrix of ones.
    Where exp(c) would grow past exp(DECAY_LIMIT), the sequence is cut into chunks that
    restart c from 0 and carry the last state over (it takes strongly closed gates).

    Saturated gates stay finite: one step's decay is capped at DECAY_LIMIT (a factor below
    exp(-DECAY_LIMIT), 1 - z rounded to 0 included, acts as exp(-DECAY_LIMIT), which differs
    from it by less than the dtype resolves), so every chunk holds at least one step and
    exp(c) never overflows. A chunk whose prefix sums still come out inf or NaN (huge or
    non-finite b) is redone step by step: the product with the matrix of ones would spread a
    non-finite value at step k to the steps before k (0 * inf = NaN), the loop only forward.
    """
    B, L = b.shape[:2]
    limit = DECAY_LIMIT[b.dtype.type]
    decay = np.negative(log_a).reshape(B, L, -1)  # (B, L, M)
    np.minimum(decay, limit, out=decay)  # NaN stays NaN
    b_flat = b.reshape(B, L, -1)  # (B, L, M)
    carry = carry.reshape(B, 1, -1)  # (B, 1, M)
    h = np.empty_like(b_flat)
    s, longest = 0, MAX_CHUNK
    while s < L:
        span = min(L - s, longest)  # look at most MAX_CHUNK steps ahead: O(L * MAX_CHUNK) work
        ones = np.tril(np.ones((span, span), dtype=b.dtype))
        c = ones @ decay[:, s : s + span]  # (B, span, M) decay since the chunk start
        too_far = np.flatnonzero(c.max(axis=0).max(axis=1) > limit)
        e = s + span if len(too_far) == 0 else s + max(int(too_far[0]), 1)
        growth = np.exp(c[:, : e - s])  # (B, C, M) exp(c_t), at most exp(limit)
        chunk = ones[: e - s, : e - s] @ (growth * b_flat[:, s:e])  # (B, C, M)
        chunk += carry
        chunk /= growth
        if not np.isfinite(np.add.reduce(chunk, axis=None)):  # one pass; a false alarm only costs time
            chunk = _scan_steps(log_a.reshape(B, L, -1)[:, s:e], b_flat[:, s:e], carry[:, 0])
        h[:, s:e] = chunk
        # after a cut, look only about twice as far ahead as the chunk that was cut, so that
        # a run of saturated gates (chunks of one step) costs O(1) per step, not O(MAX_CHUNK^2)
        longest = MAX_CHUNK if e - s == span else min(MAX_CHUNK, 2 * (e - s))
        carry, s = chunk[:, -1:], e
    return h.reshape(b.shape)


def linear_scan_backward(
    dh: np.ndarray, log_a: np.ndarray, h: np.ndarray, h0: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dlog_a, db, dh0) of linear_scan, given dL/dh for every step.

    The total gradient g_t of h_t obeys the same recurrence run backwards,
        g_t = dh_t + a_{t+1} * g_{t+1},
    so it is one more linear scan on reversed time. Then db_t = g_t and
    dlog_a_t = g_t * a_t * h_{t-1}.
    """
    a = np.exp(log_a)  # (B, L, ...); a gate shut for good (log_a -> -inf) gives exactly 0
    if dh[:, 0].size >= STEP_LOOP_MIN_SIZE:
        g = reverse_scan(a, dh)
    else:
        log_a_next = np.zeros_like(log_a)  # a_{t+1}, reversed in time; the last step has no successor
        log_a_next[:, 1:] = log_a[:, :0:-1]
        g = linear_scan(log_a_next, np.ascontiguousarray(dh[:, ::-1]))[:, ::-1]  # (B, L, ...)
    h_prev = np.empty_like(h)
    h_prev[:, 0] = 0.0 if h0 is None else h0
    h_prev[:, 1:] = h[:, :-1]
    return g * a * h_prev, g, g[:, 0] * a[:, 0]


# ---- losses ------------------------------------------------------------------------------------


FORECAST_LOSSES = ("mse", "mae", "mse+mae")  # train.loss of a forecast


def mse_loss(y: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Mean (weighted) squared error, mean(w (y - target)^2), and its gradient with respect to y."""
    diff = y - target
    weighted = diff if weight is None else weight * diff
    return float(np.mean(weighted * diff)), (2.0 / diff.size) * weighted


def mae_loss(y: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Mean (weighted) absolute error, mean(sqrt(w) |y - target|), and its (sub)gradient with respect to y.

    `weight` is the one mse_loss takes, a scale squared (RevIN's), so sqrt(w) |y - target| is the
    error in the scaler's units, as the protocol's MAE measures it.
    """
    diff = y - target
    scale = 1.0 if weight is None else np.sqrt(weight)
    return float(np.mean(scale * np.abs(diff))), (scale * np.sign(diff)) / diff.size


def forecast_loss(
    name: str, y: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Loss `name` of FORECAST_LOSSES (mse+mae: their sum, the two errors the protocol scores) and its
    gradient with respect to y."""
    if name == "mse":
        return mse_loss(y, target, weight)
    if name == "mae":
        return mae_loss(y, target, weight)
    if name == "mse+mae":
        squared, d_squared = mse_loss(y, target, weight)
        absolute, d_absolute = mae_loss(y, target, weight)
        return squared + absolute, d_squared + d_absolute
    raise ValueError(f"unknown forecast loss {name!r}; choose one of {FORECAST_LOSSES}")


def cross_entropy_loss(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy in nats of logits (..., V) against integer targets (...), and its gradient.

    With a stable log-softmax, log p = (s - max s) - log sum exp(s - max s), the loss is
    -mean(log p[target]) and dL/ds = (softmax(s) - onehot(target)) / N over the N positions.
    """
    V = logits.shape[-1]
    s = logits.reshape(-1, V)  # (N, V)
    N = s.shape[0]
    rows, t = np.arange(N), check_ids(targets, V).reshape(-1)  # (N,)
    p = s - s.max(axis=1, keepdims=True)  # (N, V) shifted logits, max 0
    log_p_target = p[rows, t]  # (N,) shifted logit of the target, a copy
    np.exp(p, out=p)
    total = p.sum(axis=1, keepdims=True)  # (N, 1) in [1, V]
    log_p_target -= np.log(total[:, 0])  # (N,) log softmax at the target
    p /= total  # (N, V) softmax
    p[rows, t] -= 1.0
    p /= N
    return float(-np.mean(log_p_target, dtype=np.float64)), p.reshape(logits.shape)


# ---- activations with their derivatives --------------------------------------------------------


def silu(x: np.ndarray) -> np.ndarray:
    """x * sigmoid(x)."""
    return x * sigmoid(x)


def silu_grad(x: np.ndarray) -> np.ndarray:
    """d silu(x) / dx = sigmoid(x) * (1 + x * (1 - sigmoid(x)))."""
    s = sigmoid(x)
    return s * (1 + x * (1 - s))


# ---- RMSNorm (Zhang & Sennrich, 2019) ---------------------------------------------------------------

RMS_EPS = 1e-5  # added to mean(x^2)


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float = RMS_EPS) -> tuple[np.ndarray, tuple]:
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


def conv_input(x: np.ndarray, K: int, prefix: np.ndarray | None = None) -> np.ndarray:
    """x (B, L, C) with the K-1 inputs before it in front, (B, L+K-1, C): `prefix`, or zeros."""
    B, _, C = x.shape
    before = np.zeros((B, K - 1, C), dtype=x.dtype) if prefix is None else prefix.astype(x.dtype, copy=False)
    return np.concatenate([before, x], axis=1)


def causal_conv1d(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray, prefix: np.ndarray | None = None
) -> np.ndarray:
    """y_t = sum_k weight[:, k] * x_{t - (K-1) + k} + bias, zeros (or `prefix`) before the start.

    x: (B, L, C); weight: (C, K); bias: (C,); prefix: (B, K-1, C), the inputs before x (the
    convolution's state when a sequence is run in pieces). Each channel has its own filter
    (depthwise), and y_t sees only x_{<= t} (causal), like torch's Conv1d(groups=C, padding=K-1)[..., :L].
    """
    B, L, C = x.shape
    K = weight.shape[1]
    x_pad = conv_input(x, K, prefix)  # (B, L+K-1, C)
    y = np.broadcast_to(bias, (B, L, C)).copy()
    for k in range(K):  # K is small (4): one vectorised multiply-add per tap
        y += weight[:, k] * x_pad[:, k : k + L]
    return y


def causal_conv1d_backward(
    dy: np.ndarray, x: np.ndarray, weight: np.ndarray, prefix: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """Gradients (dx, dweight, dbias) of causal_conv1d."""
    L, K = x.shape[1], weight.shape[1]
    x_pad = conv_input(x, K, prefix)
    dx_pad = np.zeros_like(x_pad)
    dweight = np.empty_like(weight)
    for k in range(K):
        dweight[:, k] = np.einsum("blc,blc->c", dy, x_pad[:, k : k + L])
        dx_pad[:, k : k + L] += weight[:, k] * dy
    return dx_pad[:, K - 1 :], dweight, dy.sum(axis=(0, 1))


# ---- selective scan (Mamba's S6, Gu & Dao 2023, algorithm 2) ----------------------------------------


def _time_major(x: np.ndarray) -> np.ndarray:
    """(b, L, ...) -> a contiguous (L, b, ...) copy, so that each time step is one block."""
    return np.ascontiguousarray(x.swapaxes(0, 1))


def selective_scan(
    u: np.ndarray,
    delta: np.ndarray,
    A: np.ndarray,
    B: np.ndarray,
    C: np.ndarray,
    D: np.ndarray,
    h0: np.ndarray | None = None,
    discretization: str = "delta_b",
) -> tuple[np.ndarray, tuple]:
    """y = SSM(A, B, C)(u) with input-dependent step delta.

    u, delta: (b, L, E); A: (E, N) (negative); B, C: (b, L, N); D: (E,); h0: (b, E, N), the
    state before the first step (None: zeros). For each channel e and state n:
               A_bar = exp(delta A),   B_bar = delta B                    (delta_b: the official code)
                                    or B_bar = (exp(delta A) - 1) / A * B  (zoh: exact for diagonal A)
               h_t = A_bar_t * h_{t-1} + B_bar_t * u_t,   y_t = sum_n C_t h_t + D u_t
    The (L, b, N, E) arrays dominate the cost: they are time-major (each step one contiguous
    block for the loop over time) with the long channel axis E innermost, and each is made in
    as few passes as possible.
    """
    u, delta, B, C = (_time_major(v) for v in (u, delta, B, C))  # (L, b, .)
    L, b, E = u.shape
    N = A.shape[1]
    A_t = np.ascontiguousarray(A.T)  # (N, E)
    log_a = delta[:, :, None, :] * A_t  # (L, b, N, E) = log A_bar
    a_bar = np.exp(log_a)  # (L, b, N, E)
    if discretization == "zoh":
        w = np.expm1(log_a, out=log_a)  # reusing log_a's memory
        w /= A_t  # (L, b, N, E) (A_bar - 1) / A
    else:
        w = delta[:, :, None, :]  # (L, b, 1, E)
    s = B[..., None] * u[:, :, None, :]  # (L, b, N, E) = B u, the input before discretisation
    h = w * s  # (L, b, N, E), B_bar u, turned into the states in place:
    h0_t = None if h0 is None else h0.swapaxes(1, 2)  # (b, N, E)
    scan_in_place(a_bar, h, h0_t)  # h_t = A_bar_t h_{t-1} + B_bar_t u_t
    y = (C.reshape(L * b, 1, N) @ h.reshape(L * b, N, E)).reshape(L, b, E) + D * u  # (L, b, E)
    return y.swapaxes(0, 1), (u, delta, A_t, B, C, D, a_bar, w, s, h, h0_t, discretization)


def selective_scan_state(cache: tuple) -> np.ndarray:
    """The state after the last step of a selective_scan, from its cache: (b, E, N), a copy."""
    h = cache[9]  # (L, b, N, E)
    return h[-1].swapaxes(1, 2).copy()


def selective_scan_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray, ...]:
    """Gradients (du, ddelta, dA, dB, dC, dD) of selective_scan.

    With G the total gradient of h (a reverse scan), w = B_bar / B (zoh or delta), Q = G A_bar:
        du = sum_n G w B + D dy,   dB = sum_e G w u, and with R = A h_{t-1} + B u
        zoh:      ddelta = sum_n Q R,                  dA = (sum_{b,t} delta Q R - sum_{b,t} G w B u) / A,
        delta_b:  ddelta = sum_n (Q A h_{t-1} + G B u),  dA = sum_{b,t} delta Q h_{t-1}.
    """
    u, delta, A_t, B, C, D, a_bar, w, s, h, h0_t, discretization = cache  # time-major, (L, b, ...)
    L, b, N, E = h.shape
    dy = _time_major(dy)  # (L, b, E)
    dC = (h.reshape(L * b, N, E) @ dy.reshape(L * b, E, 1)).reshape(L, b, N)
    dD = np.einsum("lbe,lbe->e", dy, u)
    G = C[..., None] * dy[:, :, None, :]  # (L, b, N, E) dL/dh_t, turned into totals in place:
    reverse_scan_in_place(a_bar, G)  # G_t = dh_t + A_bar_{t+1} G_{t+1}
    R = np.empty_like(h)  # A h_{t-1} (+ B u for zoh)
    if h0_t is None:
        R[0] = 0
    else:
        np.multiply(h0_t, A_t, out=R[0])
    np.multiply(h[:-1], A_t, out=R[1:])
    if discretization == "zoh":
        R += s
    QR = R
    QR *= G
    QR *= a_bar  # (L, b, N, E)
    ddelta = QR.sum(axis=2)  # (L, b, E)
    if discretization != "zoh":
        ddelta += np.einsum("lbne,lbne->lbe", G, s)  # B_bar = delta B
    GZ = G
    GZ *= w  # (L, b, N, E) = dL/d(B u)
    du = (B.reshape(L * b, 1, N) @ GZ.reshape(L * b, N, E)).reshape(L, b, E) + D * dy
    dB = (GZ.reshape(L * b, N, E) @ u.reshape(L * b, E, 1)).reshape(L, b, N)
    QR *= delta[:, :, None, :]
    dA_t = QR.sum(axis=(0, 1))  # (N, E)
    if discretization == "zoh":
        GZ *= s
        dA_t -= GZ.sum(axis=(0, 1))
    dA_t /= A_t  # QR holds delta Q A h_{t-1} (+ delta Q B u for zoh)
    back = (v.swapaxes(0, 1) for v in (du, ddelta, dB, dC))  # (b, L, ...)
    du, ddelta, dB, dC = back
    return du, ddelta, dA_t.T, dB, dC, dD
