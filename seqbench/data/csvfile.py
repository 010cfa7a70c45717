"""Read a user's CSV file into a frame indexed by date.

The date column is found by name (`date`, `Datetime`, `timestamp`, `trade_date`, ...)
or, failing that, an unnamed first column (a saved pandas index) that parses as dates;
`date_column` overrides both. Every problem is a one-line `DataError` naming the file.

How dates are read (docs/data.md, "Dates as people store them"):
- strings in one ISO-like format, else each as it comes (`format="mixed"`); `date_format`
  (strftime, e.g. `%d/%m/%Y`) reads them with exactly that format instead;
- integers of 8 digits are YYYYMMDD (19790101); other numbers are refused unless
  `date_format` says what they are (`unix`: seconds since 1970-01-01, `unix_ms`: milliseconds);
- UTC offsets (`2020-01-02 09:30:00-05:00`), whether one offset for the whole file or several
  (daylight saving time): `timezone: local` (the default) keeps the local time each row
  states and drops the offset, so daily data stays at midnight and a market opens at 09:30 all
  year; `timezone: utc` converts every row to UTC instead.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from seqbench.data.files import regular_file
from seqbench.errors import DataError, brief, shown

DATE_NAMES = ("date", "datetime", "timestamp", "time")
UNIX_FORMATS = {"unix": "s", "unix_ms": "ms"}  # date_format values for numeric timestamps
SEPARATORS = (";", "\t", "|")  # what a file that is not comma-separated likely uses
_UNNAMED = re.compile(r"^(Unnamed: 0|)$")
# a time of day followed by its UTC offset: 09:30:00-05:00, 09:30+0100, 14:30:00.5Z
_OFFSET = re.compile(r"(\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(?:Z|UTC|[+-]\d{2}(?::?\d{2})?)$")
_DECIMAL_COMMA = re.compile(r"(?<![\d.])\d+,\d+(?![\d,])")
SNIFF_BYTES = 65536
# pandas holds ~3x a CSV's size while it reads; ETT is 10 MB, decades of minute bars ~100 MB
MAX_CSV_BYTES = 2**30


def read_csv(
    path: str | Path,
    date_column: str | None = None,
    *,
    date_format: str | None = None,
    sep: str | None = None,
    decimal: str = ".",
    timezone: str = "local",
) -> pd.DataFrame:
    """The CSV at `path` with a sorted, unique DatetimeIndex named "date"; other columns as they are."""
    path = Path(path)
    raw = _read_raw(path, sep, decimal)
    column = date_column if date_column is not None else _detect_date_column(raw, path)
    if column not in raw.columns:
        raise DataError(
            f"{path}: date column '{shown(column)}' not found; available columns: {_names(raw.columns)}"
        )
    dates = parse_dates(raw[column], path, column, date_format, timezone)
    frame = raw.drop(columns=[column])
    frame.index = pd.DatetimeIndex(dates, name="date")
    return _ordered(frame, path, offsets=_has_offsets(raw[column]))


def parse_dates(
    values: pd.Series,
    path: Path | str,
    column: str,
    date_format: str | None = None,
    timezone: str = "local",
) -> pd.DatetimeIndex:
    """Parse a column as timestamps (tz-naive; see the module docstring); the first bad row is a DataError."""
    dates = _to_datetime(values, path, column, date_format, timezone)
    bad = dates.isna()
    if bad.any():
        row = int(bad.argmax())
        value = values.iloc[row]
        what = "missing date" if pd.isna(value) else f"cannot parse {brief(value)} as a date"
        how = f" with dataset.date_format '{shown(date_format)}'" if date_format else ""
        raise DataError(
            f"{path}: {what}{how} in column '{shown(column)}' (row {row + 1}, line {row + 2} of the file)"
        )
    return dates


def date_format(index: pd.DatetimeIndex) -> str:
    """`%Y-%m-%d` when every timestamp is at midnight (daily or coarser data), else with the time."""
    return "%Y-%m-%d" if bool((index == index.normalize()).all()) else "%Y-%m-%d %H:%M:%S"


def date_strings(index: pd.DatetimeIndex) -> list[str]:
    """The timestamps as ISO strings in `date_format(index)`."""
    return list(index.strftime(date_format(index)))


# --- the file --------------------------------------------------------------------------------


def _read_raw(path: Path, sep: str | None, decimal: str) -> pd.DataFrame:
    _check_file(path)
    if sep is None:
        _refuse_other_separators(path, decimal)
    try:
        raw = pd.read_csv(path, sep=sep or ",", decimal=decimal)
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


def _check_file(path: Path) -> None:
    """A regular file that exists, of at most MAX_CSV_BYTES (a 3 GiB file, sparse or not, would take
    pandas minutes and gigabytes); a relative path that does not exist is explained in full."""
    size = regular_file(path, "CSV file").st_size
    if size > MAX_CSV_BYTES:
        raise DataError(
            f"{path}: the file is {size:,} bytes, over the limit of {MAX_CSV_BYTES:,} for a CSV file "
            "(seqbench reads data of up to 1 GiB)"
        )


def _refuse_other_separators(path: Path, decimal: str) -> None:
    """A file whose header has no comma but a ';', tab or '|' is not comma-separated: say which to set."""
    try:
        with path.open("rb") as f:
            head = f.read(SNIFF_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return  # pandas reports it
    lines = head.lstrip("\ufeff").splitlines()
    header = lines[0] if lines else ""
    if "," in header:
        return
    counts = {sep: header.count(sep) for sep in SEPARATORS}
    sep, n = max(counts.items(), key=lambda item: item[1])
    if n == 0:
        return
    data = "\n".join(lines[1:6])
    decimal_hint = (
        " and dataset.decimal: ','"
        if decimal == "." and _DECIMAL_COMMA.search(data.replace(sep, " "))
        else ""
    )
    raise DataError(
        f"{path}: the fields seem to be separated by {sep!r}, not ',' (header {brief(header[:60])}); "
        f"set dataset.sep: {sep!r}{decimal_hint}"
    )


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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return not _parse_strings(values.astype(str), "local").isna().any()


# --- dates -----------------------------------------------------------------------------------


def _to_datetime(
    values: pd.Series, path: Path | str, column: str, date_format: str | None, timezone: str
) -> pd.DatetimeIndex:
    """Timestamps as the module docstring says; NaT where a value does not parse."""
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if date_format in UNIX_FORMATS:
        seconds = pd.to_numeric(values, errors="coerce")
        return pd.DatetimeIndex(pd.to_datetime(seconds, unit=UNIX_FORMATS[date_format], errors="coerce"))
    if date_format is not None:
        text = _integers_as_text(values) if numeric else values.astype("string")
        return _naive(pd.to_datetime(text, format=date_format, errors="coerce", utc=True), text, timezone)
    if numeric:
        if _is_yyyymmdd(values):
            return pd.DatetimeIndex(
                pd.to_datetime(_integers_as_text(values), format="%Y%m%d", errors="coerce")
            )
        example = values.dropna().iloc[0] if values.notna().any() else values.iloc[0]
        raise DataError(
            f"{path}: the date column '{shown(column)}' holds numbers (e.g. {brief(example)}), not dates; "
            "set dataset.date_format: '%Y%m%d' (or another strftime format), 'unix' (seconds since "
            "1970-01-01) or 'unix_ms'"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "could not infer format" chatter
        return _parse_strings(values, timezone)


def _parse_strings(values: pd.Series, timezone: str) -> pd.DatetimeIndex:
    text = values.astype("string").str.strip()
    if timezone == "local":  # the local time each row states: drop its UTC offset
        text = text.str.replace(_OFFSET, r"\1", regex=True)
    dates = _coerce(text, fmt=None)
    if dates.isna().any():
        dates = _coerce(text, fmt="mixed")
    return dates


def _coerce(text: pd.Series, fmt: str | None) -> pd.DatetimeIndex:
    """Parse in UTC (any offsets converted), then drop the time zone."""
    try:
        parsed = pd.to_datetime(text, errors="coerce", format=fmt, utc=True)
    except (ValueError, TypeError, OverflowError):
        return pd.DatetimeIndex([pd.NaT] * len(text))
    return pd.DatetimeIndex(parsed).tz_localize(None)


def _naive(parsed: pd.Series, text: pd.Series, timezone: str) -> pd.DatetimeIndex:
    """Dates parsed with utc=True by an explicit format: local wall time (timezone: local) or UTC."""
    dates = pd.DatetimeIndex(parsed)
    if timezone == "local" and _has_offsets(text):  # %z in the format: give back the stated local time
        return _parse_strings(text, "local")
    return dates.tz_localize(None)


def _has_offsets(values: pd.Series) -> bool:
    if pd.api.types.is_numeric_dtype(values):
        return False
    text = values.astype("string").str.strip()
    return bool((text.str.replace(_OFFSET, r"\1", regex=True) != text).fillna(False).any())


def _is_yyyymmdd(values: pd.Series) -> bool:
    """Integers (or whole floats, with gaps) of exactly 8 digits: 19790101."""
    numbers = values.dropna().to_numpy(dtype=float)
    return bool(
        len(numbers)
        and np.all(numbers == np.floor(numbers))
        and np.all((numbers >= 10_000_101) & (numbers <= 99_991_231))
    )


def _integers_as_text(values: pd.Series) -> pd.Series:
    """19790101.0 -> "19790101"; missing stays missing."""
    numbers = pd.to_numeric(values, errors="coerce")
    whole = numbers.where(numbers.isna() | (numbers == np.floor(numbers)))
    return whole.astype("Int64").astype("string")


def _ordered(frame: pd.DataFrame, path: Path, offsets: bool = False) -> pd.DataFrame:
    """Refuse duplicate dates; sort (with a warning) when the file is not in ascending order."""
    duplicated = frame.index.duplicated()
    if duplicated.any():
        row = int(duplicated.argmax())
        when = frame.index[row].strftime(date_format(frame.index))
        hint = (
            " (read as local times; where a daylight-saving change repeats an hour, "
            "set dataset.timezone: utc)"
            if offsets
            else ""
        )
        raise DataError(f"{path}: duplicate date {when} (row {row + 1}); each date must appear once{hint}")
    if not frame.index.is_monotonic_increasing:
        warnings.warn(f"{path}: dates are not in ascending order; sorted them", UserWarning, stacklevel=3)
        frame = frame.sort_index()
    return frame


def _names(columns: pd.Index) -> str:
    return ", ".join(repr(str(c)) if str(c).strip() == "" else shown(c) for c in columns)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
