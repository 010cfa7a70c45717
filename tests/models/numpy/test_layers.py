"""Each NumPy building block against finite differences (float64) and a plain reference."""

import numpy as np
import pytest

from seqbench.checks.gradcheck import numeric_gradient, relative_error
from seqbench.models.numpy.layers import (
    causal_conv1d,
    causal_conv1d_backward,
    cross_entropy_loss,
    embedding,
    embedding_backward,
    forecast_loss,
    linear,
    linear_backward,
    linear_scan,
    linear_scan_backward,
    mae_loss,
    mse_loss,
    rms_norm,
    rms_norm_backward,
    selective_scan,
    selective_scan_backward,
    selective_scan_state,
    sigmoid,
    silu,
    silu_grad,
    softplus,
)


def sequential_scan(log_a, b, h0=None):
    h = np.zeros_like(b[:, 0]) if h0 is None else h0.copy()
    out = []
    for t in range(b.shape[1]):
        h = np.exp(log_a[:, t]) * h + b[:, t]
        out.append(h)
    return np.stack(out, axis=1)


# the last shape has 2 x 130 x 128 values per step: the step-loop path, not the prefix sums
@pytest.mark.parametrize(
    "shape", [(1, 1, 3), (2, 7, 4), (3, 50, 2), (2, 300, 3), (2, 5, 3, 4), (2, 6, 130, 128)]
)
def test_linear_scan_matches_a_loop(shape):
    rng = np.random.default_rng(1)
    log_a = -rng.uniform(0, 3, size=shape)
    b = rng.normal(size=shape)
    h0 = rng.normal(size=(shape[0], *shape[2:]))
    np.testing.assert_allclose(
        linear_scan(log_a, b, h0), sequential_scan(log_a, b, h0), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("shape", [(2, 6, 4), (2, 6, 130, 128)])  # prefix-sum and step-loop paths
def test_linear_scan_backward_total_gradient_matches_a_loop(shape):
    rng = np.random.default_rng(9)
    log_a, b, dh = -rng.uniform(0, 2, size=shape), rng.normal(size=shape), rng.normal(size=shape)
    _, g, _ = linear_scan_backward(dh, log_a, linear_scan(log_a, b))
    expected = dh.copy()
    for t in range(shape[1] - 2, -1, -1):
        expected[:, t] += np.exp(log_a[:, t + 1]) * expected[:, t + 1]
    np.testing.assert_allclose(g, expected, rtol=1e-10, atol=1e-12)


def test_linear_scan_survives_saturated_gates_in_float32():
    rng = np.random.default_rng(2)
    log_a = -rng.uniform(0, 80, size=(4, 40, 8)).astype(np.float32)  # decays down to exp(-80)
    b = rng.normal(size=(4, 40, 8)).astype(np.float32)
    h = linear_scan(log_a, b)
    assert np.all(np.isfinite(h))
    np.testing.assert_allclose(
        h, sequential_scan(log_a.astype(np.float64), b.astype(np.float64)), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("shape", [(1, 1, 2), (2, 6, 3), (2, 4, 2, 3)])
def test_linear_scan_backward_matches_finite_differences(shape):
    rng = np.random.default_rng(3)
    log_a = -rng.uniform(0.1, 2, size=shape)
    b = rng.normal(size=shape)
    h0 = rng.normal(size=(shape[0], *shape[2:]))
    w = rng.normal(size=shape)

    def f():
        return float(np.sum(w * linear_scan(log_a, b, h0)))

    dlog_a, db, dh0 = linear_scan_backward(w, log_a, linear_scan(log_a, b, h0), h0)
    for analytic, array in ((dlog_a, log_a), (db, b), (dh0, h0)):
        _, numeric = numeric_gradient(f, array)
        assert relative_error(analytic.reshape(-1), numeric) < 1e-6


def test_linear_backward_matches_finite_differences():
    rng = np.random.default_rng(4)
    x, W, b = rng.normal(size=(2, 3, 4)), rng.normal(size=(4, 5)), rng.normal(size=5)
    w = rng.normal(size=(2, 3, 5))
    dx, dW, db = linear_backward(w, x, W)
    for analytic, array in ((dx, x), (dW, W), (db, b)):
        _, numeric = numeric_gradient(lambda: float(np.sum(w * linear(x, W, b))), array)
        assert relative_error(analytic.reshape(-1), numeric) < 1e-6


def test_sigmoid_and_softplus_are_stable_and_consistent():
    x = np.array([-800.0, -30.0, -1.0, 0.0, 1.0, 30.0, 800.0])
    assert np.all(np.isfinite(sigmoid(x))) and np.all(np.isfinite(softplus(x)))
    np.testing.assert_allclose(sigmoid(x[1:-1]), 1 / (1 + np.exp(-x[1:-1])), rtol=1e-12, atol=1e-15)
    assert sigmoid(np.array([-800.0]))[0] == 0 and sigmoid(np.array([800.0]))[0] == 1
    np.testing.assert_allclose(softplus(x[1:-1]), np.log1p(np.exp(x[1:-1])))
    # softplus' derivative is sigmoid
    eps = 1e-6
    np.testing.assert_allclose(
        (softplus(x[1:-1] + eps) - softplus(x[1:-1] - eps)) / (2 * eps),
        sigmoid(x[1:-1]),
        rtol=1e-6,
        atol=1e-15,
    )


def test_mse_loss_gradient():
    rng = np.random.default_rng(5)
    y, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    loss, dy = mse_loss(y, t)
    assert loss == pytest.approx(np.mean((y - t) ** 2))
    _, numeric = numeric_gradient(lambda: mse_loss(y, t)[0], y)
    assert relative_error(dy.reshape(-1), numeric) < 1e-6


def test_weighted_mse_loss_and_its_gradient():
    rng = np.random.default_rng(6)
    y, t, w = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.uniform(0.01, 3.0, size=(4, 3))
    loss, dy = mse_loss(y, t, w)
    assert loss == pytest.approx(np.mean(w * (y - t) ** 2))
    _, numeric = numeric_gradient(lambda: mse_loss(y, t, w)[0], y)
    assert relative_error(dy.reshape(-1), numeric) < 1e-6


@pytest.mark.parametrize("weighted", [False, True])
def test_mae_loss_is_the_error_in_scaled_units_and_its_gradient(weighted):
    """w is a scale squared (RevIN's), so sqrt(w) |y - t| is the error in the scaler's units."""
    rng = np.random.default_rng(7)
    y, t, w = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.uniform(0.01, 3.0, size=(4, 3))
    w = w if weighted else None
    loss, dy = mae_loss(y, t, w)
    assert loss == pytest.approx(np.mean((1.0 if w is None else np.sqrt(w)) * np.abs(y - t)))
    _, numeric = numeric_gradient(lambda: mae_loss(y, t, w)[0], y)  # no entry sits at y == t
    assert relative_error(dy.reshape(-1), numeric) < 1e-6


def test_mse_plus_mae_is_their_sum_with_its_gradient():
    rng = np.random.default_rng(8)
    y, t, w = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.uniform(0.01, 3.0, size=(4, 3))
    loss, dy = forecast_loss("mse+mae", y, t, w)
    assert loss == pytest.approx(mse_loss(y, t, w)[0] + mae_loss(y, t, w)[0])
    _, numeric = numeric_gradient(lambda: forecast_loss("mse+mae", y, t, w)[0], y)
    assert relative_error(dy.reshape(-1), numeric) < 1e-6
    assert forecast_loss("mse", y, t, w)[0] == mse_loss(y, t, w)[0]
    with pytest.raises(ValueError, match="unknown forecast loss"):
        forecast_loss("huber", y, t, w)


def check_gradients(forward, backward_grads, arrays, w):
    """Compare backward_grads (one per array) with finite differences of sum(w * forward())."""
    for analytic, array in zip(backward_grads, arrays, strict=True):
        _, numeric = numeric_gradient(lambda: float(np.sum(w * forward())), array)
        assert relative_error(analytic.reshape(-1), numeric) < 1e-6


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 5, 4)])
def test_rms_norm_backward(shape):
    rng = np.random.default_rng(6)
    x, weight, w = rng.normal(size=shape), rng.normal(size=shape[-1]), rng.normal(size=shape)
    y, cache = rms_norm(x, weight)
    np.testing.assert_allclose(np.sqrt(np.mean((y / weight) ** 2, axis=-1)), 1, rtol=1e-4)
    check_gradients(lambda: rms_norm(x, weight)[0], rms_norm_backward(w, cache), (x, weight), w)


