"""From a frame to model-ready windows: split, transform, scale, window, and back.

The order is what keeps test data out of training:
1. split the rows chronologically into train / val / test;
2. optionally turn levels into changes (`diff`, `log_return`), row by row;
3. fit the scaler on the training rows only, then scale every row;
4. cut windows of `seq_len` inputs whose `horizon` targets all lie in one split
   (inputs may look back into earlier rows: that is the past, not leakage);
5. optionally normalise each window by its own last value and scale (`window`), or by
   its own per-channel mean and std (`instance`, RevIN);
6. optionally fold the channels into the batch (`channels: independent`): each channel
   a univariate window, (N, L, C) -> (N * C, L, 1), so one set of weights serves all.

`Windows.to_original` undoes 6, 5, 3 and 2 for a forecast, so metrics are reported
in the original units (dollars, degrees).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from seqbench.data.csvfile import date_format
from seqbench.errors import DataError, brief, shown

if TYPE_CHECKING:  # the spec is above the data: its types only
    from seqbench.spec import DatasetSpec, RowSplit

SPLITS = ("train", "val", "test")
WINDOW_SCALE_FLOOR = 1e-2  # in scaled units: keeps flat windows from dividing by ~0
INSTANCE_EPS = 1e-5  # RevIN: std = sqrt(var + eps)
MAX_SCALED = 1e9  # |scaled value| beyond this overflows a float32 model (weights ~1, sums of squares)


@dataclass
class WindowSet:
    """Windows of one split, in model space."""

    x: np.ndarray  # (N, L, F) inputs; channels independent: (N * C, L, 1)
    y: np.ndarray  # (N, H * T) targets, horizon-major; channels independent: (N * C, H)
    origin: np.ndarray  # (N,) row index of each window's last input row
    # (N, H * T) per-target loss weights, or None (all 1): under instance normalisation each window's
    # scale squared, so that the loss on normalised targets is the MSE in scaled units (RevIN)
    weight: np.ndarray | None = None


@dataclass(frozen=True)
class Scaling:
    """The scaler fit on the training rows, per column: scaled = (transformed value - center) / scale.

    Saved in a run's metrics.json (`record`), so that `seqbench predict` scales new rows as the run
    scaled its own.
    """

    columns: list[str]
    center: np.ndarray  # (C,)
    scale: np.ndarray  # (C,)

    def record(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "center": self.center.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_record(cls, record: Any) -> Scaling:
        """The Scaling a `record()` wrote; a ValueError naming the field that is not as `record()`
        writes it (the record is a metrics.json's `scaling`, which anyone may have edited)."""
        if not isinstance(record, dict):
            raise ValueError(f"scaling is {brief(record)}, expected a mapping of columns, center and scale")
        columns = record.get("columns")
        if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
            raise ValueError(f"scaling.columns is {brief(columns)}, expected a list of column names")
        if len(set(columns)) != len(columns):
            raise ValueError(f"scaling.columns is {brief(columns)}, expected each column once")
        center = _numbers(record.get("center"), "scaling.center", len(columns))
        scale = _numbers(record.get("scale"), "scaling.scale", len(columns))
        if not (scale > 0).all():
            raise ValueError(f"scaling.scale is {brief(record['scale'])}, expected numbers > 0")
        return cls(columns, center, scale)

    def apply(self, transformed: np.ndarray) -> np.ndarray:
        """(rows, C) transformed values, columns in `columns` order -> scaled values."""
        return (transformed - self.center) / self.scale

    def part(self, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(center, scale) of `columns`."""
        idx = [self.columns.index(c) for c in columns]
        return self.center[idx], self.scale[idx]


def _numbers(value: Any, field: str, n: int) -> np.ndarray:
    """`value` as (n,) finite float64s (one per scaling column); a ValueError naming `field` if not."""
    numbers = isinstance(value, list) and len(value) == n
    numbers = numbers and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    try:
        array = np.asarray(value, dtype=np.float64) if numbers else None
    except OverflowError:  # an integer beyond float64
        array = None
    if array is None or not np.isfinite(array).all():
        raise ValueError(f"{field} is {brief(value)}, expected {n} finite number(s), one per scaling.columns")
    return array


@dataclass
class Windows:
    """All three splits, with what is needed to map forecasts back to original units."""

    train: WindowSet
    val: WindowSet
    test: WindowSet
    features: list[str]
    targets: list[str]
    horizon: int
    dates: pd.DatetimeIndex
    raw_targets: np.ndarray  # (rows, T) target levels in original units
    split_rows: dict[str, tuple[int, int]]  # split -> [first row, end row) of its targets
    scaler_rows: tuple[int, int]  # rows the scaler was fit on
    transform: str
    target_center: np.ndarray  # (T,) scaler: scaled = (value - center) / scale
    target_scale: np.ndarray  # (T,)
    scaling: Scaling  # every column's scaler (features and targets)
    window_offsets: dict[str, np.ndarray] = field(default_factory=dict)  # split -> (N, T)
    window_scales: dict[str, np.ndarray] = field(default_factory=dict)  # split -> (N, T)
    independent: bool = False  # channels folded into the batch: model rows are (window, channel)
    season: int = 1  # rows per season, for seasonal persistence
    fitted: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # baselines, fit once

    def split(self, name: str) -> WindowSet:
        return getattr(self, name)

    def unfold(self, split: str, y_model: np.ndarray) -> np.ndarray:
        """Model-space forecasts, (N, H * T) or (N * T, H) with channels independent -> (N, H, T)."""
        return unfold(y_model, self.horizon, len(self.targets), self.independent)

    def to_original(self, split: str, y_model: np.ndarray) -> np.ndarray:
        """Model-space forecasts (N, H * T) -> forecasts in original units (N, H, T)."""
        origin = self.split(split).origin
        return to_original_units(
            self.unfold(split, y_model),
            self.raw_targets[origin],
            self.transform,
            self.target_center,
            self.target_scale,
            self.window_offsets.get(split),
            self.window_scales.get(split),
        )

    def to_scaled(self, y_original: np.ndarray) -> np.ndarray | None:
        """Forecasts in original units (N, H, T) -> the scaler's units; None under a transform."""
        if self.transform != "none":
            return None
        return (y_original - self.target_center) / self.target_scale

    def truth(self, split: str) -> np.ndarray:
        """True targets in original units, (N, H, T)."""
        origin = self.split(split).origin
        rows = origin[:, None] + np.arange(1, self.horizon + 1)  # (N, H)
        return self.raw_targets[rows]

    def persistence(self, split: str) -> np.ndarray:
        """The last observed target, repeated for every step: (N, H, T)."""
        origin = self.split(split).origin
        return np.repeat(self.raw_targets[origin][:, None], self.horizon, axis=1)

    def seasonal(self, split: str) -> np.ndarray:
        """The last `season` observed targets, repeated for every step: (N, H, T)."""
        origin = self.split(split).origin
        back = self.season - np.arange(self.horizon) % self.season  # (H,) steps back: season .. 1, season ..
        rows = np.maximum(origin[:, None] - back + 1, 0)  # (N, H); a season before row 0 repeats row 0
        return self.raw_targets[rows]

    def target_dates(self, split: str) -> np.ndarray:
        """Date of each forecast step, (N, H)."""
        origin = self.split(split).origin
        return self.dates.values[origin[:, None] + np.arange(1, self.horizon + 1)]


def unfold(y_model: np.ndarray, horizon: int, n_targets: int, independent: bool) -> np.ndarray:
    """Model-space forecasts, (N, H * T) or (N * T, H) with channels independent -> (N, H, T)."""
    if independent:
        return y_model.reshape(-1, n_targets, horizon).transpose(0, 2, 1).astype(np.float64)
    return y_model.reshape(-1, horizon, n_targets).astype(np.float64)


def to_original_units(
    y: np.ndarray,
    last_level: np.ndarray,
    transform: str,
    center: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray | None = None,
    spread: np.ndarray | None = None,
) -> np.ndarray:
    """Forecasts (N, H, T) in model units -> original units, undoing steps 5, 3 and 2.

    `last_level` (N, T) is each window's last observed target in original units (where a `diff`
    or `log_return` forecast starts from); `offset`, `spread` (N, T) its window normalisation.
    """
    if offset is not None:
        y = y * spread[:, None] + offset[:, None]
    change = y * scale + center  # (N, H, T) in transformed units
    last = last_level[:, None]  # (N, 1, T)
    if transform == "diff":
        return last + np.cumsum(change, axis=1)
    if transform == "log_return":
        return last * np.exp(np.cumsum(change, axis=1))
    return change


def default_season(dates: pd.DatetimeIndex) -> int:
    """Rows per season: a day for sub-daily rows (24 hourly, 96 at 15 minutes), a week for daily ones.

    A week is 7 rows, or 5 where the rows skip weekends (trading days); 1 (persistence) otherwise.
    """
    if len(dates) < 2:
        return 1
    step = pd.Series(dates).diff().median()
    day = pd.Timedelta(days=1)
    if step < day and day % step == pd.Timedelta(0):
        return int(day / step)
    if step == day:
        return 7 if (pd.DatetimeIndex(dates).day_of_week >= 5).any() else 5
    return 1


def split_id(ds: DatasetSpec, features: list[str], targets: list[str]) -> str:
    """What decides which rows become which split's windows, and how they are scaled, as a short hash.

    Runs with the same data (sha256) and split_id have exactly the same test windows and targets.
    """
    keys = {
        "seq_len": ds.seq_len,
        "horizon": ds.horizon,
        "split": ds.split.model_dump() if isinstance(ds.split, BaseModel) else list(ds.split),
        "transform": ds.transform,
        "scaler": ds.scaler,
        "normalize": ds.normalize,
        **({"channels": ds.channels} if ds.channels != "mixed" else {}),  # older split ids hold
        "features": list(features),
        "targets": list(targets),
    }
    text = json.dumps(keys, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def rows_per_step(step: str, dates: pd.DatetimeIndex, label: str = "dataset") -> int:
    """How many of the data's rows make one row at `step` (15-minute rows, step h: 4)."""
    row_step = pd.Series(dates).diff().median()
    ratio = pd.Timedelta(pd.tseries.frequencies.to_offset(step)) / row_step
    if len(dates) < 2 or ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
        raise DataError(
            f"{label}: dataset.split counts rows at step {step}, but the data's rows are {row_step} apart "
            "(not a whole fraction of it); set dataset.split.step to the data's step or leave it out"
        )
    return round(ratio)


def split_bounds(
    n_rows: int,
    fractions: tuple[float, float, float] | RowSplit,
    label: str = "dataset",
    dates: pd.DatetimeIndex | None = None,
) -> dict[str, tuple[int, int]]:
    """Chronological [start, end) row ranges of train, val and test (fractions or row counts)."""
    if isinstance(fractions, BaseModel):  # a RowSplit: row counts
        factor = rows_per_step(fractions.step, dates, label) if fractions.step and dates is not None else 1
        n_train, n_val, n_test = (factor * n for n in (fractions.train, fractions.val, fractions.test))
        if n_train + n_val + n_test > n_rows:
            raise DataError(
                f"{label}: dataset.split asks for {n_train} + {n_val} + {n_test} = "
                f"{n_train + n_val + n_test} rows, the data has {n_rows}; use smaller row counts or fractions"
            )
        return {
            "train": (0, n_train),
            "val": (n_train, n_train + n_val),
            "test": (n_train + n_val, n_train + n_val + n_test),
        }
    n_train = min(round(n_rows * fractions[0]), n_rows)
    n_val = min(round(n_rows * fractions[1]), n_rows - n_train)
    return {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n_rows)}


def apply_transform(
    values: np.ndarray, transform: str, columns: list[str], label: str = "dataset"
) -> tuple[np.ndarray, int]:
    """Levels -> changes, row by row. Returns (transformed rows, first valid row)."""
    if transform == "none":
        return values.copy(), 0
    out = np.full_like(values, np.nan)
    if transform == "diff":
        out[1:] = values[1:] - values[:-1]
    else:  # log_return
        bad = np.nonzero((values <= 0).any(axis=0))[0]
        if len(bad):
            row = int(np.argmax(values[:, bad[0]] <= 0))
            raise DataError(
                f"{label}: dataset.transform 'log_return' needs positive values; column '{columns[bad[0]]}' "
                f"has zeros or negatives (first in row {row + 1}); use transform: diff"
            )
        out[1:] = np.log(values[1:] / values[:-1])
    return out, 1


def fit_scaler(
    kind: str, train_rows: np.ndarray, columns: list[str], label: str = "dataset"
) -> tuple[np.ndarray, np.ndarray]:
    """(center, scale) per column from the training rows: scaled = (value - center) / scale."""
    if kind == "none":
        return np.zeros(train_rows.shape[1]), np.ones(train_rows.shape[1])
    constant = np.nonzero(np.ptp(train_rows, axis=0) == 0)[0]
    if len(constant):
        raise DataError(
            f"{label}: column '{columns[constant[0]]}' is constant in the training split "
            f"({len(train_rows)} rows), so dataset.scaler '{kind}' cannot scale it; "
            "drop it from dataset.features (or set dataset.scaler: none)"
        )
    if kind == "minmax":
        scaler = MinMaxScaler().fit(train_rows)
        return scaler.data_min_, 1.0 / scaler.scale_
    scaler = StandardScaler().fit(train_rows)
    return scaler.mean_, scaler.scale_


def _window_origins(start: int, end: int, first_row: int, seq_len: int, horizon: int) -> np.ndarray:
    """Origins t whose targets t+1..t+horizon lie in [start, end) and inputs start at >= first_row."""
    lo = max(start - 1, first_row + seq_len - 1)
    hi = end - horizon  # last t with t + horizon <= end - 1
    return np.arange(lo, hi)


def _check_split_lengths(
    bounds: dict[str, tuple[int, int]], first_row: int, ds: DatasetSpec, label: str
) -> None:
    """Every split holds at least one window, or a DataError says which split is short and why."""
    for name in SPLITS:
        start, end = bounds[name]
        rows = end - start
        if len(_window_origins(start, end, first_row, ds.seq_len, ds.horizon)):
            continue
        if rows < ds.horizon:
            raise DataError(
                f"{label}: the {name} split has {rows} rows, too few for dataset.horizon {ds.horizon}; "
                f"use a shorter horizon, more data or a larger {name} fraction in dataset.split"
            )
        need = first_row + ds.seq_len + ds.horizon
        raise DataError(
            f"{label}: the {name} split has {rows} rows, too few for dataset.seq_len {ds.seq_len} and "
            f"dataset.horizon {ds.horizon} (a window needs {need} rows up to the end of the split, "
            f"there are {end}); use a shorter seq_len or more data"
        )


def _check_magnitude(
    scaled: np.ndarray,
    columns: list[str],
    dates: pd.Index,
    bounds: dict[str, tuple[int, int]],
    scaler: str,
    label: str,
) -> None:
    """Refuse a value so far outside the training rows' range that the model would overflow on it."""
    big = np.abs(np.nan_to_num(scaled, nan=0.0)) > MAX_SCALED
    if not big.any():
        return
    row, column = (int(i) for i in np.argwhere(big)[0])
    split = next(name for name in SPLITS if bounds[name][0] <= row < bounds[name][1])
    when = pd.DatetimeIndex(dates)[row].strftime(date_format(pd.DatetimeIndex(dates)))
    raise DataError(
        f"{label}: column '{shown(columns[column])}' on {when} ({split} split) is {scaled[row, column]:.3g} "
        f"in scaled units (dataset.scaler '{scaler}', fit on the training rows): an outlier this far "
        f"outside the training range (more than {MAX_SCALED:.0e}) overflows the model; fix or remove that row"
    )


def window_inputs(
    scaled: np.ndarray, origin: np.ndarray, f_idx: list[int], t_idx: list[int], ds: DatasetSpec
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The model inputs of the windows whose last row is `origin` (steps 5 and 6 of the module docstring).

    `scaled` is (rows, C), every column scaled. Returns x, (N, L, F) or with channels independent
    (N * F, L, 1), and, under `normalize: window | instance`, each window's target offset and
    spread (N, T), with which its targets are normalised and its forecasts undone (else None, None).
    """
    steps = np.arange(-ds.seq_len + 1, 1)  # (L,) relative input rows
    rows = scaled[origin[:, None] + steps]  # (N, L, C)
    x, history = rows[:, :, f_idx], rows[:, :, t_idx]  # (N, L, F), (N, L, T)
    offset = spread = None
    if ds.normalize == "window":  # relative to the last value, in units of the window's std
        x = (x - x[:, -1:]) / (x.std(axis=1, keepdims=True) + WINDOW_SCALE_FLOOR)
        offset, spread = history[:, -1], history.std(axis=1) + WINDOW_SCALE_FLOOR  # (N, T)
    elif ds.normalize == "instance":  # RevIN: each window's per-channel mean and std
        x = (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True) + INSTANCE_EPS)
        offset, spread = history.mean(axis=1), np.sqrt(history.var(axis=1) + INSTANCE_EPS)  # (N, T)
    if ds.channels == "independent":  # (N, L, C) -> (N * C, L, 1)
        x = x.transpose(0, 2, 1).reshape(-1, ds.seq_len, 1)
    return x.astype(np.float64), offset, spread


def make_windows(
    frame: pd.DataFrame, features: list[str], targets: list[str], ds: DatasetSpec, label: str = "dataset"
) -> Windows:
    """Split, transform, scale (fit on train) and window `frame` as the spec says.

    `label` names the data in error messages (a file, a ticker, a built-in name).
    """
    columns = list(dict.fromkeys(features + targets))
    bounds = split_bounds(len(frame), ds.split, label, pd.DatetimeIndex(frame.index))
    frame = frame.iloc[: bounds["test"][1]]  # row counts may leave rows after the test split unused
    raw = frame[columns].to_numpy(dtype=np.float64)  # (rows, C)
    transformed, first_row = apply_transform(raw, ds.transform, columns, label)
    scaler_rows = (first_row, bounds["train"][1])
    _check_split_lengths(bounds, first_row, ds, label)
    center, scale = fit_scaler(ds.scaler, transformed[scaler_rows[0] : scaler_rows[1]], columns, label)
    scaled = (transformed - center) / scale  # (rows, C)
    _check_magnitude(scaled, columns, frame.index, bounds, ds.scaler, label)
    f_idx = [columns.index(c) for c in features]
    t_idx = [columns.index(c) for c in targets]
    independent = ds.channels == "independent"
    if independent and f_idx != t_idx:
        raise DataError(
            f"{label}: dataset.channels 'independent' forecasts each input channel from itself, so "
            f"dataset.features {features} must be dataset.target {targets} (same columns, same order)"
        )

    sets: dict[str, WindowSet] = {}
    offsets: dict[str, np.ndarray] = {}
    scales: dict[str, np.ndarray] = {}
    for name in SPLITS:
        origin = _window_origins(*bounds[name], first_row, ds.seq_len, ds.horizon)
        x, offset, spread = window_inputs(scaled, origin, f_idx, t_idx, ds)
        y = scaled[origin[:, None] + np.arange(1, ds.horizon + 1)][:, :, t_idx]  # (N, H, T)
        weight = None
        if offset is not None:
            offsets[name], scales[name] = offset, spread
            y = (y - offset[:, None]) / spread[:, None]
        if ds.normalize == "instance":
            # RevIN: the loss is taken after undoing the normalisation, |s (y_hat - y)|^2: weight s^2
            weight = np.broadcast_to(spread[:, None] ** 2, y.shape)  # (N, H, T)
        if independent:  # (N, H, C) -> (N * C, H)
            y = y.transpose(0, 2, 1)
            weight = None if weight is None else weight.transpose(0, 2, 1)
        as_rows = None if weight is None else np.ascontiguousarray(weight).reshape(len(x), -1)
        sets[name] = WindowSet(x, y.reshape(len(x), -1), origin, as_rows)

    return Windows(
        **sets,
        features=features,
        targets=targets,
        horizon=ds.horizon,
        dates=pd.DatetimeIndex(frame.index),
        raw_targets=raw[:, t_idx],
        split_rows=bounds,
        scaler_rows=scaler_rows,
        transform=ds.transform,
        target_center=center[t_idx],
        target_scale=scale[t_idx],
        scaling=Scaling(columns, center, scale),
        window_offsets=offsets,
        window_scales=scales,
        independent=independent,
        season=ds.season or default_season(pd.DatetimeIndex(frame.index)),
    )
