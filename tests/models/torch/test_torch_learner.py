"""The Torch learner's factory: devices, threads, optimisers, and the registry entries."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from seqbench.errors import SeqbenchError  # noqa: E402
from seqbench.models.registry import MODELS, model_class  # noqa: E402
from seqbench.models.torch.base import TorchStack  # noqa: E402
from seqbench.models.torch.learner import (  # noqa: E402
    TorchLearner,
    build_torch_learner,
    make_torch_optimizer,
    resolve_device,
)


def test_every_model_has_a_torch_twin_with_the_numpy_signature():
    for name in MODELS:
        cls = model_class(name, "torch")
        assert issubclass(cls, TorchStack)
        assert cls.options == model_class(name, "numpy").options


def test_devices(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(SeqbenchError, match=r"train\.device 'cuda' is not available"):
        resolve_device("cuda")
    with pytest.raises(SeqbenchError, match=r"train\.device 'mps' is not available"):
        resolve_device("mps")
    with pytest.raises(SeqbenchError, match=r"unknown train\.device 'tpu'"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_threads_are_set_when_given():
    before = torch.get_num_threads()
    threads = 2 if before == 1 else 1  # not what it was
    try:
        build_torch_learner("mingru", 1, 1, hidden_size=4, device="cpu", threads=threads)
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("name", "cls"), [("sgd", "SGD"), ("adam", "Adam"), ("adamw", "AdamW")])
def test_optimizers_and_their_hyperparameters(name, cls):
    params = [torch.nn.Parameter(torch.zeros(3))]
    opt = make_torch_optimizer(name, params, lr=0.1, weight_decay=0.01, momentum=0.9)
    assert type(opt).__name__ == cls
    group = opt.param_groups[0]
    assert group["lr"] == 0.1 and group["weight_decay"] == 0.01
    if name == "sgd":
        assert group["momentum"] == 0.9 and group["dampening"] == 0 and not group["nesterov"]
    else:
        assert group["betas"] == (0.9, 0.999) and group["eps"] == 1e-8
    with pytest.raises(SeqbenchError, match="unknown optimizer"):
        make_torch_optimizer("lion", params, lr=0.1)


def test_set_lr_and_a_diverged_step_leaves_the_weights():
    learner = build_torch_learner("gru", 1, 1, hidden_size=4, device="cpu")
    assert isinstance(learner, TorchLearner) and learner.weights_file == "model.pt"
    learner.set_lr(0.5)
    assert all(g["lr"] == 0.5 for g in learner.optimizer.param_groups)
    before = learner.snapshot()
    x = np.full((2, 3, 1), np.nan, dtype=np.float32)
    assert np.isnan(learner.train_step(x, np.zeros((2, 1))))
    after = learner.snapshot()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_windows_per_pass_bounds_the_window_steps_of_a_prediction_pass():
    from seqbench.models.numpy.memory import STEPS_PER_PASS, windows_per_pass

    assert windows_per_pass(1024, 20) == 1024  # short windows: train.eval_batch_size
    assert windows_per_pass(1024, 1024) == STEPS_PER_PASS // 1024
    assert windows_per_pass(16, 1024) == 16
    assert windows_per_pass(1024, 10 * STEPS_PER_PASS) == 1  # at least one window


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_predictions_in_passes_of_few_window_steps_are_the_same(monkeypatch, backend):
    import seqbench.models.numpy.memory as memory
    from seqbench.spec import Spec
    from seqbench.training.learners import build_learner

    spec = Spec.model_validate(
        {
            "dataset": {"source": "synthetic", "name": "sine", "seq_len": 12},
            "model": {"name": "mamba", "backend": backend, "hidden_size": 8, "state_size": 4},
            "train": {"dtype": "float64", "device": "cpu"},
        }
    )
    learner = build_learner(spec, 1, 1)
    x = np.random.default_rng(0).normal(size=(10, 12, 1))
    whole = learner.predict(x)
    monkeypatch.setattr(memory, "STEPS_PER_PASS", 30)  # passes of 2 windows of 12 steps
    assert np.allclose(learner.predict(x), whole, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", MODELS)
def test_generation_runs_on_the_numpy_twin_with_the_weights_of_the_moment(name):
    """`decoder` is the NumPy twin on copies of the weights after a training step has changed them: the
    Torch learner's outputs and states, reading a prompt and then step by step."""
    options = {"vocab_size": 5, **({"state_size": 3} if name == "mamba" else {})}
    learner = build_torch_learner(
        name, 5, 5, hidden_size=6, n_layers=2, options=options, dtype="float64", loss="cross_entropy"
    )
    ids = np.random.default_rng(0).integers(0, 5, size=(2, 9))
    learner.train_step(ids[:, :-1], ids[:, 1:])
    decoder = learner.decoder()
    expected, torch_state = learner.forward_state(ids[:, :4], learner.initial_state(2))
    got, numpy_state = decoder.forward_state(ids[:, :4], decoder.initial_state(2))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    step = decoder.step_function()
    for t in range(4, 9):
        expected, torch_state = learner.step(ids[:, t], torch_state)
        got, numpy_state = step(ids[:, t], numpy_state)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
