"""NumPy and Torch compute the same function: outputs, loss, gradients, optimiser steps, weights files."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from seqbench.models.numpy.layers import cross_entropy_loss, mse_loss  # noqa: E402
from seqbench.models.numpy.learner import NumpyLearner  # noqa: E402
from seqbench.models.optim import make_optimizer  # noqa: E402
from seqbench.models.registry import model_class, model_names  # noqa: E402
from seqbench.models.torch.base import load_numpy, to_numpy  # noqa: E402
from seqbench.models.torch.layers import cross_entropy_loss as torch_cross_entropy  # noqa: E402
from seqbench.models.torch.learner import build_torch_learner  # noqa: E402
from seqbench.models.weights_file import open_weights  # noqa: E402
from seqbench.spec import TrainSpec  # noqa: E402
from seqbench.training.loop import fit, mse  # noqa: E402

MODELS = model_names()
# small sizes for Mamba's options, so that every check stays quick
OPTIONS = {"mamba": {"state_size": 3, "expand": 2, "conv_kernel": 3, "dt_rank": 2}}
TOLERANCE = 1e-6


def rel_diff(a, b) -> float:
    """max |a - b| over the larger magnitude of the two arrays (floored at 1e-12): 0 when equal."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), 1e-12)
    return float(np.max(np.abs(a - b))) / scale


def twins(
    name,
    n_features=2,
    n_outputs=2,
    hidden=6,
    n_layers=1,
    seed=0,
    dtype=np.float64,
    noise=0.3,
    vocab_size=None,
):
    """A NumPy model (weights plus noise, so no gradient sits at a special point) and its Torch twin.

    With `vocab_size`, a language model over that many tokens (n_features and n_outputs unused)."""
    rng = np.random.default_rng(seed)
    numpy_model = model_class(name, "numpy")(
        n_features,
        vocab_size or n_outputs,
        hidden_size=hidden,
        n_layers=n_layers,
        rng=rng,
        dtype=dtype,
        vocab_size=vocab_size,
        **OPTIONS.get(name, {}),
    )
    for p in numpy_model.params.values():
        p += rng.normal(0, noise, size=p.shape).astype(dtype)
    return numpy_model, model_class(name, "torch").from_numpy(numpy_model)


@pytest.mark.parametrize("name", MODELS)
def test_same_parameter_names_and_shapes(name):
    numpy_model, torch_model = twins(name, n_layers=2)
    state = torch_model.state_dict()
    assert set(state) == set(numpy_model.params)
    assert all(tuple(state[k].shape) == v.shape for k, v in numpy_model.params.items())
    assert torch_model.n_params == numpy_model.n_params
    assert torch_model.options == numpy_model.options


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_seed_same_weights_on_either_backend(name, dtype):
    kwargs = {"hidden_size": 8, "n_layers": 2, "dtype": dtype, **OPTIONS.get(name, {})}
    numpy_model = model_class(name, "numpy")(3, 2, rng=np.random.default_rng(11), **kwargs)
    torch_model = model_class(name, "torch")(3, 2, rng=np.random.default_rng(11), **kwargs)
    weights = to_numpy(torch_model)
    for key, value in numpy_model.params.items():
        assert weights[key].dtype == value.dtype
        np.testing.assert_array_equal(weights[key], value)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(
    ("batch", "seq_len", "n_layers"), [(3, 6, 2), (1, 1, 1), (2, 1, 2), (2, 11, 1), (2, 23, 2)]
)
def test_same_outputs_loss_and_gradients(name, batch, seq_len, n_layers):
    numpy_model, torch_model = twins(name, n_layers=n_layers)
    rng = np.random.default_rng(1)
    x, target = rng.normal(size=(batch, seq_len, 2)), rng.normal(size=(batch, 2))

    y_numpy, caches = numpy_model.forward(x)
    loss_numpy, dy = mse_loss(y_numpy, target)
    grads_numpy = numpy_model.backward(dy, caches)

    y_torch = torch_model(torch.from_numpy(x))
    loss_torch = (y_torch - torch.from_numpy(target)).pow(2).mean()
    loss_torch.backward()

    assert rel_diff(y_torch.detach().numpy(), y_numpy) < TOLERANCE
    assert abs(loss_torch.item() - loss_numpy) <= TOLERANCE * abs(loss_numpy)
    worst = max(
        (rel_diff(param.grad.numpy(), grads_numpy[key]), key) for key, param in torch_model.named_parameters()
    )
    assert worst[0] < TOLERANCE, worst


