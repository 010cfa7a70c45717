"""A forecast run's test forecasts on disk: predictions.csv, or predictions.csv.xz when they are many.

The plain form, predictions.csv, has one row per test window, step and target series (window by
window; within a window, steps then series), every value at full precision:

    date, series, step, target, prediction, persistence, linear

A run with more than `COMPACT_ABOVE_ROWS` such rows (ETTh1 at 96 -> 96 on 7 channels: 1.87 M rows,
190 MB) writes predictions.csv.xz instead (16.5 MB): the same values, one row per target series and
window (series by series; within a series, window by window), the per-step values side by side and a
value that is the same at every step of a window (persistence) once:

    series, persistence, date_1 .. date_H, target_1 .. target_H, prediction_1 .. prediction_H,
    linear_1 .. linear_H

The model's and the ridge's forecasts are rounded to `DIGITS` significant digits (each within 5e-7
relative; on the ETTh1 run, RMSE, MAE and the Diebold-Mariano statistic computed from the file agree
with metrics.json's to 1e-9); dates, targets and persistence are written as they are. Consecutive
rows of a series are consecutive windows, so a row's dates and targets repeat the previous row's
shifted by one step, which xz stores almost for free: what is left is the forecasts themselves.
`pd.read_csv` reads either file in one call; `read_forecasts` reads either as the plain form's
frame.
"""

from __future__ import annotations

import csv
import io
import lzma
import re
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd

from seqbench.errors import SeqbenchError, shown
from seqbench.io import atomic_write_bytes, atomic_write_text, read_regular

PLAIN = "predictions.csv"
COMPACT = "predictions.csv.xz"
FILES = (PLAIN, COMPACT)  # a run folder holds one of them
COMPACT_ABOVE_ROWS = 200_000  # plain rows (about 100 bytes each): above about 20 MB, the compact form
DIGITS = 7  # significant digits of the rounded columns in the compact form
ROUNDED = ("prediction", "linear")  # a model's forecasts; the others are data, kept exactly
XZ_BLOCK_ROWS = 1024  # rows of the compact form made into text while the block before is compressed
XZ_PRESET = 0  # ETTh1 96 -> 96: 16.5 MB in half the time of preset 1 (16.0 MB); preset 2: 15.5 MB, 6x
LONG_ORDER = ("date", "series", "step", "target", "prediction", "persistence", "linear")
# the file on disk, read whole: the plain form stays under ~30 MB, ETTh1's compact one is 16.5 MB
MAX_FILE_BYTES = 256 * 2**20
STEP_COLUMN = re.compile(r"^(?P<name>.+)_(?P<step>[0-9]+)$")


def write_forecasts(path: str | Path, frame: pd.DataFrame) -> Path:
    """Write the plain frame (see the module docstring) as `path` (predictions.csv), or, above
    `COMPACT_ABOVE_ROWS` rows, in the compact form as predictions.csv.xz beside it; returns the path
    written."""
    path = Path(path)
    if len(frame) <= COMPACT_ABOVE_ROWS:
        atomic_write_text(path, frame.to_csv(index=False))
        return path
    compact = path.with_name(COMPACT)
    atomic_write_bytes(compact, xz_csv(compact_frame(frame)))
    return compact


def xz_csv(frame: pd.DataFrame, block_rows: int = XZ_BLOCK_ROWS) -> bytes:
    """`csv_text(frame)` compressed by xz (`XZ_PRESET`): the text made in blocks of rows while a
    thread compresses the block before (lzma lets go of the GIL), so that on two cores it takes
    about the longer of the two rather than their sum. The bytes are lzma.compress's of the whole
    text (the encoder's output does not depend on how its input is cut)."""
    rows = range(0, len(frame), block_rows)
    texts = chain([csv_text(frame.iloc[:0])], (csv_text(frame.iloc[i : i + block_rows], False) for i in rows))
    compressor, parts, pending = lzma.LZMACompressor(preset=XZ_PRESET), [], None
    with ThreadPoolExecutor(1) as thread:
        for text in texts:  # made while the thread compresses the block before
            data = text.encode("utf-8")
            if pending is not None:
                parts.append(pending.result())
            pending = thread.submit(compressor.compress, data)
        parts.append(pending.result())
    return b"".join(parts) + compressor.flush()


def csv_text(frame: pd.DataFrame, header: bool = True) -> str:
    """`frame.to_csv(index=False, header=header)`, byte for byte, in about 0.6 of its time for a
    wide frame of floats (Python's csv writer over rows of Python values: floats as repr, as pandas
    writes them); a frame with a missing value goes through pandas (which writes it as an empty
    field)."""
    if frame.isna().to_numpy().any():
        return frame.to_csv(index=False, header=header)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(frame.columns)
    writer.writerows(zip(*(frame[c].to_numpy().tolist() for c in frame.columns), strict=True))
    return out.getvalue()


def find_forecasts(run_dir: str | Path) -> Path | None:
    """The run's predictions.csv or predictions.csv.xz, or None when it has neither."""
    for name in FILES:
        if (Path(run_dir) / name).is_file():
            return Path(run_dir) / name
    return None