@pytest.mark.parametrize(("shape", "K"), [((1, 1, 2), 4), ((2, 6, 3), 3), ((2, 3, 2), 1)])
def test_causal_conv1d_is_causal_and_exact(shape, K):
    rng = np.random.default_rng(7)
    x, weight, bias, w = (
        rng.normal(size=shape),
        rng.normal(size=(shape[2], K)),
        rng.normal(size=shape[2]),
        rng.normal(size=shape),
    )
    y = causal_conv1d(x, weight, bias)
    # reference: an explicit loop over time and taps
    ref = np.tile(bias, (shape[0], shape[1], 1))
    for t in range(shape[1]):
        for k in range(K):
            src = t - (K - 1) + k
            if src >= 0:
                ref[:, t] += weight[:, k] * x[:, src]
    np.testing.assert_allclose(y, ref, rtol=1e-12)
    changed = x.copy()
    changed[:, -1] += 1.0  # the future does not reach the past
    np.testing.assert_array_equal(causal_conv1d(changed, weight, bias)[:, :-1], y[:, :-1])
    check_gradients(
        lambda: causal_conv1d(x, weight, bias), causal_conv1d_backward(w, x, weight), (x, weight, bias), w
    )


def test_silu_grad():
    x = np.linspace(-6, 6, 25)
    _, numeric = numeric_gradient(lambda: float(np.sum(silu(x))), x)
    assert relative_error(silu_grad(x), numeric) < 1e-6


