"""NumPy and Torch compute the same forecast model with input segments, segment decoder and skip path."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from seqbench.models.numpy.forecasting import ForecastOptions  # noqa: E402
from seqbench.models.numpy.layers import mse_loss  # noqa: E402
from seqbench.models.registry import model_class, model_names  # noqa: E402
from seqbench.models.torch.base import to_numpy  # noqa: E402
from seqbench.models.torch.learner import build_torch_learner  # noqa: E402

MODELS = model_names()
OPTIONS = {"mamba": {"state_size": 3, "expand": 2, "conv_kernel": 3, "dt_rank": 2}}
SETTINGS = {
    "segments": ForecastOptions(segment=3, seq_len=9, horizon=2),
    "decoder+skip": ForecastOptions(segment=3, decoder="segments", linear_skip=True, seq_len=9, horizon=6),
}
TOLERANCE = 1e-6


def rel_diff(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), 1e-12)


def twins(name, forecast, n_outputs=4, seed=0):
    rng = np.random.default_rng(seed)
    numpy_model = model_class(name, "numpy")(
        2, n_outputs, hidden_size=5, n_layers=2, rng=rng, dtype=np.float64, forecast=forecast,
        **OPTIONS.get(name, {}),
    )  # fmt: skip
    for p in numpy_model.params.values():
        p += rng.normal(0, 0.3, size=p.shape)
    return numpy_model, model_class(name, "torch").from_numpy(numpy_model)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("setting", SETTINGS)
def test_same_seed_same_weights(name, setting):
    kwargs = {"hidden_size": 5, "n_layers": 2, "forecast": SETTINGS[setting], **OPTIONS.get(name, {})}
    numpy_model = model_class(name, "numpy")(2, 4, rng=np.random.default_rng(3), **kwargs)
    torch_model = model_class(name, "torch")(2, 4, rng=np.random.default_rng(3), **kwargs)
    weights = to_numpy(torch_model)
    assert set(weights) == set(numpy_model.params)
    for key, value in numpy_model.params.items():
        np.testing.assert_array_equal(weights[key], value)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("setting", SETTINGS)
def test_same_outputs_loss_gradients_and_per_step_forecasts(name, setting):
    numpy_model, torch_model = twins(name, SETTINGS[setting])
    rng = np.random.default_rng(1)
    x, target = rng.normal(size=(3, 9, 2)), rng.normal(size=(3, 4))

    y_numpy, caches = numpy_model.forward(x)
    _, dy = mse_loss(y_numpy, target)
    grads_numpy = numpy_model.backward(dy, caches)
    y_torch = torch_model(torch.from_numpy(x))
    (y_torch - torch.from_numpy(target)).pow(2).mean().backward()

    assert rel_diff(y_torch.detach().numpy(), y_numpy) < TOLERANCE
    worst = max((rel_diff(p.grad.numpy(), grads_numpy[k]), k) for k, p in torch_model.named_parameters())
    assert worst[0] < TOLERANCE, worst
    with torch.no_grad():
        per_step = torch_model(torch.from_numpy(x), return_sequence=True).numpy()
    assert per_step.shape == (3, 3, 4)
    assert rel_diff(per_step, numpy_model.forward(x, return_sequence=True)[0]) < TOLERANCE


def test_dropout_acts_in_a_training_step_only():
    options = {"forecast": ForecastOptions(dropout=0.5)}
    learner = build_torch_learner("gru", 2, 4, hidden_size=8, dtype="float64", lr=0.0, options=options)
    x = np.random.default_rng(4).normal(size=(32, 6, 2))
    before = learner.predict(x)
    assert not learner.model.training and np.array_equal(before, learner.predict(x))
    seen = []
    learner.model.head.register_forward_hook(lambda module, args, out: seen.append(args[0].detach().clone()))
    learner.train_step(x, np.zeros((32, 4)))
    dropped = (seen[0] == 0).float().mean().item()
    assert 0.3 < dropped < 0.7  # half of what the head reads is dropped in the training step
    assert not learner.model.training and np.array_equal(before, learner.predict(x))
