"""Forecasts from a trained run: the next `horizon` steps after the last row of a series.

The series is the run's own data (its spec.yaml's dataset, read again: a newer download gives a
newer forecast) or a CSV with the same columns. Its last `seq_len` rows go through what the run
did to its windows: the transform, the scaler fit on the run's training rows (saved in its
metrics.json), the window normalisation and the channel folding; the run's best weights forecast,
and the forecast is mapped back to original units, dated in the series' own frequency.

The run folder is someone's files: what predict reads from its metrics.json is checked first
(`RunRecord`), a series whose rows are not as frequent as the run's is a warning, and so are rows
at its end that `dataset.fill: drop` removed (the forecast then starts before the file's end).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqbench.data.calendar import next_dates, row_step, step_name
from seqbench.data.csvfile import date_format
from seqbench.data.sources import LoadedFrame, load_frame
from seqbench.data.windows import (
    Scaling,
    apply_transform,
    make_windows,
    to_original_units,
    unfold,
    window_inputs,
)
from seqbench.errors import DataError, SeqbenchError, brief, shown
from seqbench.spec import DatasetSpec, Spec
from seqbench.trained.load import load_weights, trained_spec

OTHER_FREQUENCY = 2.5  # rows this many times more or less frequent than the run's: a warning


@dataclass
class Forecast:
    frame: pd.DataFrame  # date, series, step, prediction: one row per step and target
    label: str  # the data's name
    last_date: str  # the last row the forecast starts from
    rows: int  # rows of the data


def predict_run(run_dir: Path, data: Path | None = None, data_dir: Path = Path("data")) -> Forecast:
    """The forecast of the run in `run_dir` after the last row of its data, or of the CSV `data`."""
    run_dir = Path(run_dir)
    spec, metrics = trained_spec(run_dir, data_dir, task="forecast", command="predict")
    record = run_record(run_dir, metrics)
    features, targets = record.features, record.targets
    ds = spec.dataset.model_copy(update={"features": features, "target": targets})
    loaded = load_frame(_csv_like(ds, data) if data is not None else ds, data_dir)
    scaling = record.scaling or _refit_scaling(record, spec, ds, loaded if data is None else None, data_dir)
    columns = scaling.columns
    lag = 0 if ds.transform == "none" else 1  # a change needs the row before
    frame = loaded.frame
    label = loaded.info["label"]
    _warn_other_frequency(record, frame.index, label, ds.seq_len)
    _warn_dropped_at_end(loaded)
    if len(frame) < ds.seq_len + lag:
        raise DataError(
            f"{label}: {len(frame)} rows; the run forecasts from its last {ds.seq_len + lag} rows "
            f"(dataset.seq_len {ds.seq_len}{' and one for the transform' if lag else ''})"
        )
    raw = frame[columns].to_numpy(dtype=np.float64)[-(ds.seq_len + lag) :]  # (L + lag, C)
    transformed, _ = apply_transform(raw, ds.transform, columns, label)
    scaled = scaling.apply(transformed)  # (L + lag, C)
    f_idx, t_idx = [columns.index(c) for c in features], [columns.index(c) for c in targets]
    x, offset, spread = window_inputs(scaled, np.array([len(raw) - 1]), f_idx, t_idx, ds)
    independent = ds.channels == "independent"
    n_outputs = ds.horizon if independent else ds.horizon * len(targets)

    from seqbench.training.learners import build_learner

    learner = build_learner(spec, x.shape[-1], n_outputs)
    load_weights(learner, run_dir)
    y = unfold(learner.predict(x), ds.horizon, len(targets), independent)  # (1, H, T)
    center, scale = scaling.part(targets)
    forecast = to_original_units(y, raw[-1:, t_idx], ds.transform, center, scale, offset, spread)[0]
    if not np.isfinite(forecast).all():
        raise DataError(
            f"{label}: the forecast is not finite; the last rows lie far outside the run's training range"
        )
    dates = pd.DatetimeIndex(frame.index)
    steps = next_dates(dates, ds.horizon)
    fmt = date_format(dates.append(steps))
    h, t = forecast.shape
    table = pd.DataFrame(
        {
            "date": np.repeat(steps.strftime(fmt), t),
            "series": np.tile(targets, h),
            "step": np.repeat(np.arange(1, h + 1), t),
            "prediction": forecast.reshape(-1),
        }
    )
    return Forecast(table, label, dates[-1].strftime(fmt), len(frame))


def _csv_like(ds: DatasetSpec, path: Path) -> DatasetSpec:
    """The run's dataset section, reading the CSV `path` instead: the same columns, all its rows.

    A CSV run keeps its reading options (date column and format, separator, decimal mark); any
    other source's data reads as a plain CSV. The start/end filter is dropped: new rows are the point.
    """
    keep = ("date_column", "date_format", "sep", "decimal", "timezone") if ds.source == "csv" else ()
    reading = {k: getattr(ds, k) for k in keep}
    defaults = {"date_column": None, "date_format": None, "sep": None, "decimal": ".", "timezone": "local"}
    new = {"source": "csv", "path": str(path), "start": None, "end": None}
    return ds.model_copy(update={**defaults, **reading, **new})


@dataclass(frozen=True)
class RunRecord:
    """What predict reads from a completed forecast run's metrics.json, checked (`run_record`)."""

    features: list[str]  # config.features
    targets: list[str]  # config.targets
    scaling: Scaling | None  # the scaler fit on the training rows; None in a run from before it was saved
    data: dict[str, Any]  # the run's data: rows, first_date, last_date, sha256, label