@pytest.mark.parametrize("name", MODELS)
def test_same_per_step_forecasts_and_sequences(name):
    """forward(x, return_sequence=True), the path the causality audit checks, and sequence(x)."""
    numpy_model, torch_model = twins(name, n_layers=2)
    x = np.random.default_rng(2).normal(size=(3, 9, 2))
    with torch.no_grad():
        per_step = torch_model(torch.from_numpy(x), return_sequence=True).numpy()
        states = torch_model.sequence(torch.from_numpy(x)).numpy()
        last = torch_model(torch.from_numpy(x)).numpy()
    assert per_step.shape == (3, 9, 2)
    assert rel_diff(per_step, numpy_model.forward(x, return_sequence=True)[0]) < TOLERANCE
    assert rel_diff(states, numpy_model.sequence(x)) < TOLERANCE
    assert rel_diff(per_step[:, -1], last) < 1e-13


# ---- language models and the recurrent state API -------------------------------------------------

VOCAB = 13


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lm_same_seed_same_weights_on_either_backend(name, dtype):
    kwargs = {"hidden_size": 8, "n_layers": 2, "dtype": dtype, "vocab_size": VOCAB, **OPTIONS.get(name, {})}
    numpy_model = model_class(name, "numpy")(3, VOCAB, rng=np.random.default_rng(11), **kwargs)
    torch_model = model_class(name, "torch")(3, VOCAB, rng=np.random.default_rng(11), **kwargs)
    weights = to_numpy(torch_model)
    assert set(weights) == set(numpy_model.params) and "embed.weight" in weights
    for key, value in numpy_model.params.items():
        assert weights[key].dtype == value.dtype
        np.testing.assert_array_equal(weights[key], value)
    assert model_class(name, "torch").from_numpy(numpy_model).vocab_size == VOCAB


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(("batch", "seq_len", "n_layers"), [(3, 6, 2), (1, 1, 1), (2, 23, 2)])
def test_lm_same_logits_loss_and_gradients(name, batch, seq_len, n_layers):
    numpy_model, torch_model = twins(name, n_layers=n_layers, vocab_size=VOCAB)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, VOCAB, size=(batch, seq_len + 1))
    x, targets = ids[:, :-1], ids[:, 1:]

    logits_numpy, caches = numpy_model.forward(x)
    loss_numpy, dlogits = cross_entropy_loss(logits_numpy, targets)
    grads_numpy = numpy_model.backward(dlogits, caches)

    logits_torch = torch_model(torch.from_numpy(x))
    loss_torch = torch_cross_entropy(logits_torch, torch.from_numpy(targets))
    loss_torch.backward()

    assert logits_torch.shape == (batch, seq_len, VOCAB)
    assert rel_diff(logits_torch.detach().numpy(), logits_numpy) < TOLERANCE
    assert abs(loss_torch.item() - loss_numpy) <= TOLERANCE * abs(loss_numpy)
    assert set(grads_numpy) == {k for k, _ in torch_model.named_parameters()}
    worst = max(
        (rel_diff(param.grad.numpy(), grads_numpy[key]), key) for key, param in torch_model.named_parameters()
    )
    assert worst[0] < TOLERANCE, worst


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("lm", [True, False], ids=["lm", "forecast"])
def test_same_states_and_outputs_from_forward_state_and_step(name, lm):
    """The state API of either backend: same outputs, and states of the same layout and numbers."""
    numpy_model, torch_model = twins(name, n_layers=2, vocab_size=VOCAB if lm else None)
    rng = np.random.default_rng(2)
    x = rng.integers(0, VOCAB, size=(3, 8)) if lm else rng.normal(size=(3, 8, 2))
    state_numpy, state_torch = numpy_model.initial_state(3), torch_model.initial_state(3)
    y_numpy, state_numpy = numpy_model.forward_state(x[:, :7], state_numpy)
    y_torch, state_torch = torch_model.forward_state(torch.from_numpy(x[:, :7]), state_torch)
    assert rel_diff(y_torch.numpy(), y_numpy) < TOLERANCE
    step_numpy, state_numpy = numpy_model.step(x[:, 7], state_numpy)
    step_torch, state_torch = torch_model.step(torch.from_numpy(x[:, 7]), state_torch)
    assert step_numpy.shape == tuple(step_torch.shape) == (3, VOCAB if lm else 2)
    assert rel_diff(step_torch.numpy(), step_numpy) < TOLERANCE

    def leaves(state):
        for entry in state:
            yield from entry if isinstance(entry, tuple) else (entry,)

    pairs = list(zip(leaves(state_numpy), leaves(state_torch), strict=True))
    assert len(pairs) == (4 if name == "mamba" else 2)
    for ours, theirs in pairs:
        assert ours.shape == tuple(theirs.shape)
        assert rel_diff(theirs.numpy(), ours) < TOLERANCE


