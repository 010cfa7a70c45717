"""One run end to end: the run folder, its files, and metrics that agree with them."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from seqbench.errors import DataError
from seqbench.run.experiment import run_experiment
from seqbench.spec import Spec, load_spec

RUN_FILES = {
    "spec.yaml",
    "metrics.json",
    "history.csv",
    "loss_curve.png",
    "predictions.csv",
    "predictions.png",
    "model.npz",
    "run.log",
}


def csv_spec(path, **train):
    return Spec.model_validate(
        {
            "name": "prices",
            "dataset": {
                "source": "csv",
                "path": str(path),
                "target": "Close",
                "seq_len": 20,
                "transform": "log_return",
                "scaler": "standard",
            },
            "model": {"name": "mingru", "hidden_size": 8},
            "train": {"epochs": 3, **train},
        }
    )


def test_run_folder_is_complete_and_consistent(tmp_path, price_csv):
    result = run_experiment(csv_spec(price_csv), tmp_path / "results", tmp_path / "data")
    assert {p.name for p in result.run_dir.iterdir()} == RUN_FILES
    assert result.run_dir.parent == tmp_path / "results" / "prices"

    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    for key in (
        "run_id",
        "name",
        "status",
        "model",
        "backend",
        "dataset",
        "seed",
        "params",
        "epochs_run",
        "best_epoch",
        "train_seconds",
        "seconds_per_epoch",
        "samples_per_second",
        "val_seconds",
        "test",
        "test_model_space",
        "test_scaled",
        "scaled",
        "val",
        "baselines",
        "versions",
    ):
        assert key in metrics, key
    assert metrics["status"] == "completed" and metrics["dataset"] == "prices"
    assert 0 < metrics["val_seconds"] < metrics["train_seconds"]  # validation, of the epochs' time
    assert set(metrics["test"]) == {"mse", "rmse", "mae", "r2", "mape", "direction_accuracy"}
    assert set(metrics["test_model_space"]) == {"mse", "rmse", "mae", "r2"}
    assert metrics["test_scaled"] == metrics["test_model_space"]  # its old name, still written

    # the numbers in metrics.json are the ones in predictions.csv
    pred = pd.read_csv(result.run_dir / "predictions.csv")
    assert list(pred.columns) == ["date", "series", "step", "target", "prediction", "persistence", "linear"]
    rmse = lambda col: float(np.sqrt(np.mean((pred["target"] - pred[col]) ** 2)))  # noqa: E731
    assert metrics["test"]["rmse"] == pytest.approx(rmse("prediction"), rel=1e-9)
    assert metrics["baselines"]["persistence"]["rmse"] == pytest.approx(rmse("persistence"), rel=1e-9)
    assert metrics["baselines"]["linear"]["rmse"] == pytest.approx(rmse("linear"), rel=1e-9)
    # test targets are the last rows of the file, in dollars
    prices = pd.read_csv(price_csv)
    assert pred["target"].iloc[-1] == pytest.approx(prices["Close"].iloc[-1])
    assert pred["date"].iloc[-1] == prices["Date"].iloc[-1]

    history = pd.read_csv(result.run_dir / "history.csv")
    assert list(history.columns) == ["epoch", "train_loss", "val_loss", "lr", "seconds"]
    assert len(history) == metrics["epochs_run"] == 3
    assert metrics["best_epoch"] == int(history["val_loss"].idxmin()) + 1

    saved = yaml.safe_load((result.run_dir / "spec.yaml").read_text())
    assert saved["train"]["epochs"] == 3 and saved["train"]["batch_size"] == 32
    assert "epoch   1/3" in (result.run_dir / "run.log").read_text()


def test_a_run_predicts_the_test_windows_once(tmp_path, price_csv, monkeypatch):
    """Validation each epoch, then the validation and test windows once each for the scores:
    predictions.csv is written from the scores' test forecast, not predicted again."""
    from seqbench.models.numpy.learner import NumpyLearner

    predict, calls = NumpyLearner.predict, []
    monkeypatch.setattr(NumpyLearner, "predict", lambda self, x: calls.append(len(x)) or predict(self, x))
    result = run_experiment(csv_spec(price_csv), tmp_path / "results", tmp_path / "data")
    assert len(calls) == result.metrics["epochs_run"] + 2
    assert calls[-1] == result.metrics["test_windows"]


def test_saved_weights_reproduce_the_test_metrics(tmp_path, price_csv):
    from seqbench.run.experiment import prepare

    spec = csv_spec(price_csv)
    result = run_experiment(spec, tmp_path / "results", tmp_path / "data")
    _, windows, learner = prepare(load_spec(result.run_dir / "spec.yaml"), tmp_path / "data")
    learner.load(result.run_dir / "model.npz")
    forecast = windows.to_original("test", learner.predict(windows.test.x))
    rmse = float(np.sqrt(np.mean((forecast - windows.truth("test")) ** 2)))
    assert rmse == pytest.approx(result.metrics["test"]["rmse"], rel=1e-9)


