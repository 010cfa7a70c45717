"""Each NumPy building block against finite differences (float64) and a plain reference."""

import numpy as np
import pytest

from seqbench.gradcheck import numeric_gradient, relative_error
from seqbench.models.numpy.layers import (
    linear,
    linear_backward,
    linear_scan,
    linear_scan_backward,
    mse_loss,
    sigmoid,
    softplus,
)


def sequential_scan(log_a, b, h0=None):
    h = np.zeros_like(b[:, 0]) if h0 is None else h0.copy()
    out = []
    for t in range(b.shape[1]):
        h = np.exp(log_a[:, t]) * h + b[:, t]
        out.append(h)
    return np.stack(out, axis=1)


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 7, 4), (3, 50, 2), (2, 5, 3, 4)])
def test_linear_scan_matches_a_loop(shape):
    rng = np.random.default_rng(1)
    log_a = -rng.uniform(0, 3, size=shape)
    b = rng.normal(size=shape)
    h0 = rng.normal(size=(shape[0], *shape[2:]))
    np.testing.assert_allclose(
        linear_scan(log_a, b, h0), sequential_scan(log_a, b, h0), rtol=1e-10, atol=1e-12
    )


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
    np.testing.assert_allclose(sigmoid(x[1:-1]), 1 / (1 + np.exp(-x[1:-1])))
    np.testing.assert_allclose(softplus(x[1:-1]), np.log1p(np.exp(x[1:-1])))
    # softplus' derivative is sigmoid
    eps = 1e-6
    np.testing.assert_allclose(
        (softplus(x[1:-1] + eps) - softplus(x[1:-1] - eps)) / (2 * eps), sigmoid(x[1:-1]), rtol=1e-6
    )


def test_mse_loss_gradient():
    rng = np.random.default_rng(5)
    y, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    loss, dy = mse_loss(y, t)
    assert loss == pytest.approx(np.mean((y - t) ** 2))
    _, numeric = numeric_gradient(lambda: mse_loss(y, t)[0], y)
    assert relative_error(dy.reshape(-1), numeric) < 1e-6