def test_mamba_parity_when_the_scan_recomputes_its_states(monkeypatch):
    """Long sequences take the memory-lean path (states recomputed chunk by chunk): same numbers."""
    from seqbench.models.torch import layers

    monkeypatch.setattr(layers, "KEEP_STATES_MAX", 0)
    test_same_outputs_loss_and_gradients("mamba", batch=2, seq_len=23, n_layers=2)


def numpy_learner(model, optimizer, lr, weight_decay, momentum, grad_clip, loss="mse"):
    optim = make_optimizer(optimizer, model.params, lr, weight_decay, momentum)
    return NumpyLearner(model, optim, grad_clip, loss=loss)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("loss", ["mae", "mse+mae"])
def test_training_steps_on_each_forecast_loss_give_the_same_weights(name, loss):
    """train.loss mae and mse+mae, weighted (RevIN) and not: the same losses and steps on either backend."""
    hyper = {"lr": 0.05, "weight_decay": 0.0, "momentum": 0.9, "grad_clip": 1.0, "loss": loss}
    numpy_model = model_class(name, "numpy")(
        2, 3, hidden_size=6, rng=np.random.default_rng(5), dtype=np.float64, **OPTIONS.get(name, {})
    )
    ours = numpy_learner(numpy_model, "adam", **hyper)
    theirs = build_torch_learner(
        name, 2, 3, hidden_size=6, options=OPTIONS.get(name), optimizer="adam", dtype="float64", seed=5,
        device="cpu", **hyper,
    )  # fmt: skip
    rng = np.random.default_rng(6)
    for step in range(2):
        x, y = rng.normal(size=(4, 5, 2)), rng.normal(size=(4, 3))
        weight = rng.uniform(0.5, 2.0, size=(4, 3)) if step == 1 else None
        loss_numpy, loss_torch = ours.train_step(x, y, weight), theirs.train_step(x, y, weight)
        assert abs(loss_numpy - loss_torch) <= TOLERANCE * loss_numpy
    new_weights = theirs.snapshot()
    for key, value in ours.snapshot().items():
        assert rel_diff(new_weights[key], value) < TOLERANCE, key


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(
    ("optimizer", "weight_decay"), [("sgd", 0.01), ("adam", 0.0), ("adam", 0.01), ("adamw", 0.05)]
)
def test_training_steps_give_the_same_weights(name, optimizer, weight_decay):
    """Three steps (momentum buffers and bias corrections in play) with clipping active throughout."""
    hyper = {"lr": 0.05, "weight_decay": weight_decay, "momentum": 0.9, "grad_clip": 0.05}
    numpy_model = model_class(name, "numpy")(
        2,
        1,
        hidden_size=6,
        n_layers=2,
        rng=np.random.default_rng(3),
        dtype=np.float64,
        **OPTIONS.get(name, {}),
    )
    ours = numpy_learner(numpy_model, optimizer, **hyper)
    theirs = build_torch_learner(
        name,
        2,
        1,
        hidden_size=6,
        n_layers=2,
        options=OPTIONS.get(name),
        optimizer=optimizer,
        dtype="float64",
        seed=3,
        device="cpu",
        **hyper,
    )
    rng = np.random.default_rng(4)
    for step in range(3):
        x, y = rng.normal(size=(4, 5, 2)), rng.normal(size=(4, 1))
        weight = rng.uniform(0.5, 2.0, size=(4, 1)) if step == 2 else None  # RevIN's loss weights
        out, caches = numpy_model.forward(x)
        grad_norm = np.sqrt(
            sum(np.sum(g**2) for g in numpy_model.backward(mse_loss(out, y, weight)[1], caches).values())
        )
        assert grad_norm > hyper["grad_clip"]  # the clip is active
        loss_numpy, loss_torch = ours.train_step(x, y, weight), theirs.train_step(x, y, weight)
        assert abs(loss_numpy - loss_torch) <= TOLERANCE * loss_numpy
    new_weights = theirs.snapshot()
    for key, value in ours.snapshot().items():
        assert rel_diff(new_weights[key], value) < TOLERANCE, key
    # the optimiser state carries the NumPy names, and the same numbers
    numpy_state, torch_state = ours.state_dict(), theirs.state_dict()
    assert set(numpy_state) == set(torch_state)
    for key, value in numpy_state.items():
        assert rel_diff(torch_state[key], value) < TOLERANCE, key


