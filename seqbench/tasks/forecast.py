"""The forecast task: windows of a series in, the next `horizon` values of its targets out.

Data: a frame (yahoo, csv, builtin, synthetic) split chronologically, scaled on the training rows,
cut into windows (seqbench.data.windows). Training fits the MSE of the scaled targets. Scores:
RMSE, MAE, R2, MAPE and direction accuracy on the test windows in original units, next to the
persistence and linear baselines and their Diebold-Mariano p-values. Outputs: predictions.csv
(predictions.csv.xz when large: seqbench.artifacts.predictions_file), predictions.png (a multi-step run's:
`horizon_forecasts`) and the loss curve.

`ForecastTask` is this task as the run drives it (seqbench.tasks.base.Task).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from seqbench.artifacts.plots import HorizonForecasts, plot_predictions
from seqbench.artifacts.predictions_file import write_forecasts
from seqbench.artifacts.significance import dm_against_baselines
from seqbench.baselines import BASELINES, fit_linear
from seqbench.data.csvfile import date_format
from seqbench.data.sources import load_frame
from seqbench.data.windows import Windows, make_windows, split_id
from seqbench.metrics import regression_metrics
from seqbench.tasks.base import Task
from seqbench.tasks.common import common_config, common_metrics, versions
from seqbench.training.learners import build_learner
from seqbench.training.loop import FitResult, Learner

ARTIFACTS = ("predictions.csv", "loss_curve.png", "predictions.png")
SHOWN_WINDOWS = 4  # test windows drawn in a multi-step run's predictions.png


def scaled_scores(
    windows: Windows, forecasts: dict[str, np.ndarray], trained: bool
) -> dict[str, dict[str, float] | None] | None:
    """MSE and MAE in the scaler's units over every channel and step of every test window (how the
    long-horizon papers report), per forecaster; None under a transform (its scaler scales changes)."""
    truth = windows.to_scaled(windows.truth("test"))
    if truth is None:
        return None
    out: dict[str, dict[str, float] | None] = {}
    for name, forecast in forecasts.items():
        if name == "model" and not trained:
            out[name] = None
            continue
        error = windows.to_scaled(forecast) - truth  # (N, H, T)
        out[name] = {"mse": float(np.mean(error**2)), "mae": float(np.mean(np.abs(error)))}
    return out


def split_record(windows: Windows) -> dict[str, Any]:
    """Which rows (and dates) fit the scaler and hold each split's targets.

    `rows` is a split's [first, end) row range; `target_rows` the [first, end) rows its windows'
    targets actually cover (inputs may look back into earlier rows).
    """
    dates = windows.dates
    fmt = date_format(dates)

    def span(start: int, end: int) -> dict[str, Any]:
        return {
            "rows": [start, end],
            "first_date": dates[start].strftime(fmt),
            "last_date": dates[end - 1].strftime(fmt),
        }

    record = {"scaler_fit": span(*windows.scaler_rows)}
    for name, (start, end) in windows.split_rows.items():
        origin = windows.split(name).origin
        record[name] = {**span(start, end), "windows": len(origin)}
        if len(origin):
            record[name]["target_rows"] = [int(origin.min()) + 1, int(origin.max()) + windows.horizon + 1]
    return record


def predictions_frame(
    windows: Windows, forecast: np.ndarray, linear: np.ndarray | None = None
) -> pd.DataFrame:
    """One row per test window, step and target series, in original units (`linear`: the ridge's
    test forecast, fit here when not given).

    Dates are ISO 8601 in one format for the whole file: with the time of day when any
    timestamp of the series has one (`csvfile.date_format`), so they read back without guessing.
    """
    truth, last = windows.truth("test"), windows.persistence("test")
    linear = BASELINES["linear"](windows, "test") if linear is None else linear
    dates = windows.target_dates("test")  # (N, H)
    n, h, t = truth.shape
    return pd.DataFrame(
        {
            "date": pd.DatetimeIndex(np.repeat(dates.reshape(-1), t)).strftime(date_format(windows.dates)),
            "series": np.tile(windows.targets, n * h),
            "step": np.tile(np.repeat(np.arange(1, h + 1), t), n),
            "target": truth.reshape(-1),
            "prediction": forecast.reshape(-1),
            "persistence": last.reshape(-1),
            "linear": linear.reshape(-1),
        }
    )


def horizon_forecasts(
    windows: Windows, forecasts: dict[str, np.ndarray], seq_len: int, shown: int = SHOWN_WINDOWS
) -> HorizonForecasts:
    """What a multi-step run's predictions.png draws: `shown` test windows spread evenly over the
    split, of the last target series (OT on ETT), with their `seq_len` inputs; and each
    forecaster's (N, H, T) test forecast's MSE per horizon step over every window and target
    series, in the scaler's units (whose mean over the steps is metrics.json `scaled`), or in
    original units under a transform."""
    origin = windows.test.origin  # (N,)
    picked = np.unique(np.linspace(0, len(origin) - 1, min(shown, len(origin))).round().astype(int))  # (K,)
    inputs = origin[picked, None] + np.arange(-seq_len + 1, 1)  # (K, L) rows
    targets = origin[picked, None] + np.arange(1, windows.horizon + 1)  # (K, H) rows
    truth = windows.truth("test")  # (N, H, T)
    scaled_truth = windows.to_scaled(truth)
    step_error = {}
    for name, forecast in forecasts.items():
        error = forecast - truth if scaled_truth is None else windows.to_scaled(forecast) - scaled_truth
        step_error[name] = np.mean(error**2, axis=(0, 2))  # (H,)
    n_series = len(windows.targets)
    return HorizonForecasts(
        series=windows.targets[-1],
        input_dates=windows.dates.values[inputs],
        inputs=windows.raw_targets[inputs, -1],
        target_dates=windows.dates.values[targets],
        truth=truth[picked, :, -1],
        forecasts={name: forecast[picked, :, -1] for name, forecast in forecasts.items()},
        windows=picked,
        n_windows=len(origin),
        step_error=step_error,
        error_name="MSE (original units)" if scaled_truth is None else "MSE (scaled)",
        error_scope=f"all {len(origin)} test windows" + (f" and {n_series} series" if n_series > 1 else ""),
    )


class ForecastTask(Task):
    """The forecast task (see the module doc): `loaded` a LoadedFrame, `data` its Windows."""

    name: ClassVar[str] = "forecast"
    artifacts: ClassVar[tuple[str, ...]] = ARTIFACTS
    # evaluate's test forecast (original units) and the learner that made it: the artifacts written
    # next reuse it instead of predicting every test window again (at L 1024 as long as validating)
    _test_forecast: tuple[Learner, np.ndarray] | None = None

    def prepare(self) -> Learner:
        """The series (`loaded`), its windows (`data`: what training reads, `.train`, `.val`); the model."""
        spec = self.spec
        self.loaded = loaded = load_frame(spec.dataset, self.data_dir)
        label = loaded.info["label"]
        self.data = windows = make_windows(loaded.frame, loaded.features, loaded.targets, spec.dataset, label)
        n_in, n_out = windows.train.x.shape[-1], windows.train.y.shape[-1]  # channels independent: 1, horizon
        return build_learner(spec, n_in, n_out)

    def header(self) -> list[str]:
        """The data lines a run prints first."""
        spec, loaded, windows = self.spec, self.loaded, self.data
        counts = ", ".join(f"{name} {len(windows.split(name).origin)}" for name in ("train", "val", "test"))
        if windows.independent:  # each window is a row per channel in the model's batches
            counts += f" (x {len(windows.targets)} channels, one row each)"
        lines = [
            f"data {spec.dataset.label}: {len(loaded.frame)} rows {loaded.info['first_date']} .. "
            f"{loaded.info['last_date']}; windows {counts}"
        ]
        if loaded.info.get("rows_with_missing"):
            action = "filled forward" if spec.dataset.fill == "ffill" else "dropped"
            missing = loaded.info["rows_with_missing"]
            lines.append(f"data: {missing} rows with missing values {action} (dataset.fill)")
        return lines

    def memory_hint(self, stage: str) -> str:
        """What fills the memory while `stage` ("training" or "evaluating") and the setting to lower."""
        spec, windows = self.spec, self.data
        t, steps = spec.train, windows.train.x.shape[1]
        if stage == "training":
            return (
                f"batches of {t.batch_size} windows of {steps} steps through a model of hidden size "
                f"{spec.model.hidden_size}; lower train.batch_size or model.hidden_size"
            )
        return (
            f"{len(windows.test.x)} test windows of {steps} steps, {t.eval_batch_size} per forward pass; "
            f"lower train.eval_batch_size (e.g. --set train.eval_batch_size={max(t.eval_batch_size // 8, 1)})"
            ", which changes no score (train.batch_size does not matter here)"
        )

    @staticmethod
    def headline(metrics: dict[str, Any]) -> float | None:
        """The score a forecast run is quoted by: test RMSE in original units."""
        return (metrics.get("test") or {}).get("rmse")

    @cached_property
    def test_baselines(self) -> dict[str, np.ndarray]:
        """Each baseline's test forecast (N, H, T) in original units, made once a run (the metrics and
        the predictions file both read them; none depends on the model)."""
        return {name: forecast(self.data, "test") for name, forecast in BASELINES.items()}

    def evaluate(self, learner: Learner, fit_result: FitResult, run_id: str) -> dict[str, Any]:
        """metrics.json: test metrics in original units, in the scaler's units (`scaled`, the papers'
        MSE and MAE, next to each baseline's) and in the model's own space (`test_model_space`), next
        to the baselines."""
        spec, loaded, windows = self.spec, self.loaded, self.data
        trained = fit_result.trained  # no finished epoch: the initial weights are not a result
        forecasts = {split: learner.predict(windows.split(split).x) for split in ("val", "test")}
        test_truth, last = windows.truth("test"), windows.persistence("test")
        test_pred = windows.to_original("test", forecasts["test"])
        self._test_forecast = (learner, test_pred)
        own = regression_metrics(windows.test.y, forecasts["test"])  # in what the model reads and writes
        model_space = {k: own[k] for k in ("mse", "rmse", "mae", "r2")} if trained else None
        baseline_forecasts = self.test_baselines
        baselines = {
            name: regression_metrics(test_truth, forecast, last)
            for name, forecast in baseline_forecasts.items()
        }
        return {
            **common_metrics(spec, learner, fit_result, run_id),
            "config": {
                **common_config(spec),
                "horizon": spec.dataset.horizon,
                "features": windows.features,
                "targets": windows.targets,
                "transform": spec.dataset.transform,
                "normalize": spec.dataset.normalize,
                "channels": spec.dataset.channels,
                "season": windows.season,
                "scaler": spec.dataset.scaler,
            },
            "test": regression_metrics(test_truth, test_pred, last) if trained else None,
            # the model's own space: after the transform, the scaler and the window normalisation (RevIN)
            "test_model_space": model_space,
            "test_scaled": model_space,  # test_model_space's old name, still written for scripts that read it
            "val": (
                regression_metrics(windows.truth("val"), windows.to_original("val", forecasts["val"]))
                if trained
                else None
            ),
            "baselines": baselines,
            "baseline_settings": {
                "linear": fit_linear(windows).record(),
                "seasonal": {"season": windows.season},
            },
            "test_windows": len(windows.test.origin),
            # the scaler's units (the papers' MSE and MAE), for the model and each baseline
            "scaled": scaled_scores(windows, {"model": test_pred, **baseline_forecasts}, trained),
            # Diebold-Mariano (HLN) on per-window squared errors: the model vs each baseline
            "significance": dm_against_baselines(test_truth, test_pred, baseline_forecasts)
            if trained
            else None,
            "splits": split_record(windows),
            "scaling": windows.scaling.record(),  # the scaler fit on train, for `seqbench predict`
            "split_id": split_id(spec.dataset, windows.features, windows.targets),
            "data": loaded.info,
            "versions": versions(),
        }

    def artifact_writers(self, learner: Learner, history: pd.DataFrame) -> dict[str, Callable[[Path], None]]:
        """predictions.csv (or .csv.xz) and predictions.png (the loss curve is every task's:
        seqbench.run.experiment)."""
        spec, windows = self.spec, self.data
        if self._test_forecast is not None and self._test_forecast[0] is learner:  # evaluate's, just made
            forecast = self._test_forecast[1]
        else:  # the artifacts of a finished run written again (--resume)
            forecast = windows.to_original("test", learner.predict(windows.test.x))
        baselines = self.test_baselines
        predictions = predictions_frame(windows, forecast, baselines["linear"])
        horizon = None
        if windows.horizon > 1:
            horizon = horizon_forecasts(windows, {"model": forecast, **baselines}, spec.dataset.seq_len)
        title = f"{spec.name}: {spec.model.name} on {spec.dataset.label} (test split)"
        return {
            "predictions.csv": lambda path: write_forecasts(path, predictions),
            "predictions.png": lambda path: plot_predictions(predictions, path, title, horizon),
        }
