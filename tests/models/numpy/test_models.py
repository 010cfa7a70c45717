"""Every NumPy model: exact gradients, shapes, dtypes, and a small task it must learn."""

import numpy as np
import pytest

from seqbench.checks.gradcheck import check_model
from seqbench.models.numpy.learner import NumpyLearner
from seqbench.models.optim import Adam
from seqbench.models.registry import model_class, model_names
from seqbench.spec import TrainSpec
from seqbench.training.loop import fit, mse, window_loss

MODELS = model_names()


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(("batch", "seq_len", "n_layers"), [(1, 1, 1), (3, 6, 2), (2, 9, 1)])
def test_gradients_match_finite_differences(name, batch, seq_len, n_layers):
    results = check_model(name, batch=batch, seq_len=seq_len, n_layers=n_layers, max_entries=None)
    worst = max(results, key=lambda r: r.max_rel_error)
    assert worst.max_rel_error < 1e-6, worst


@pytest.mark.parametrize("name", MODELS)
def test_output_shape_dtype_and_param_names(name):
    model = model_class(name, "numpy")(3, 5, hidden_size=8, n_layers=2, rng=np.random.default_rng(0))
    y, _ = model.forward(np.zeros((4, 7, 3)))
    assert y.shape == (4, 5) and y.dtype == np.float32
    assert all(p.dtype == np.float32 for p in model.params.values())
    assert {"head.weight", "head.bias"} <= set(model.params)
    assert any(k.startswith("layers.1.") for k in model.params)
    assert model.n_params == sum(p.size for p in model.params.values())


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_weights(name):
    cls = model_class(name, "numpy")
    a = cls(2, 1, hidden_size=4, rng=np.random.default_rng(7)).params
    b = cls(2, 1, hidden_size=4, rng=np.random.default_rng(7)).params
    c = cls(2, 1, hidden_size=4, rng=np.random.default_rng(8)).params
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("loss", ["mae", "mse+mae"])
def test_learns_the_memory_task_on_each_forecast_loss(loss, memory_task):
    """train.loss mae or mse+mae: validation reads the same loss, and it falls well below the start."""
    train, val = memory_task(512, seed=0), memory_task(256, seed=1)
    model = model_class("gru", "numpy")(1, 1, hidden_size=16, rng=np.random.default_rng(0))
    learner = NumpyLearner(model, Adam(model.params, lr=1e-2), grad_clip=1.0, loss=loss)
    start = window_loss(learner, val)
    spec = TrainSpec(epochs=30, batch_size=32, lr=1e-2, patience=0)
    result = fit(learner, train, val, spec, np.random.default_rng(0))
    assert result.best_val_loss == pytest.approx(window_loss(learner, val))
    assert window_loss(learner, val) < 0.3 * start
    assert mse(learner, val) < 0.1 * float(np.mean((val.x[:, -1] - val.y) ** 2))  # persistence


@pytest.mark.parametrize("name", MODELS)
def test_learns_a_task_that_needs_memory(name, memory_task):
    """A delayed copy: the last value (persistence) is useless, the model must remember."""
    train, val = memory_task(512, seed=0), memory_task(256, seed=1)
    model = model_class(name, "numpy")(1, 1, hidden_size=16, rng=np.random.default_rng(0))
    learner = NumpyLearner(model, Adam(model.params, lr=1e-2), grad_clip=1.0)
    start = mse(learner, val)
    persistence = float(np.mean((val.x[:, -1] - val.y) ** 2))
    spec = TrainSpec(epochs=30, batch_size=32, lr=1e-2, patience=0)  # fit sets the learner's lr from it
    fit(learner, train, val, spec, np.random.default_rng(0))
    final = mse(learner, val)
    assert final < 0.1 * start
    assert final < 0.1 * persistence


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("n_layers", [1, 2])
def test_one_forward_pass_per_step_forecasts_and_their_gradients(name, n_layers):
    """forward(x, return_sequence=True) is the head at every step of the same pass: its last step is
    forward(x), sequence(x) is what the head reads, and backward takes per-step gradients too."""
    options = {"state_size": 3, "dt_rank": 2} if name == "mamba" else {}
    model = model_class(name, "numpy")(
        2, 3, hidden_size=5, n_layers=n_layers, rng=np.random.default_rng(0), dtype=np.float64, **options
    )
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(2, 6, 2)), rng.normal(size=(2, 6, 3))
    y, _ = model.forward(x)
    per_step, caches = model.forward(x, return_sequence=True)
    assert per_step.shape == (2, 6, 3)
    np.testing.assert_allclose(per_step[:, -1], y, rtol=1e-13, atol=1e-15)
    states = model.sequence(x)
    head = states @ model.params["head.weight"] + model.params["head.bias"]
    np.testing.assert_allclose(per_step, head, rtol=1e-13, atol=1e-15)

    grads = model.backward(w, caches)
    for pname, value in model.params.items():
        flat = value.reshape(-1)
        numeric = np.empty(min(flat.size, 6))
        for j in range(len(numeric)):
            old = flat[j]
            flat[j] = old + 1e-6
            up = float(np.sum(w * model.forward(x, return_sequence=True)[0]))
            flat[j] = old - 1e-6
            down = float(np.sum(w * model.forward(x, return_sequence=True)[0]))
            flat[j] = old
            numeric[j] = (up - down) / 2e-6
        np.testing.assert_allclose(grads[pname].reshape(-1)[: len(numeric)], numeric, rtol=1e-5, atol=1e-8)


SIZES = [  # (model section, n_features, n_outputs, vocab_size, (seq_len, horizon))
    ({"hidden_size": 5}, 3, 2, None, (8, 2)),
    ({"hidden_size": 6, "n_layers": 3}, 2, 1, None, (8, 1)),
    ({"hidden_size": 4, "n_layers": 2}, 256, 256, 256, (8, 1)),
    ({"hidden_size": 4, "segment": 2, "decoder": "segments", "linear_skip": True}, 3, 6, None, (8, 4)),
    ({"hidden_size": 33, "segment": 4, "gate_init": "chrono", "dropout": 0.1}, 2, 2, None, (8, 1)),
]
OPTIONS = {
    "mamba": [{}, {"mamba": {"state_size": 3, "expand": 3, "conv_kernel": 2, "dt_rank": 5}}],
    "mingru": [
        {},
        {"mingru": {"variant": "log_space"}},
        {"mingru": {"variant": "log_space", "expansion": 1.5}},
    ],
    "gru": [{}],
}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(("section", "n_features", "n_outputs", "vocab", "window"), SIZES)
def test_the_weights_counted_from_the_spec_are_the_weights_built(
    name, section, n_features, n_outputs, vocab, window
):
    from seqbench.models.registry import build_model, count_weights
    from seqbench.spec import ModelSpec

    for options in OPTIONS[name]:
        if "chrono" in section.values() and "log_space" in str(options):
            continue  # (the log_space minGRU has no b_z for chrono to set)
        spec = ModelSpec.model_validate({"name": name, **section, **options})
        built = build_model(spec, n_features, n_outputs, 0, "float32", vocab_size=vocab, window=window)
        assert count_weights(spec, n_features, n_outputs, vocab, window) == built.n_params, options