def read_forecasts(run_dir: str | Path) -> pd.DataFrame:
    """The run's test forecasts as the plain form's frame (dates and series as text), whichever
    form is on disk; a SeqbenchError (one line) when there is none, it is larger than
    MAX_FILE_BYTES (checked before reading) or it cannot be read."""
    path = find_forecasts(run_dir)
    if path is None:
        raise SeqbenchError(f"cannot read {Path(run_dir) / PLAIN}: the run has no {PLAIN} or {COMPACT}")
    data = read_regular(path, MAX_FILE_BYTES, f"a {PLAIN}")
    try:
        if path.name == PLAIN:
            return pd.read_csv(io.BytesIO(data), dtype={"date": str, "series": str})
        header = pd.read_csv(io.BytesIO(data), nrows=0, compression="xz").columns
        text = {c: str for c in header if c == "series" or c.startswith("date_")}
        return long_frame(pd.read_csv(io.BytesIO(data), dtype=text, compression="xz"))
    except (OSError, ValueError, EOFError, lzma.LZMAError) as exc:
        raise SeqbenchError(f"cannot read {path}: {shown(str(exc).strip(), 300)}") from None


# --- the two layouts ------------------------------------------------------------------------------


def compact_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Plain rows (window, step, series order) -> one row per series and window: a column that
    holds one value per window and series (persistence) once, the others as name_1 .. name_H,
    `ROUNDED` columns rounded to `DIGITS` significant digits."""
    series = np.asarray(pd.unique(frame["series"].to_numpy()))
    n_series, horizon = len(series), int(frame["step"].max())
    n = len(frame) // (horizon * n_series)
    if n * horizon * n_series != len(frame):
        raise ValueError(f"{len(frame)} rows are not whole windows of {horizon} steps x {n_series} series")
    columns: dict[str, np.ndarray] = {"series": np.repeat(series, n)}
    blocks = {}
    for name in frame.columns.drop(["series", "step"]):
        values = frame[name].to_numpy()
        if name in ROUNDED:
            values = round_significant(values.astype(np.float64), DIGITS)
        per_series = values.reshape(n, horizon, n_series).transpose(2, 0, 1)  # (T, N, H)
        if _same_at_every_step(per_series):  # persistence: one column
            columns[name] = per_series[:, :, 0].reshape(-1)  # (T * N,)
        else:
            blocks[name] = per_series.reshape(n_series * n, horizon)  # (T * N, H)
    for name, values in blocks.items():
        for step in range(horizon):
            columns[f"{name}_{step + 1}"] = values[:, step]
    return pd.DataFrame(columns)


def _same_at_every_step(values: np.ndarray) -> bool:
    """Whether (T, N, H) values hold one value per series and window (NaN equal to NaN)."""
    first = values[:, :, :1]
    return bool(((values == first) | (pd.isna(values) & pd.isna(first))).all())


def long_frame(compact: pd.DataFrame) -> pd.DataFrame:
    """The inverse of `compact_frame` (up to its rounding): back to the plain rows and columns."""
    if "series" not in compact.columns:
        raise ValueError("no column 'series'")
    series = np.asarray(pd.unique(compact["series"].to_numpy()))
    n_series = len(series)
    n = len(compact) // n_series if n_series else 0
    steps: dict[str, list[tuple[int, str]]] = {}
    for column in compact.columns:
        match = STEP_COLUMN.match(column)
        if match:
            steps.setdefault(match["name"], []).append((int(match["step"]), column))
    horizon = max((len(found) for found in steps.values()), default=1)
    for name, found in steps.items():
        if sorted(step for step, _ in found) != list(range(1, horizon + 1)):
            raise ValueError(f"columns {name}_1 .. {name}_{horizon} are not all there")
    if n * n_series != len(compact) or (compact["series"].to_numpy() != np.repeat(series, n)).any():
        raise ValueError("rows are not the same number of windows for every series, series by series")
    out: dict[str, np.ndarray] = {
        "series": np.tile(series, n * horizon),
        "step": np.tile(np.repeat(np.arange(1, horizon + 1), n_series), n),
    }
    for name, found in steps.items():
        block = compact[[column for _, column in sorted(found)]].to_numpy()  # (T * N, H)
        out[name] = block.reshape(n_series, n, horizon).transpose(1, 2, 0).reshape(-1)  # (N * H * T,)
    for name in compact.columns.drop("series"):
        if not STEP_COLUMN.match(name):
            per_window = compact[name].to_numpy().reshape(n_series, n).T  # (N, T)
            out[name] = np.repeat(per_window[:, None], horizon, axis=1).reshape(-1)
    order = [c for c in LONG_ORDER if c in out] + [c for c in out if c not in LONG_ORDER]
    return pd.DataFrame({name: out[name] for name in order})


def round_significant(values: np.ndarray, digits: int) -> np.ndarray:
    """`values` rounded to `digits` significant digits, each the float nearest its decimal (so that
    it prints as at most `digits` digits); zeros, non-finite and subnormal values unchanged."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        exponent = np.floor(np.log10(np.abs(values)))  # (n,) -inf at 0, nan at nan
    keep = ~np.isfinite(exponent) | (np.abs(exponent) > 290)
    shift = np.where(keep, 0, digits - 1 - exponent)  # decimals to keep
    up = shift >= 0
    power = 10.0 ** np.abs(shift)  # an exact power of ten up to 1e22: the division rounds once
    with np.errstate(invalid="ignore", over="ignore"):
        rounded = np.where(up, np.round(values * power) / power, np.round(values / power) * power)
    return np.where(keep, values, rounded)