def run_record(run_dir: Path, metrics: dict[str, Any]) -> RunRecord:
    """The fields predict reads from the run's metrics.json; a field that is not as training writes it
    is one SeqbenchError line naming it and what was expected."""
    where = run_dir / "metrics.json"
    if metrics.get("status") != "completed":
        status = shown(metrics["status"]) if metrics.get("status") else "unfinished"
        raise SeqbenchError(f"{run_dir} is {status}; `seqbench predict` needs a completed run")
    config = _mapping(metrics.get("config"), "config", where)
    features, targets = (_names(config.get(key), f"config.{key}", where) for key in ("features", "targets"))
    data = _mapping(metrics.get("data", {}), "data", where)
    if metrics.get("scaling") is None:
        return RunRecord(features, targets, None, data)
    try:
        scaling = Scaling.from_record(metrics["scaling"])
    except ValueError as exc:
        raise SeqbenchError(f"{where}: {exc}") from None
    if sorted(scaling.columns) != sorted(set(features + targets)):
        raise SeqbenchError(
            f"{where}: scaling.columns is {brief(scaling.columns)}, expected the run's columns "
            f"{brief(sorted(set(features + targets)))} (config.features and config.targets)"
        )
    return RunRecord(features, targets, scaling, data)


def _mapping(value: Any, field: str, where: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SeqbenchError(f"{where}: {field} is {brief(value)}, expected a mapping of keys")
    return value


def _names(value: Any, field: str, where: Path) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(name, str) for name in value):
        raise SeqbenchError(f"{where}: {field} is {brief(value)}, expected a list of column names")
    return list(value)


def _warn_other_frequency(record: RunRecord, dates: pd.Index, label: str, seq_len: int) -> None:
    """A warning when the series' rows are not as frequent as the run's data's (hourly rows for a
    daily model): the forecast is dated in the series' step, and reads rows the model never saw."""
    run_step, step = _run_step(record.data), row_step(pd.DatetimeIndex(dates))
    if run_step is None or not step > pd.Timedelta(0):
        return
    if 1 / OTHER_FREQUENCY < step / run_step < OTHER_FREQUENCY:
        return
    data = record.data
    span = f"{data['rows']} rows {shown(data['first_date'])} .. {shown(data['last_date'])}"
    trained_on = f"{shown(data.get('label', 'its data'))}: {span}"
    warnings.warn(
        f"{label} has {step_name(step)} rows, but the run was trained on {step_name(run_step)} rows "
        f"({trained_on}); the forecast is dated {step_name(step)} and reads the last {seq_len} rows as if "
        f"they were {step_name(run_step)}",
        stacklevel=2,
    )


def _run_step(data: dict[str, Any]) -> pd.Timedelta | None:
    """The mean step between the rows of the run's data (its metrics.json's `data`); None if it does
    not say. (Trading days average 1.45 days: `step_name` still calls them daily.)"""
    rows, first, last = data.get("rows"), data.get("first_date"), data.get("last_date")
    if not (isinstance(rows, int) and rows > 1 and isinstance(first, str) and isinstance(last, str)):
        return None
    try:
        step = (pd.Timestamp(last) - pd.Timestamp(first)) / (rows - 1)
    except (TypeError, ValueError, OverflowError):
        return None
    return step if step > pd.Timedelta(0) else None


def _warn_dropped_at_end(loaded: LoadedFrame) -> None:
    """A warning when `dataset.fill: drop` removed the last rows: the forecast starts before the end."""
    tail = loaded.dropped_at_end
    if tail is None:
        return
    columns = ", ".join(tail.columns[:5]) + (", ..." if len(tail.columns) > 5 else "")
    warnings.warn(
        f"{loaded.info['label']}: the forecast starts after {loaded.info['last_date']}, not after the data's "
        f"last row {tail.last_date}: the {tail.rows} row(s) after it have gaps (in {columns}) and the run "
        "drops such rows (dataset.fill: drop)",
        stacklevel=2,
    )


def _refit_scaling(
    record: RunRecord, spec: Spec, ds: DatasetSpec, own: LoadedFrame | None, data_dir: Path
) -> Scaling:
    """For a run made before seqbench saved its scaler in metrics.json: the scaler fit again on the
    run's own data (which must be unchanged)."""
    own = own or load_frame(ds, data_dir)
    if record.data.get("sha256") != own.info.get("sha256"):
        raise DataError(
            f"{spec.dataset.label}: the run's metrics.json has no scaler and its data changed since it was "
            "trained, so its scaling cannot be recovered; train it again"
        )
    windows = make_windows(own.frame, own.features, own.targets, ds, own.info["label"])
    return windows.scaling
