"""Saturated gates and huge inputs: the NumPy models stay finite and causal wherever their Torch twins are.

A minGRU gate pre-activation of 88 (float32) or 709 (float64) used to overflow the NumPy scan to
inf, and 100 / 1000 to NaN, which the prefix sums then spread to earlier steps.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from seqbench.models.numpy.layers import mse_loss  # noqa: E402
from seqbench.models.registry import model_class, model_names  # noqa: E402

OPTIONS = {"mamba": {"state_size": 3, "dt_rank": 2}}
L = 40


def rel_diff(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), 1e-30)
    return float(np.max(np.abs(a - b))) / scale


def saturating_mingru(dtype, n_layers):
    """A minGRU whose first layer's gate pre-activation is its input: k_t = x_t."""
    model = model_class("mingru", "numpy")(
        1, 2, hidden_size=3, n_layers=n_layers, rng=np.random.default_rng(0), dtype=dtype
    )
    model.params["layers.0.W_z"][...] = 1.0
    model.params["layers.0.b_z"][...] = 0.0
    return model


def saturating_inputs(pre, dtype, seed=0):
    """Gate pre-activations of +pre throughout, -pre throughout, and a mixture with ordinary values.

    The mixture ends on ordinary gates, so that its gradients are not all rounding-sized.
    """
    rng = np.random.default_rng(seed)
    mixed = rng.choice([pre, -pre, 0.5, -1.0], size=L)
    mixed[-4:] = [0.5, -1.0, 0.3, 2.0]
    return np.stack([np.full(L, pre), np.full(L, -pre), mixed])[..., None].astype(dtype)  # (3, L, 1)


def numpy_and_torch(model, x, target):
    """(y, sequence, gradients) of the NumPy model and of its Torch twin, on the MSE loss."""
    y, caches = model.forward(x)
    grads = model.backward(mse_loss(y, target)[1], caches)
    twin = model_class(type(model).__name__.lower(), "torch").from_numpy(model)
    y_t = twin(torch.from_numpy(x))
    (y_t - torch.from_numpy(target)).pow(2).mean().backward()
    grads_t = {k: p.grad.numpy() for k, p in twin.named_parameters()}
    with torch.no_grad():
        seq_t = twin.sequence(torch.from_numpy(x)).numpy()
    return (y, model.sequence(x), grads), (y_t.detach().numpy(), seq_t, grads_t)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pre", [88.0, 100.0, 709.0, 1000.0])
@pytest.mark.parametrize("n_layers", [1, 2])
def test_saturated_mingru_gates_are_finite_causal_and_match_torch(dtype, pre, n_layers):
    model = saturating_mingru(dtype, n_layers)
    x = saturating_inputs(pre, dtype)
    target = np.ones((3, 2), dtype=dtype)
    (y, seq, grads), (y_t, seq_t, grads_t) = numpy_and_torch(model, x, target)
    assert np.all(np.isfinite(y_t)) and np.all(np.isfinite(seq_t))  # the twin is finite: so must we be
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(seq))
    assert all(np.all(np.isfinite(g)) for g in grads.values())
    tol = 1e-10 if dtype == np.float64 else 1e-5
    assert rel_diff(seq, seq_t) < tol and rel_diff(y, y_t) < tol
    if dtype == np.float64:  # in float32, z (1 - z) near z = 1 is mostly rounding on either backend
        worst = max((rel_diff(grads[k], grads_t[k]), k) for k in grads)
        assert worst[0] < 1e-8, worst

    # the states at steps <= t do not move when the inputs after t do (other saturating values)
    rng = np.random.default_rng(1)
    for t in (0, 9, 20, L - 2):
        changed = x.copy()
        changed[:, t + 1 :] = rng.choice([pre, -pre, 10 * pre, 0.0], size=changed[:, t + 1 :].shape)
        states = model.sequence(changed)
        assert np.all(np.isfinite(states))
        scale = np.abs(seq).max()
        np.testing.assert_allclose(states[:, : t + 1], seq[:, : t + 1], rtol=0, atol=tol * scale)


@pytest.mark.parametrize("name", model_names())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e3, 1e6])
def test_huge_inputs_are_finite_wherever_torch_is(name, dtype, scale):
    model = model_class(name, "numpy")(
        2, 1, hidden_size=4, n_layers=2, rng=np.random.default_rng(0), dtype=dtype, **OPTIONS.get(name, {})
    )
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(3, 12, 2)) * scale).astype(dtype)
    target = rng.normal(size=(3, 1)).astype(dtype)
    (y, seq, grads), (y_t, seq_t, grads_t) = numpy_and_torch(model, x, target)
    for ours, theirs in ((y, y_t), (seq, seq_t), *((grads[k], grads_t[k]) for k in grads)):
        assert not np.all(np.isfinite(theirs)) or np.all(np.isfinite(ours))
    assert np.all(np.isfinite(y_t))  # these inputs are within Torch's range
    tol = 1e-10 if dtype == np.float64 else 1e-5
    assert rel_diff(y, y_t) < tol and rel_diff(seq, seq_t) < tol
