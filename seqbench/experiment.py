"""Run one experiment from a spec: data, model, training, evaluation and the run folder.

Everything that can fail because of the user's input (the spec, the data, the
model name) is checked before the run folder is created, so a bad input leaves
nothing on disk.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

import seqbench
from seqbench.baselines import BASELINES
from seqbench.data.sources import LoadedFrame, load_frame
from seqbench.data.windows import Windows, make_windows
from seqbench.errors import RunFailed
from seqbench.io import atomic_write_json, atomic_write_text
from seqbench.metrics import regression_metrics
from seqbench.models.numpy.learner import NumpyLearner
from seqbench.models.registry import model_class
from seqbench.optim import make_optimizer
from seqbench.plots import plot_loss_curve, plot_predictions
from seqbench.runs import create_run_dir
from seqbench.spec import Spec, dump_spec
from seqbench.train import EpochRecord, FitResult, fit


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]


class RunLog:
    """What a run prints: to the terminal (unless quiet) and to its run.log."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self.lines: list[str] = []
        self.path: Path | None = None

    def attach(self, path: Path) -> None:
        """Start writing to `path`, beginning with what was said so far."""
        self.path = path
        path.write_text("".join(f"{line}\n" for line in self.lines), encoding="utf-8")

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        if self.stream is not None:
            print(line, file=self.stream, flush=True)
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")


def build_learner(spec: Spec, n_features: int, n_outputs: int) -> NumpyLearner:
    """The model of `spec` with its optimiser, weights drawn from `spec.seed`."""
    cls = model_class(spec.model.name, spec.model.backend)
    rng = np.random.default_rng(spec.seed)
    options = {key: getattr(spec.model, key) for key in cls.options}
    model = cls(
        n_features,
        n_outputs,
        hidden_size=spec.model.hidden_size,
        n_layers=spec.model.n_layers,
        rng=rng,
        dtype=np.dtype(spec.train.dtype),
        **options,
    )
    t = spec.train
    optimizer = make_optimizer(
        t.optimizer, model.params, t.lr, weight_decay=t.weight_decay, momentum=t.momentum
    )
    return NumpyLearner(model, optimizer, t.grad_clip)


def prepare(spec: Spec, data_dir: Path) -> tuple[LoadedFrame, Windows, NumpyLearner]:
    """Load and window the data and build the model; raises SeqbenchError on bad input."""
    loaded = load_frame(spec.dataset, data_dir)
    windows = make_windows(loaded.frame, loaded.features, loaded.targets, spec.dataset)
    learner = build_learner(spec, len(loaded.features), spec.dataset.horizon * len(loaded.targets))
    return loaded, windows, learner


def run_experiment(
    spec: Spec, results_dir: Path = Path("results"), data_dir: Path = Path("data"), log: RunLog | None = None
) -> RunResult:
    """Train `spec` and write its complete run folder; returns the folder and metrics."""
    log = log or RunLog(None)
    loaded, windows, learner = prepare(spec, data_dir)
    run_dir, run_id = create_run_dir(results_dir, spec.name)
    log.attach(run_dir / "run.log")
    atomic_write_text(run_dir / "spec.yaml", dump_spec(spec))
    log(f"run {run_dir}")
    log(
        f"data {spec.dataset.label}: {len(loaded.frame)} rows {loaded.info['first_date']} .. "
        f"{loaded.info['last_date']}; windows train {len(windows.train.x)}, val {len(windows.val.x)}, "
        f"test {len(windows.test.x)}"
    )
    log(f"model {spec.model.name} ({spec.model.backend}), {learner.n_params} parameters")

    def on_epoch(record: EpochRecord, improved: bool) -> None:
        mark = " *" if improved else ""
        log(
            f"epoch {record.epoch:3d}/{spec.train.epochs}  train {record.train_loss:.6f}  "
            f"val {record.val_loss:.6f}  {record.seconds:.2f}s{mark}"
        )

    fit_result = fit(
        learner, windows.train, windows.val, spec.train, np.random.default_rng(spec.seed), on_epoch
    )
    learner.save(run_dir / learner.weights_file)
    metrics = evaluate(spec, loaded, windows, learner, fit_result, run_id)
    write_outputs(run_dir, spec, windows, learner, fit_result, metrics)
    if fit_result.status == "diverged":
        log("training diverged (non-finite loss); lower train.lr or set train.grad_clip")
        raise RunFailed(f"run diverged; kept what it had in {run_dir}")
    return RunResult(run_dir, metrics)


