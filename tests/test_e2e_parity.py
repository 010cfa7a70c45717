"""End to end, in float64: a whole run gives the same metrics.json and history on either backend,
and a Torch run interrupted after its first epoch and resumed ends with the uninterrupted run's numbers."""

import json
import math
import os
import signal

import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from seqbench.models.registry import model_names  # noqa: E402
from seqbench.models.torch.learner import TorchLearner  # noqa: E402
from seqbench.run.experiment import resume_experiment, run_experiment  # noqa: E402
from seqbench.spec import Spec  # noqa: E402

MODELS = model_names()
RTOL = 1e-9
N_BATCHES = 9  # per epoch: 132 training windows of spec_for() in batches of 16
# what may differ between two runs of the same spec (timings, the folder) and between backends
TIMINGS = {"run_id", "train_seconds", "seconds_per_epoch", "samples_per_second", "val_seconds"}
BACKEND_KEYS = {"backend", "versions", "config_id"}  # config_id hashes the backend too


def spec_for(model: str, backend: str) -> Spec:
    return Spec.model_validate(
        {
            "name": f"e2e-{model}-{backend}",
            "seed": 1,
            "dataset": {"source": "synthetic", "name": "sine", "length": 200, "seq_len": 8},
            "model": {"name": model, "backend": backend, "hidden_size": 6, "state_size": 3, "dt_rank": 2},
            "train": {
                "epochs": 2,
                "batch_size": 16,
                "dtype": "float64",
                "device": "cpu",
                "patience": 0,
                "lr": 0.01,
                "schedule": "cosine",
            },
        }
    )


def flat(tree, prefix=""):
    """{'test.rmse': 1.2, ...}: every leaf of a metrics.json, by its dotted path."""
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in flat(value, f"{prefix}{key}.").items()}
    if isinstance(tree, list):
        return {k: v for i, value in enumerate(tree) for k, v in flat(value, f"{prefix}{i}.").items()}
    return {prefix[:-1]: tree}


def differences(ours: dict, theirs: dict, skip: set[str], rtol: float = RTOL) -> list[str]:
    """The leaves that differ (numbers by more than rtol, relative), top-level keys in `skip` aside."""
    a = {k: v for k, v in flat(ours).items() if k.split(".")[0] not in skip}
    b = {k: v for k, v in flat(theirs).items() if k.split(".")[0] not in skip}
    out = [f"{k}: only in one" for k in sorted(set(a) ^ set(b))]
    for key in sorted(set(a) & set(b)):
        x, y = a[key], b[key]
        if isinstance(x, float) or isinstance(y, float):
            if math.isnan(x) and math.isnan(y):
                continue
            if not math.isclose(x, y, rel_tol=rtol, abs_tol=1e-300):
                out.append(f"{key}: {x!r} vs {y!r}")
        elif x != y:
            out.append(f"{key}: {x!r} vs {y!r}")
    return out


def read_run(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = pd.read_csv(run_dir / "history.csv").drop(columns="seconds")
    return metrics, history


@pytest.fixture(scope="module")
def no_plots():
    """The plots are matplotlib's time, not the models': a placeholder file each."""
    with pytest.MonkeyPatch.context() as patch:
        placeholder = lambda *args, **kwargs: open(args[1], "wb").close()  # noqa: E731
        patch.setattr("seqbench.run.experiment.plot_loss_curve", placeholder)
        patch.setattr("seqbench.tasks.forecast.plot_predictions", placeholder)
        yield


@pytest.fixture(scope="module")
def runs(tmp_path_factory, no_plots):
    """(metrics, history) of one uninterrupted run per model and backend."""
    results = tmp_path_factory.mktemp("e2e")
    out = {}
    for model in MODELS:
        for backend in ("numpy", "torch"):
            result = run_experiment(spec_for(model, backend), results)
            assert result.status == "completed", result.message
            out[model, backend] = read_run(result.run_dir)
    return out


@pytest.mark.parametrize("model", MODELS)
def test_a_float64_run_gives_the_same_metrics_and_history_on_either_backend(runs, model):
    numpy_metrics, numpy_history = runs[model, "numpy"]
    torch_metrics, torch_history = runs[model, "torch"]
    assert (numpy_metrics["backend"], torch_metrics["backend"]) == ("numpy", "torch")
    assert numpy_metrics["epochs_run"] == 2 and numpy_metrics["params"] == torch_metrics["params"]
    for section, keys in (("test", ("rmse", "mae", "r2")), ("val", ("rmse", "mae", "r2"))):
        assert all(math.isfinite(numpy_metrics[section][k]) for k in keys)
    assert {"persistence", "linear"} <= set(numpy_metrics["baselines"])
    diff = differences(numpy_metrics, torch_metrics, TIMINGS | BACKEND_KEYS | {"name"})
    assert not diff, diff

    assert list(numpy_history.columns) == ["epoch", "train_loss", "val_loss", "lr"]
    assert list(numpy_history["epoch"]) == list(torch_history["epoch"]) == [1, 2]
    for column in ("train_loss", "val_loss", "lr"):
        for ours, theirs in zip(numpy_history[column], torch_history[column], strict=True):
            assert math.isclose(ours, theirs, rel_tol=RTOL), (column, ours, theirs)
    # the run trained: the comparison is not of two untouched models
    assert numpy_history["train_loss"][1] != numpy_history["train_loss"][0]


def sigterm_at_step(monkeypatch, step):
    """SIGTERM to this process in the Torch learner's `step`-th training step (as in tests/test_resume.py)."""
    original = TorchLearner.train_step
    steps = []

    def train_step(self, x, y):
        steps.append(1)
        if len(steps) == step:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, x, y)

    monkeypatch.setattr(TorchLearner, "train_step", train_step)


@pytest.mark.parametrize("model", MODELS)
def test_a_torch_run_interrupted_after_epoch_1_and_resumed_is_the_uninterrupted_run(
    runs, model, tmp_path, monkeypatch, no_plots
):
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    sigterm_at_step(monkeypatch, N_BATCHES + 1)  # the first batch of epoch 2
    stopped = run_experiment(spec_for(model, "torch"), tmp_path)
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    assert stopped.status == "interrupted", stopped.message
    assert stopped.metrics["epochs_run"] == 1 and "stopped by SIGTERM in epoch 2" in stopped.message
    assert json.loads((stopped.run_dir / "checkpoint.json").read_text())["epoch"] == 1
    monkeypatch.undo()

    resumed = resume_experiment(stopped.run_dir)
    assert resumed.status == "completed", resumed.message
    metrics, history = read_run(stopped.run_dir)
    straight_metrics, straight_history = runs[model, "torch"]
    assert metrics["epochs_run"] == 2
    diff = differences(metrics, straight_metrics, TIMINGS, rtol=0.0)  # exactly
    assert not diff, diff
    pd.testing.assert_frame_equal(history, straight_history, check_exact=True)
    assert not (stopped.run_dir / "checkpoint.json").exists()
