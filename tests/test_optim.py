"""Optimiser updates against their formulas, and gradient clipping."""

import numpy as np
import pytest

from seqbench.optim import SGD, Adam, AdamW, clip_grad_norm, make_optimizer


def params_and_grads(seed=0):
    rng = np.random.default_rng(seed)
    return {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}, [
        {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2)} for _ in range(3)
    ]


def test_sgd_with_momentum_and_weight_decay():
    params, steps = params_and_grads()
    expected = {k: v.copy() for k, v in params.items()}
    opt = SGD(params, lr=0.1, momentum=0.9, weight_decay=0.01)
    buf = {}
    for grads in steps:
        opt.step({k: v.copy() for k, v in grads.items()})
        for k in expected:
            g = grads[k] + 0.01 * expected[k]
            buf[k] = g if k not in buf else 0.9 * buf[k] + g
            expected[k] = expected[k] - 0.1 * buf[k]
    for k in params:
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-12)


@pytest.mark.parametrize(("cls", "decoupled"), [(Adam, False), (AdamW, True)])
def test_adam_and_adamw(cls, decoupled):
    params, steps = params_and_grads(1)
    expected = {k: v.copy() for k, v in params.items()}
    lr, wd, b1, b2, eps = 0.01, 0.1, 0.9, 0.999, 1e-8
    opt = cls(params, lr=lr, weight_decay=wd)
    m = {k: 0.0 for k in params}
    v = {k: 0.0 for k in params}
    for t, grads in enumerate(steps, start=1):
        opt.step({k: g.copy() for k, g in grads.items()})
        for k in expected:
            g = grads[k]
            if decoupled:
                expected[k] = expected[k] * (1 - lr * wd)
            else:
                g = g + wd * expected[k]
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            m_hat, v_hat = m[k] / (1 - b1**t), v[k] / (1 - b2**t)
            expected[k] = expected[k] - lr * m_hat / (np.sqrt(v_hat) + eps)
    for k in params:
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-10)


def test_clip_grad_norm_scales_to_max_norm_and_reports_the_old_norm():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    norm = clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(5.0)
    new = np.sqrt(sum(np.sum(g**2) for g in grads.values()))
    assert new == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(grads["a"], [0.6, 0.0], rtol=1e-5)


def test_clip_grad_norm_off_and_below_limit_leave_gradients():
    grads = {"a": np.array([0.3, 0.4])}
    clip_grad_norm(grads, None)
    clip_grad_norm(grads, 1.0)
    np.testing.assert_array_equal(grads["a"], [0.3, 0.4])


def test_state_dict_round_trip_continues_identically():
    params, steps = params_and_grads(2)
    twin = {k: v.copy() for k, v in params.items()}
    a = make_optimizer("adam", params, lr=0.01)
    a.step(steps[0])
    b = make_optimizer("adam", twin, lr=0.01)
    b.step(steps[0])
    restored = make_optimizer("adam", twin, lr=0.01)
    restored.load_state_dict(b.state_dict())
    a.step(steps[1])
    restored.step(steps[1])
    for k in params:
        np.testing.assert_array_equal(params[k], twin[k])