def evaluate(
    spec: Spec,
    loaded: LoadedFrame,
    windows: Windows,
    learner: NumpyLearner,
    fit_result: FitResult,
    run_id: str,
) -> dict[str, Any]:
    """metrics.json: test metrics in original and scaled units, next to the baselines."""
    forecasts = {split: learner.predict(windows.split(split).x) for split in ("val", "test")}
    test_truth, last = windows.truth("test"), windows.persistence("test")
    test_pred = windows.to_original("test", forecasts["test"])
    scaled = regression_metrics(windows.test.y, forecasts["test"])
    baselines = {
        name: regression_metrics(test_truth, forecast(windows, "test"), last)
        for name, forecast in BASELINES.items()
    }
    seconds = fit_result.train_seconds
    return {
        "run_id": run_id,
        "name": spec.name,
        "status": fit_result.status,
        "task": spec.task,
        "model": spec.model.name,
        "backend": spec.model.backend,
        "dataset": spec.dataset.label,
        "seed": spec.seed,
        "params": learner.n_params,
        "epochs_run": fit_result.epochs_run,
        "best_epoch": fit_result.best_epoch,
        "train_seconds": seconds,
        "seconds_per_epoch": seconds / max(fit_result.epochs_run, 1),
        "samples_per_second": fit_result.samples_seen / seconds if seconds > 0 else None,
        "config": {
            "hidden_size": spec.model.hidden_size,
            "n_layers": spec.model.n_layers,
            "lr": spec.train.lr,
            "batch_size": spec.train.batch_size,
            "optimizer": spec.train.optimizer,
            "seq_len": spec.dataset.seq_len,
            "horizon": spec.dataset.horizon,
            "features": windows.features,
            "targets": windows.targets,
            "transform": spec.dataset.transform,
            "normalize": spec.dataset.normalize,
            "scaler": spec.dataset.scaler,
        },
        "test": regression_metrics(test_truth, test_pred, last),
        "test_scaled": {k: scaled[k] for k in ("mse", "rmse", "mae", "r2")},
        "val": regression_metrics(windows.truth("val"), windows.to_original("val", forecasts["val"])),
        "baselines": baselines,
        "splits": _split_record(windows),
        "data": loaded.info,
        "versions": _versions(),
    }


def _split_record(windows: Windows) -> dict[str, Any]:
    """Which rows (and dates) fit the scaler and hold each split's targets."""
    dates = windows.dates

    def span(start: int, end: int) -> dict[str, Any]:
        return {
            "rows": [start, end],
            "first_date": str(dates[start].date()),
            "last_date": str(dates[end - 1].date()),
        }

    record = {"scaler_fit": span(*windows.scaler_rows)}
    for name, (start, end) in windows.split_rows.items():
        record[name] = {**span(start, end), "windows": len(windows.split(name).x)}
    return record


def _versions() -> dict[str, str | None]:
    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "seqbench": seqbench.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "torch": version("torch"),
    }


def predictions_frame(windows: Windows, forecast: np.ndarray) -> pd.DataFrame:
    """One row per test window, step and target series, in original units."""
    truth, last = windows.truth("test"), windows.persistence("test")
    linear = BASELINES["linear"](windows, "test")
    dates = windows.target_dates("test")  # (N, H)
    n, h, t = truth.shape
    return pd.DataFrame(
        {
            "date": pd.to_datetime(np.repeat(dates.reshape(-1), t))
            .strftime("%Y-%m-%d %H:%M:%S")
            .str.replace(" 00:00:00", "", regex=False),
            "series": np.tile(windows.targets, n * h),
            "step": np.tile(np.repeat(np.arange(1, h + 1), t), n),
            "target": truth.reshape(-1),
            "prediction": forecast.reshape(-1),
            "persistence": last.reshape(-1),
            "linear": linear.reshape(-1),
        }
    )


def write_outputs(
    run_dir: Path,
    spec: Spec,
    windows: Windows,
    learner: NumpyLearner,
    fit_result: FitResult,
    metrics: dict[str, Any],
) -> None:
    """history.csv, predictions.csv, the two plots and metrics.json (written last)."""
    history = pd.DataFrame(
        [vars(r) for r in fit_result.history], columns=["epoch", "train_loss", "val_loss", "lr", "seconds"]
    )
    atomic_write_text(run_dir / "history.csv", history.to_csv(index=False))
    predictions = predictions_frame(windows, windows.to_original("test", learner.predict(windows.test.x)))
    atomic_write_text(run_dir / "predictions.csv", predictions.to_csv(index=False))
    plot_loss_curve(history, run_dir / "loss_curve.png")
    title = f"{spec.name}: {spec.model.name} on {spec.dataset.label} (test split)"
    plot_predictions(predictions, run_dir / "predictions.png", title)
    atomic_write_json(run_dir / "metrics.json", metrics)