@pytest.mark.parametrize("name", MODELS)
def test_checkpoint_state_continues_exactly_on_either_backend(name):
    """A learner's state_dict, loaded into a fresh learner of either backend, continues the same run."""
    options = OPTIONS.get(name)
    build = {
        "hidden_size": 5,
        "n_layers": 1,
        "options": options,
        "optimizer": "adam",
        "lr": 0.01,
        "dtype": "float64",
        "device": "cpu",
    }
    rng = np.random.default_rng(5)
    batches = [(rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 1))) for _ in range(4)]
    first = build_torch_learner(name, 2, 1, seed=0, **build)
    for x, y in batches[:2]:
        first.train_step(x, y)
    state = first.state_dict()
    for x, y in batches[2:]:
        first.train_step(x, y)

    again = build_torch_learner(name, 2, 1, seed=1, **build)  # other initial weights, overwritten
    again.load_state_dict(state)
    for x, y in batches[2:]:
        again.train_step(x, y)
    for key, value in first.snapshot().items():
        np.testing.assert_array_equal(again.snapshot()[key], value)

    numpy_model = model_class(name, "numpy")(
        2, 1, hidden_size=5, rng=np.random.default_rng(1), dtype=np.float64, **(options or {})
    )
    on_numpy = numpy_learner(numpy_model, "adam", 0.01, 0.0, 0.0, 1.0)
    on_numpy.load_state_dict(state)
    for x, y in batches[2:]:
        on_numpy.train_step(x, y)
    for key, value in first.snapshot().items():
        assert rel_diff(on_numpy.snapshot()[key], value) < TOLERANCE, key


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weights_round_trip_npz_torch_npz_exactly(name, dtype, tmp_path):
    numpy_model, _ = twins(name, n_layers=2, dtype=dtype)
    NumpyLearner(numpy_model, make_optimizer("adam", numpy_model.params, 1e-3), 1.0).save(
        tmp_path / "model.npz"
    )
    torch_model = model_class(name, "torch")(
        2, 2, hidden_size=6, n_layers=2, rng=np.random.default_rng(99), dtype=dtype, **OPTIONS.get(name, {})
    )
    with np.load(tmp_path / "model.npz", allow_pickle=False) as saved:
        load_numpy(torch_model, {k: saved[k] for k in saved.files})
    back = to_numpy(torch_model)
    assert set(back) == set(numpy_model.params)
    for key, value in numpy_model.params.items():
        assert back[key].dtype == value.dtype
        np.testing.assert_array_equal(back[key], value)