@pytest.mark.parametrize("disc", ["delta_b", "zoh"])
@pytest.mark.parametrize(("b", "L", "E", "N"), [(1, 1, 2, 3), (2, 7, 3, 4)])
def test_selective_scan_matches_the_recurrence_and_finite_differences(b, L, E, N, disc):
    rng = np.random.default_rng(8)
    u, delta = rng.normal(size=(b, L, E)), rng.uniform(0.05, 1.5, size=(b, L, E))
    A = -np.exp(rng.normal(size=(E, N)))
    B, C, D = rng.normal(size=(b, L, N)), rng.normal(size=(b, L, N)), rng.normal(size=E)
    y, cache = selective_scan(u, delta, A, B, C, D, discretization=disc)
    # reference: the recurrence of the paper, step by step: B_bar = delta B, or exact ZOH for diagonal A
    h = np.zeros((b, E, N))
    for t in range(L):
        dA = np.exp(delta[:, t, :, None] * A)
        B_bar = (dA - 1) / A if disc == "zoh" else delta[:, t, :, None]
        h = dA * h + B_bar * B[:, t, None, :] * u[:, t, :, None]
        np.testing.assert_allclose(y[:, t], (h * C[:, t, None, :]).sum(-1) + D * u[:, t], rtol=1e-10)
    w = rng.normal(size=y.shape)
    check_gradients(
        lambda: selective_scan(u, delta, A, B, C, D, discretization=disc)[0],
        selective_scan_backward(w, cache),
        (u, delta, A, B, C, D),
        w,
    )


# ---- saturated gates: decays of exactly 0 and far below the dtype's range ----------------------


def saturated_decays(shape, dtype, seed=0):
    """log_a of gates shut to the last bit: -inf (a factor of exactly 0), -1e3, -100, and ordinary ones."""
    rng = np.random.default_rng(seed)
    choices = np.array([-np.inf, -1e3, -100.0, -89.0, -61.0, -30.0, -1.0, -1e-3, 0.0])
    return rng.choice(choices, size=shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 40, 4), (2, 300, 3), (2, 9, 2, 3)])
