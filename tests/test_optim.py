"""Optimiser updates against their formulas, gradient clipping, and the learning-rate schedule."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqbench.models.optim import SGD, Adam, AdamW, clip_grad_norm, make_optimizer, scheduled_lr


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
    grad = np.array([3.0, 0.0, 4.0])  # all gradients, flattened
    norm = clip_grad_norm(grad, 1.0)
    assert norm == pytest.approx(5.0)
    assert np.sqrt(np.sum(grad**2)) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(grad[:2], [0.6, 0.0], rtol=1e-5)


def test_clip_grad_norm_off_and_below_limit_leave_gradients():
    grad = np.array([0.3, 0.4])
    clip_grad_norm(grad, None)
    clip_grad_norm(grad, 1.0)
    np.testing.assert_array_equal(grad, [0.3, 0.4])


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


def test_constant_schedule_without_warmup_is_the_base_lr():
    assert [scheduled_lr(0.1, k, 5, "constant") for k in range(1, 6)] == [0.1] * 5


def test_warmup_rises_linearly_then_holds():
    lrs = [scheduled_lr(1.0, k, 6, "constant", warmup_epochs=3) for k in range(1, 7)]
    assert lrs == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])


def test_cosine_starts_at_base_after_warmup_and_decays_towards_zero():
    lrs = [scheduled_lr(1.0, k, 6, "cosine", warmup_epochs=2) for k in range(1, 7)]
    # warm-up 1/3, 2/3; then cos over the 4 remaining epochs, progress 0, 1/4, 2/4, 3/4
    expected = [1 / 3, 2 / 3] + [0.5 * (1 + math.cos(math.pi * i / 4)) for i in range(4)]
    assert lrs == pytest.approx(expected)
    assert lrs[2] == pytest.approx(1.0) and lrs[-1] > 0


def test_cosine_with_a_single_epoch_uses_the_base_lr():
    assert scheduled_lr(0.01, 1, 1, "cosine") == pytest.approx(0.01)


def test_unknown_schedule_is_an_error():
    with pytest.raises(ValueError, match="linear"):
        scheduled_lr(0.1, 2, 5, "linear")


@given(
    epochs=st.integers(1, 200),
    warmup=st.integers(0, 250),
    schedule=st.sampled_from(["constant", "cosine"]),
    base=st.floats(1e-6, 10.0),
)
def test_schedule_is_positive_bounded_and_monotone_after_warmup(epochs, warmup, schedule, base):
    lrs = [scheduled_lr(base, k, epochs, schedule, warmup) for k in range(1, epochs + 1)]
    assert all(0 < lr <= base * (1 + 1e-12) for lr in lrs)
    rising, falling = lrs[: min(warmup, epochs)], lrs[min(warmup, epochs) :]
    assert all(a < b for a, b in itertools.pairwise(rising))
    assert all(a >= b for a, b in itertools.pairwise(falling))