@pytest.mark.parametrize("name", MODELS)
def test_model_pt_loads_with_weights_only_and_reproduces_predictions(name, tmp_path):
    learner = build_torch_learner(name, 2, 1, hidden_size=6, options=OPTIONS.get(name), seed=2, device="cpu")
    x = np.random.default_rng(6).normal(size=(7, 5, 2)).astype(np.float32)
    learner.train_step(x, np.ones((7, 1), dtype=np.float32))
    path = tmp_path / learner.weights_file
    learner.save(path)
    assert path.name == "model.pt" and not list(tmp_path.glob(".*.tmp"))
    state = torch.load(path, weights_only=True)
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        k: tuple(v.shape) for k, v in learner.model.state_dict().items()
    }
    assert all(v.device.type == "cpu" for v in state.values())
    fresh = build_torch_learner(name, 2, 1, hidden_size=6, options=OPTIONS.get(name), seed=9, device="cpu")
    fresh.load(path)
    np.testing.assert_array_equal(fresh.predict(x), learner.predict(x))
    # the same file, read as plain arrays, loads into the NumPy twin
    numpy_model = model_class(name, "numpy")(2, 1, hidden_size=6, **OPTIONS.get(name, {}))
    on_numpy = NumpyLearner(numpy_model, make_optimizer("adam", numpy_model.params, 1e-3), 1.0)
    on_numpy.restore(open_weights(path).arrays())
    np.testing.assert_allclose(on_numpy.predict(x), learner.predict(x), rtol=1e-5, atol=1e-6)


def test_loading_wrong_weights_names_the_difference(tmp_path):
    learner = build_torch_learner("mingru", 2, 1, hidden_size=4, device="cpu")
    path = tmp_path / "model.pt"
    weights = learner.model.state_dict()
    torch.save({**weights, "layers.0.W_z": torch.zeros(3, 3)}, path)
    with pytest.raises(ValueError, match=r"layers\.0\.W_z"):
        learner.load(path)
    torch.save({k: v for k, v in weights.items() if k != "head.bias"}, path)
    with pytest.raises(ValueError, match=r"missing.*head\.bias"):
        learner.load(path)
    path.write_bytes(b"not a weights file")
    with pytest.raises(ValueError, match="not a weights file"):
        learner.load(path)


@pytest.mark.parametrize("name", MODELS)
def test_predict_returns_float64_arrays(name):
    learner = build_torch_learner(name, 3, 2, hidden_size=4, options=OPTIONS.get(name), device="cpu")
    out = learner.predict(np.zeros((5, 4, 3), dtype=np.float32))
    assert out.shape == (5, 2) and out.dtype == np.float64
    assert learner.predict(np.zeros((0, 4, 3))).shape == (0, 2)
    assert learner.n_params == sum(p.numel() for p in learner.model.parameters())


@pytest.mark.parametrize("name", MODELS)
def test_learns_a_task_that_needs_memory(name, memory_task):
    """The NumPy models' learning test, on the Torch backend."""
    train, val = memory_task(512, seed=0), memory_task(256, seed=1)
    learner = build_torch_learner(name, 1, 1, hidden_size=16, optimizer="adam", lr=1e-2, seed=0, device="cpu")
    start = mse(learner, val)
    persistence = float(np.mean((val.x[:, -1] - val.y) ** 2))
    fit(
        learner,
        train,
        val,
        TrainSpec(epochs=15, batch_size=32, lr=1e-2, patience=0),  # at most 1/40 of the start by then
        np.random.default_rng(0),
    )
    final = mse(learner, val)
    assert final < 0.1 * start
    assert final < 0.1 * persistence


@pytest.mark.parametrize("keep", [True, False], ids=["kept", "recomputed"])
def test_mamba_zoh_parity(keep, monkeypatch):
    """The default (delta_b) runs through every test above; the exact ZOH here: the same checks."""
    from seqbench.models.torch import layers

    monkeypatch.setitem(OPTIONS, "mamba", {**OPTIONS["mamba"], "discretization": "zoh"})
    if not keep:
        monkeypatch.setattr(layers, "KEEP_STATES_MAX", 0)
    test_same_outputs_loss_and_gradients("mamba", batch=2, seq_len=23, n_layers=2)
    test_lm_same_logits_loss_and_gradients("mamba", batch=2, seq_len=23, n_layers=2)
    for lm in (True, False):
        test_same_states_and_outputs_from_forward_state_and_step("mamba", lm)
