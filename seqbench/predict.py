"""Forecasts from a trained run: the next `horizon` steps after the last row of a series.

The series is the run's own data (its spec.yaml's dataset, read again: a newer download gives a
newer forecast) or a CSV with the same columns. Its last `seq_len` rows go through what the run
did to its windows: the transform, the scaler fit on the run's training rows (saved in its
metrics.json), the window normalisation and the channel folding; the run's best weights forecast,
and the forecast is mapped back to original units, dated in the series' own frequency.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqbench.data.calendar import next_dates
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
from seqbench.errors import DataError, SeqbenchError
from seqbench.spec import DatasetSpec, Spec
from seqbench.trained import load_weights, trained_spec


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
    if metrics.get("status") != "completed":
        status = metrics.get("status") or "unfinished"
        raise SeqbenchError(f"{run_dir} is {status}; `seqbench predict` needs a completed run")
    config = metrics.get("config") or {}
    features, targets = config.get("features"), config.get("targets")
    if not features or not targets:
        raise SeqbenchError(f"{run_dir}: its metrics.json does not say the run's features and targets")
    ds = spec.dataset.model_copy(update={"features": list(features), "target": list(targets)})
    loaded = load_frame(_csv_like(ds, data) if data is not None else ds, data_dir)
    scaling = _scaling(metrics, spec, ds, loaded if data is None else None, data_dir)
    columns = scaling.columns
    lag = 0 if ds.transform == "none" else 1  # a change needs the row before
    frame = loaded.frame
    label = loaded.info["label"]
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

    from seqbench.learners import build_learner

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


def _scaling(
    metrics: dict[str, Any], spec: Spec, ds: DatasetSpec, own: LoadedFrame | None, data_dir: Path
) -> Scaling:
    """The scaler the run fit on its training rows: from its metrics.json, or, for a run made before
    seqbench saved it there, fit again on the run's own data (which must be unchanged)."""
    try:
        return Scaling.from_record(metrics.get("scaling"))
    except ValueError:
        pass
    own = own or load_frame(ds, data_dir)
    if (metrics.get("data") or {}).get("sha256") != own.info.get("sha256"):
        raise DataError(
            f"{spec.dataset.label}: the run's metrics.json has no scaler and its data changed since it was "
            "trained, so its scaling cannot be recovered; train it again"
        )
    windows = make_windows(own.frame, own.features, own.targets, ds, own.info["label"])
    return windows.scaling