def test_linear_scan_with_factors_of_zero_and_underflow_is_finite_and_exact(dtype, shape):
    log_a = saturated_decays(shape, dtype)
    b = (np.random.default_rng(1).normal(size=shape) * 1e3).astype(dtype)
    h = linear_scan(log_a, b)
    assert np.all(np.isfinite(h))
    expected = sequential_scan(log_a.astype(np.float64), b.astype(np.float64))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(h, expected, rtol=tol, atol=tol * np.abs(expected).max())
    g = linear_scan_backward(np.ones_like(b), log_a, h)
    assert all(np.all(np.isfinite(v)) for v in g)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_scan_stays_causal_when_later_steps_overflow(dtype):
    """A huge b (or inf) after step t must not reach steps <= t: a product with the matrix of ones
    would spread it backwards (0 * inf = NaN); the states before it stay what they were."""
    rng = np.random.default_rng(2)
    log_a = -rng.uniform(0, 3, size=(2, 50, 3)).astype(dtype)
    b = rng.normal(size=(2, 50, 3)).astype(dtype)
    h = linear_scan(log_a, b)
    tol = 1e-12 if dtype == np.float64 else 1e-4  # float32's prefix sums: exp(c) to ~60 ulp
    big = np.finfo(dtype).max / 4
    for t in (0, 10, 31, 48):
        for later in (big, np.inf, np.nan):
            changed = b.copy()
            changed[:, t + 1] = later
            with np.errstate(over="ignore", invalid="ignore"):
                states = linear_scan(log_a, changed)
            assert np.all(np.isfinite(states[:, : t + 1]))
            np.testing.assert_allclose(states[:, : t + 1], h[:, : t + 1], rtol=tol, atol=tol)
    # every gate shut: each state is its own b, in chunks of one step that cost about one step each
    shut = np.full((2, 2000, 3), -1e3, dtype=dtype)
    np.testing.assert_allclose(linear_scan(shut, b.repeat(40, axis=1)), b.repeat(40, axis=1), rtol=tol)


# ---- embedding and cross-entropy (language models) ---------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_backward_sums_the_rows_of_each_id(dtype):
    rng = np.random.default_rng(10)
    V, D = 13, 5
    ids = rng.integers(0, V - 3, size=(4, 9))  # the last 3 rows are never used: their gradient is 0
    weight = rng.normal(size=(V, D)).astype(dtype)
    out = embedding(ids, weight)
    assert out.shape == (4, 9, D) and out.dtype == dtype
    np.testing.assert_array_equal(out, weight[ids])
    d_out = rng.normal(size=out.shape).astype(dtype)
    dW = embedding_backward(d_out, ids, V)
    expected = np.zeros((V, D))
    np.add.at(expected, ids.reshape(-1), d_out.reshape(-1, D).astype(np.float64))
    assert dW.shape == (V, D) and dW.dtype == dtype
    np.testing.assert_allclose(dW, expected, rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-6)
    assert not np.any(dW[-3:])


def test_embedding_backward_matches_finite_differences():
    rng = np.random.default_rng(11)
    ids, weight = rng.integers(0, 6, size=(3, 4)), rng.normal(size=(6, 3))
    w = rng.normal(size=(3, 4, 3))
    _, numeric = numeric_gradient(lambda: float(np.sum(w * embedding(ids, weight))), weight)
    assert relative_error(embedding_backward(w, ids, 6).reshape(-1), numeric) < 1e-6


def naive_cross_entropy(logits, targets):
    p = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    return float(-np.mean(np.log(np.take_along_axis(p, targets[..., None], axis=-1))))


