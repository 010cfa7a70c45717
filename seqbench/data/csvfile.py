"""Read a user's CSV file into a frame indexed by date.

The date column is found by name (`date`, `Datetime`, `timestamp`, `trade_date`, ...)
or, failing that, an unnamed first column (a saved pandas index) that parses as dates;
`date_column` overrides both. Every problem is a one-line `DataError` naming the file.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pandas as pd

from seqbench.errors import DataError

DATE_NAMES = ("date", "datetime", "timestamp", "time")
_UNNAMED = re.compile(r"^(Unnamed: 0|)$")


def read_csv(path: str | Path, date_column: str | None = None) -> pd.DataFrame:
    """The CSV at `path` with a sorted, unique DatetimeIndex named "date"; other columns as they are."""
    path = Path(path)
    raw = _read_raw(path)
    column = date_column if date_column is not None else _detect_date_column(raw, path)
    if column not in raw.columns:
        raise DataError(f"{path}: date column '{column}' not found; available columns: {_names(raw.columns)}")
    dates = parse_dates(raw[column], path, column)
    frame = raw.drop(columns=[column])
    frame.index = pd.DatetimeIndex(dates, name="date")
    return _ordered(frame, path)


def parse_dates(values: pd.Series, path: Path | str, column: str) -> pd.DatetimeIndex:
    """Parse a column as timestamps (tz-naive); the first unparseable row is a DataError."""
    dates = _to_datetime(values)
    bad = dates.isna()
    if bad.any():
        row = int(bad.argmax())
        value = values.iloc[row]
        what = "missing date" if pd.isna(value) else f"cannot parse {value!r} as a date"
        raise DataError(f"{path}: {what} in column '{column}' (row {row + 1}, line {row + 2} of the file)")
    return dates


def date_format(index: pd.DatetimeIndex) -> str:
    """`%Y-%m-%d` when every timestamp is at midnight (daily or coarser data), else with the time."""
    return "%Y-%m-%d" if bool((index == index.normalize()).all()) else "%Y-%m-%d %H:%M:%S"


def date_strings(index: pd.DatetimeIndex) -> list[str]:
    """The timestamps as ISO strings in `date_format(index)`."""
    return list(index.strftime(date_format(index)))


def _read_raw(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"CSV file not found: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a CSV file")
    try:
        raw = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed CSV: {_first_line(exc)}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file (cannot decode it as UTF-8)") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if raw.empty:
        raise DataError(f"{path}: no data rows (only a header)")
    return raw


def _detect_date_column(raw: pd.DataFrame, path: Path) -> str:
    """A column named like a date, else an unnamed first column that parses as dates."""
    names = [str(c) for c in raw.columns]
    for name in names:
        if name.strip().lower() in DATE_NAMES:
            return name
    for name in names:
        if any(token in DATE_NAMES for token in re.split(r"[^a-z0-9]+", name.lower())):
            return name
    first = names[0]
    if _UNNAMED.match(first.strip()) and _looks_like_dates(raw[first]):
        return first
    raise DataError(
        f"{path}: no date column found (columns: {_names(raw.columns)}); name it with dataset.date_column"
    )


def _looks_like_dates(values: pd.Series) -> bool:
    if pd.api.types.is_numeric_dtype(values):
        return False  # a saved RangeIndex (0, 1, 2, ...) is not a date column
    return not _to_datetime(values).isna().any()


def _to_datetime(values: pd.Series) -> pd.DatetimeIndex:
    """Timestamps for strings (one format, else mixed) or Unix epoch numbers; NaT where unparseable."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        unit = "ms" if values.abs().max() > 1e11 else "s"
        return pd.DatetimeIndex(pd.to_datetime(values, unit=unit, errors="coerce"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "could not infer format" chatter
        dates = _coerce(values, fmt=None)
        if dates.isna().any():
            dates = _coerce(values, fmt="mixed")
    if dates.tz is not None:
        dates = dates.tz_localize(None)
    return dates


def _coerce(values: pd.Series, fmt: str | None) -> pd.DatetimeIndex:
    try:
        return pd.DatetimeIndex(pd.to_datetime(values, errors="coerce", format=fmt))
    except (ValueError, TypeError):  # mixed UTC offsets: compare them in UTC
        return pd.DatetimeIndex(pd.to_datetime(values, errors="coerce", format=fmt, utc=True))


def _ordered(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Refuse duplicate dates; sort (with a warning) when the file is not in ascending order."""
    duplicated = frame.index.duplicated()
    if duplicated.any():
        row = int(duplicated.argmax())
        when = frame.index[row].strftime(date_format(frame.index))
        raise DataError(f"{path}: duplicate date {when} (row {row + 1}); each date must appear once")
    if not frame.index.is_monotonic_increasing:
        warnings.warn(f"{path}: dates are not in ascending order; sorted them", UserWarning, stacklevel=3)
        frame = frame.sort_index()
    return frame


def _names(columns: pd.Index) -> str:
    return ", ".join(repr(str(c)) if str(c).strip() == "" else str(c) for c in columns)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