TIMINGS = {"run_id", "train_seconds", "seconds_per_epoch", "samples_per_second", "val_seconds"}


def numbers(run_dir):
    """metrics.json without its timings and run id (read back, so that NaN equals NaN)."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k not in TIMINGS}


def test_same_spec_and_seed_give_identical_metrics_and_weights(tmp_path, price_csv):
    a = run_experiment(csv_spec(price_csv), tmp_path / "a")
    b = run_experiment(csv_spec(price_csv), tmp_path / "b")
    assert numbers(a.run_dir) == numbers(b.run_dir)  # every number, exactly
    history = [pd.read_csv(r.run_dir / "history.csv").drop(columns="seconds") for r in (a, b)]
    pd.testing.assert_frame_equal(*history, check_exact=True)
    with np.load(a.run_dir / "model.npz") as wa, np.load(b.run_dir / "model.npz") as wb:
        assert all((wa[k] == wb[k]).all() for k in wa.files)
    other_seed = csv_spec(price_csv)
    other_seed.seed = 1
    c = run_experiment(other_seed, tmp_path / "c")
    assert c.metrics["test"] != a.metrics["test"]


def test_early_stopping_keeps_the_best_weights_and_records_the_epochs(tmp_path, price_csv):
    """min_delta larger than any loss: only epoch 1 counts as an improvement, so patience 2 stops at 3."""
    from seqbench.run.experiment import prepare
    from seqbench.training.loop import mse

    result = run_experiment(csv_spec(price_csv, epochs=10, patience=2, min_delta=100.0), tmp_path / "results")
    assert result.metrics["status"] == "completed"
    assert result.metrics["epochs_run"] == 3 and result.metrics["best_epoch"] == 1
    history = pd.read_csv(result.run_dir / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    _, windows, learner = prepare(load_spec(result.run_dir / "spec.yaml"), tmp_path / "data")
    learner.load(result.run_dir / "model.npz")
    assert mse(learner, windows.val) == pytest.approx(history["val_loss"][0], rel=1e-12)
    assert "checkpoint.json" not in {p.name for p in result.run_dir.iterdir()}


def test_a_diverged_run_keeps_history_metrics_and_its_best_weights(tmp_path, price_csv):
    from seqbench.errors import RunFailed

    spec = csv_spec(
        price_csv, epochs=6, optimizer="sgd", momentum=0.0, lr=1.0, warmup_epochs=1000, grad_clip=0
    )
    spec.train.lr = 400.0  # warm-up raises the lr by 0.4 per epoch until the loss blows up
    result = run_experiment(spec, tmp_path / "results")
    assert result.status == "diverged" and result.metrics["status"] == "diverged"
    with pytest.raises(RunFailed, match=r"lower train\.lr \(now 400\) or enable train\.grad_clip"):
        result.raise_for_status()
    history = pd.read_csv(result.run_dir / "history.csv")
    assert len(history) == result.metrics["epochs_run"] and np.isnan(history["val_loss"].iloc[-1])
    assert result.metrics["best_epoch"] == int(history["val_loss"].idxmin()) + 1
    assert {"metrics.json", "model.npz", "history.csv"} <= {p.name for p in result.run_dir.iterdir()}
    assert "training diverged in epoch" in (result.run_dir / "run.log").read_text()


def test_bad_data_creates_no_run_folder(tmp_path, price_csv):
    spec = csv_spec(price_csv)
    spec.dataset.target = "Nope"
    with pytest.raises(DataError):
        run_experiment(spec, tmp_path / "results", tmp_path / "data")
    assert not (tmp_path / "results").exists()


def test_multi_feature_horizon_five(tmp_path, price_csv):
    spec = csv_spec(price_csv)
    spec.dataset.features = ["Open", "High", "Low", "Close", "Volume"]
    spec.dataset.horizon = 5
    spec.model.name = "gru"
    result = run_experiment(spec, tmp_path / "results")
    pred = pd.read_csv(result.run_dir / "predictions.csv")
    assert sorted(pred["step"].unique()) == [1, 2, 3, 4, 5]
    assert result.metrics["params"] > 0 and np.isfinite(result.metrics["test"]["rmse"])


def test_learns_a_seeded_series_far_below_its_start(tmp_path):
    """On a noisy sine, the model ends far below its first epoch and beats persistence."""
    spec = Spec.model_validate(
        {
            "name": "sine",
            "dataset": {"source": "synthetic", "name": "sine", "length": 1500, "seq_len": 24},
            "model": {"name": "mingru", "hidden_size": 16},
            "train": {"epochs": 15, "lr": 3e-3, "patience": 0},
        }
    )
    result = run_experiment(spec, tmp_path / "results")
    history = pd.read_csv(result.run_dir / "history.csv")
    assert history["val_loss"].min() < 0.2 * history["val_loss"].iloc[0]
    assert result.metrics["test"]["rmse"] < 0.8 * result.metrics["baselines"]["persistence"]["rmse"]