@pytest.mark.parametrize("shape", [(1, 1, 2), (3, 5, 7)])
def test_cross_entropy_loss_and_its_gradient(shape):
    rng = np.random.default_rng(12)
    logits, targets = rng.normal(size=shape) * 3, rng.integers(0, shape[-1], size=shape[:-1])
    loss, dlogits = cross_entropy_loss(logits, targets)
    assert loss == pytest.approx(naive_cross_entropy(logits, targets), rel=1e-12)
    assert dlogits.shape == logits.shape
    np.testing.assert_allclose(dlogits.sum(axis=-1), 0, atol=1e-15)  # softmax - onehot sums to 0
    _, numeric = numeric_gradient(lambda: cross_entropy_loss(logits, targets)[0], logits)
    assert relative_error(dlogits.reshape(-1), numeric) < 1e-6
    # uniform logits: exactly log(V), whatever their offset
    loss, _ = cross_entropy_loss(np.full(shape, 5.0), targets)
    assert loss == pytest.approx(np.log(shape[-1]), rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_loss_is_stable_for_huge_logits(dtype):
    logits = np.array([[[1e4, 0.0, -1e4], [-800.0, 800.0, 0.0]]], dtype=dtype)  # (1, 2, 3)
    loss, dlogits = cross_entropy_loss(logits, np.array([[2, 1]]))
    assert np.isfinite(loss) and np.all(np.isfinite(dlogits))
    assert loss == pytest.approx((2e4 + 0.0) / 2, rel=1e-6)  # -log p = 2e4 at the first, ~0 at the second
    assert dlogits.dtype == dtype
    with pytest.raises(ValueError, match=r"0 \.\. 2"):
        cross_entropy_loss(logits, np.array([[3, 0]]))


# ---- carried states: the convolution's prefix and the scan's initial state --------------------------


def test_causal_conv1d_with_a_prefix_continues_the_sequence():
    rng = np.random.default_rng(13)
    x, weight, bias = rng.normal(size=(2, 9, 3)), rng.normal(size=(3, 4)), rng.normal(size=3)
    whole = causal_conv1d(x, weight, bias)
    np.testing.assert_allclose(causal_conv1d(x[:, 5:], weight, bias, x[:, 2:5]), whole[:, 5:], rtol=1e-13)
    np.testing.assert_array_equal(causal_conv1d(x, weight, bias, np.zeros((2, 3, 3))), whole)
    prefix, w = rng.normal(size=(2, 3, 3)), rng.normal(size=(2, 9, 3))
    check_gradients(
        lambda: causal_conv1d(x, weight, bias, prefix),
        causal_conv1d_backward(w, x, weight, prefix),
        (x, weight, bias),
        w,
    )


@pytest.mark.parametrize("disc", ["delta_b", "zoh"])
def test_selective_scan_from_a_state_continues_the_sequence_and_has_exact_gradients(disc):
    rng = np.random.default_rng(14)
    b, L, E, N = 2, 8, 3, 4
    u, delta = rng.normal(size=(b, L, E)), rng.uniform(0.05, 1.5, size=(b, L, E))
    A = -np.exp(rng.normal(size=(E, N)))
    B, C, D = rng.normal(size=(b, L, N)), rng.normal(size=(b, L, N)), rng.normal(size=E)
    whole, cache = selective_scan(u, delta, A, B, C, D, discretization=disc)
    first, first_cache = selective_scan(u[:, :3], delta[:, :3], A, B[:, :3], C[:, :3], D, discretization=disc)
    h = selective_scan_state(first_cache)
    assert h.shape == (b, E, N)
    rest, rest_cache = selective_scan(u[:, 3:], delta[:, 3:], A, B[:, 3:], C[:, 3:], D, h, disc)
    np.testing.assert_allclose(np.concatenate([first, rest], axis=1), whole, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(selective_scan_state(rest_cache), selective_scan_state(cache), rtol=1e-12)
    h0, w = rng.normal(size=(b, E, N)), rng.normal(size=(b, L, E))
    _, cache0 = selective_scan(u, delta, A, B, C, D, h0, disc)
    check_gradients(
        lambda: selective_scan(u, delta, A, B, C, D, h0, disc)[0],
        selective_scan_backward(w, cache0),
        (u, delta, A, B, C, D),
        w,
    )
