"""Load the frame a spec's `dataset` section asks for, from any source, checked and numeric.

`load_frame` dispatches on `dataset.source` (yahoo, csv, builtin, synthetic), applies the
`start`/`end` filter, resolves the target and feature columns, converts them to float64
and applies the missing-value policy (`dataset.fill`). The result holds only the columns
a run uses: the features, then any target that is not also a feature.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from seqbench.data import yahoo
from seqbench.data.builtin import BUILTINS, BuiltinDataset
from seqbench.data.csvfile import date_format, read_csv
from seqbench.data.synthetic import DEFAULT_TARGET, GENERATORS
from seqbench.errors import DataError, brief, shown
from seqbench.io import loads_json

if TYPE_CHECKING:
    from seqbench.spec import DatasetSpec

MIN_ROWS = 10
MAX_ABS_VALUE = 1e150  # (2 * 1e150) ** 2 summed over many rows stays finite in float64
_DECIMAL_COMMA = re.compile(r"[-+]?\d+,\d+")


@dataclass
class LoadedFrame:
    frame: pd.DataFrame  # DatetimeIndex "date", ascending, unique; features then extra targets; float64
    features: list[str]
    targets: list[str]
    info: dict[str, Any] = field(default_factory=dict)  # source, label, rows, dates, columns, sha256, ...
    dropped_at_end: DroppedTail | None = None  # rows after the last one kept, dropped for gaps


@dataclass(frozen=True)
class DroppedTail:
    """The rows at the end of the data that `dataset.fill: drop` removed: after the last full row."""

    rows: int
    last_date: str  # the data's own last row
    columns: list[str]  # the columns with a gap in those rows


@dataclass
class _Raw:
    """What a source hands back: every column it has, its own default target, what it knows."""

    frame: pd.DataFrame
    default_target: str | None
    info: dict[str, Any]


def load_frame(
    ds: DatasetSpec, data_dir: Path = Path("data"), fetch: yahoo.Fetch | None = None
) -> LoadedFrame:
    """The dataset `ds` describes, filtered, checked and numeric (see the module docstring)."""
    raw = SOURCES[ds.source](ds, Path(data_dir), fetch)
    label = raw.info["label"]
    targets = _unique(ds.targets or [_default_target(raw, label)])
    features = _unique(ds.features or targets)
    _require(raw.frame, targets, "dataset.target", label)
    _require(raw.frame, features, "dataset.features", label)
    frame = _between(raw.frame, ds, label)
    numeric = _numeric(frame[_unique(features + targets)], label)
    frame, missing = _fill(numeric, ds.fill, label)
    if len(frame) < MIN_ROWS:
        raise DataError(f"{label}: only {len(frame)} rows left to use; need at least {MIN_ROWS}")
    info = {**raw.info, **_describe(frame), "fill": ds.fill, "rows_with_missing": missing}
    return LoadedFrame(frame, features, targets, info, _dropped_at_end(numeric, frame))


def list_datasets(data_dir: Path = Path("data")) -> list[dict[str, Any]]:
    """Every built-in dataset, then every cached download in `data_dir` that has a JSON sidecar."""
    entries = [_builtin_entry(d) for d in BUILTINS.values()]
    for csv_path in sorted(Path(data_dir).glob("*.csv")):
        entry = _cached_entry(csv_path)
        if entry is not None:
            entries.append(entry)
    return entries


def download(
    name: str,
    data_dir: Path = Path("data"),
    start: str = "2010-01-01",
    end: str | None = None,
    interval: str = "1d",
    force: bool = False,
) -> Path:
    """`seqbench download NAME`: an ETT file, a text corpus, or else a Yahoo Finance ticker (from
    `start` to `end`, bars of `interval`; cached unless `force`) into `data_dir`; returns its path."""
    from seqbench.data.ett import download_ett, is_ett, is_pinned
    from seqbench.data.text import download_corpus, is_corpus

    if is_ett(name):
        path = download_ett(name, data_dir)
        if not is_pinned(name):
            warnings.warn(
                f"{path.name} has no pinned sha256 in seqbench; it was kept unchecked", stacklevel=2
            )
        return path
    if is_corpus(name):
        return download_corpus(name.lower(), data_dir)
    return yahoo.download(name, start=start, end=end, interval=interval, data_dir=data_dir, force=force)


# --- sources ---------------------------------------------------------------------------------


def _load_yahoo(ds: DatasetSpec, data_dir: Path, fetch: yahoo.Fetch | None) -> _Raw:
    path = yahoo.cache_path(str(ds.ticker), data_dir)
    cached = path.exists()
    if not cached:
        path = yahoo.download(str(ds.ticker), ds.start, ds.end, ds.interval, data_dir, fetch=fetch)
    frame = read_csv(path)
    if cached:
        _warn_if_cache_is_short(frame, ds, path)
    sidecar = _read_sidecar(path.with_suffix(".json")) or {}
    info = {
        "source": "yahoo",
        "label": path.stem,
        "ticker": str(ds.ticker),
        "path": str(path),
        "adjusted": sidecar.get("adjusted"),
        "interval": sidecar.get("interval", ds.interval),
    }
    return _Raw(frame, "Close", info)


def _warn_if_cache_is_short(frame: pd.DataFrame, ds: DatasetSpec, path: Path) -> None:
    """A cached download that starts well after `dataset.start` (or ends before `end`) is stale."""
    first, last, slack = frame.index[0], frame.index[-1], pd.Timedelta(days=7)
    late = ds.start is not None and first - pd.Timestamp(ds.start) > slack
    early = ds.end is not None and pd.Timestamp(ds.end) - last > slack
    if late or early:
        warnings.warn(
            f"{path} covers only {first:%Y-%m-%d} to {last:%Y-%m-%d}; to fetch the range the spec asks for, "
            f"run: seqbench download {path.stem} --start {ds.start or ''} --end {ds.end or ''} --force",
            UserWarning,
            stacklevel=3,
        )


def _load_csv(ds: DatasetSpec, data_dir: Path, fetch: yahoo.Fetch | None) -> _Raw:
    frame = read_csv(
        str(ds.path),
        ds.date_column,
        date_format=ds.date_format,
        sep=ds.sep,
        decimal=ds.decimal,
        timezone=ds.timezone,
    )
    info = {"source": "csv", "label": str(ds.path), "path": str(ds.path), "adjusted": None}  # unknown
    return _Raw(frame, _csv_default_target(frame, str(ds.path)), info)


def _load_builtin(ds: DatasetSpec, data_dir: Path, fetch: yahoo.Fetch | None) -> _Raw:
    dataset = BUILTINS.get(str(ds.name)) or _unknown(str(ds.name), "built-in dataset", BUILTINS)
    info = {
        "source": "builtin",
        "label": dataset.name,
        "name": dataset.name,
        "description": dataset.description,
        "adjusted": dataset.adjusted,
    }
    return _Raw(dataset.load(), dataset.default_target, info)


def _load_synthetic(ds: DatasetSpec, data_dir: Path, fetch: yahoo.Fetch | None) -> _Raw:
    generate = GENERATORS.get(str(ds.name)) or _unknown(str(ds.name), "synthetic generator", GENERATORS)
    info = {
        "source": "synthetic",
        "label": str(ds.name),
        "name": str(ds.name),
        "length": ds.length,
        "data_seed": ds.data_seed,
        "freq": ds.freq,
        "adjusted": None,  # not prices
    }
    return _Raw(generate(ds.length, ds.data_seed, ds.freq), DEFAULT_TARGET, info)


SOURCES: dict[str, Callable[[DatasetSpec, Path, yahoo.Fetch | None], _Raw]] = {
    "yahoo": _load_yahoo,
    "csv": _load_csv,
    "builtin": _load_builtin,
    "synthetic": _load_synthetic,
}


def _unknown(name: str, kind: str, known: dict[str, Any]) -> Any:
    hint = _did_you_mean(name, list(known))
    raise DataError(f"unknown {kind} '{name}'; {hint}choose one of: {', '.join(known)}")


def _did_you_mean(name: str, names: list[str]) -> str:
    close = [n for n in names if n.lower() == name.lower()] or difflib.get_close_matches(name, names, n=1)
    return f"did you mean '{shown(close[0])}'? " if close else ""


# --- columns, dates and values ---------------------------------------------------------------


def _default_target(raw: _Raw, label: str) -> str:
    if raw.default_target is None:
        numeric = ", ".join(str(c) for c in raw.frame.select_dtypes("number").columns)
        raise DataError(f"{label}: which column should be predicted ({numeric})? set dataset.target")
    return raw.default_target


def _csv_default_target(frame: pd.DataFrame, label: str) -> str | None:
    """`Close` (any case) if present, else the only numeric column; None when it is ambiguous."""
    for column in frame.columns:
        if str(column).strip().lower() == "close":
            return str(column)
    numeric = list(frame.select_dtypes("number").columns)
    if not numeric:
        raise DataError(f"{label}: no numeric column to predict; set dataset.target to one of its columns")
    return str(numeric[0]) if len(numeric) == 1 else None


def _require(frame: pd.DataFrame, columns: list[str], key: str, label: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        names = [str(c) for c in frame.columns]
        hint = _did_you_mean(missing[0], names)
        raise DataError(
            f"{key}: column '{shown(missing[0])}' not found in {label}; {hint}available columns: "
            f"{shown(', '.join(names), limit=400)}"
        )


def _between(frame: pd.DataFrame, ds: DatasetSpec, label: str) -> pd.DataFrame:
    """Rows from `ds.start` to `ds.end`, both inclusive (the whole end day)."""
    if ds.start is None and ds.end is None:
        return frame
    keep = np.ones(len(frame), dtype=bool)
    if ds.start is not None:
        keep &= frame.index >= pd.Timestamp(ds.start)
    if ds.end is not None:
        keep &= frame.index < pd.Timestamp(ds.end) + pd.Timedelta(days=1)
    if not keep.any():
        covers = _describe(frame)
        raise DataError(
            f"{label}: no rows between dataset.start {ds.start or '...'} and dataset.end {ds.end or '...'}; "
            f"the data covers {covers['first_date']} to {covers['last_date']}"
        )
    return frame[keep]


def _numeric(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """Every column as float64; a value that is not a number is a DataError naming column and date."""
    out = {}
    for column in frame.columns:
        values = frame[column]
        converted = values if _is_number(values) else pd.to_numeric(values, errors="coerce")
        bad = converted.isna() & values.notna()
        if bad.any():
            when = _when(frame.index, int(np.argmax(bad.to_numpy())))
            value = values[bad].iloc[0]
            hint = (
                "if the file writes decimals with a comma, set dataset.decimal: ','"
                if isinstance(value, str) and _DECIMAL_COMMA.fullmatch(value.strip())
                else "choose numeric columns for dataset.features and dataset.target"
            )
            raise DataError(
                f"{label}: column '{shown(column)}' is not numeric ({brief(value)} on {when}); {hint}"
            )
        out[column] = converted.astype(np.float64)
        numbers = out[column].to_numpy()
        huge = np.isfinite(numbers) & (np.abs(numbers) > MAX_ABS_VALUE)  # inf is missing (dataset.fill)
        if huge.any():
            row = int(np.argmax(huge))
            raise DataError(
                f"{label}: column '{shown(column)}' holds {numbers[row]:.3g} on {_when(frame.index, row)}; "
                f"values beyond {MAX_ABS_VALUE:.0e} overflow squared errors in float64: rescale the column "
                "(e.g. divide it by a power of 10) or remove the row"
            )
    return pd.DataFrame(out, index=frame.index)


def _is_number(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)


def _fill(frame: pd.DataFrame, policy: str, label: str) -> tuple[pd.DataFrame, int]:
    """Apply `dataset.fill` to missing and infinite values; return the frame and how many rows had any."""
    frame = frame.replace([np.inf, -np.inf], np.nan)
    bad = frame.isna().any(axis=1).to_numpy()
    if not bad.any():
        return frame, 0
    if policy == "none":
        row = int(np.argmax(bad))
        column = frame.columns[frame.iloc[row].isna().to_numpy()][0]
        raise DataError(
            f"{label}: {_rows_have(int(bad.sum()))} missing or infinite values (first: column '{column}' "
            f"on {_when(frame.index, row)}); set dataset.fill: ffill | drop"
        )
    return FILLS[policy](frame), int(bad.sum())


def _dropped_at_end(before: pd.DataFrame, after: pd.DataFrame) -> DroppedTail | None:
    """The rows of `before` after the last row `_fill` kept, and their columns with gaps; None if none."""
    tail = before[before.index > after.index[-1]]
    if tail.empty:
        return None
    gaps = ~np.isfinite(tail.to_numpy(dtype=np.float64)).all(axis=0)  # (C,)
    return DroppedTail(len(tail), _when(before.index, -1), [str(c) for c in tail.columns[gaps]])


FILLS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "ffill": lambda frame: frame.ffill().dropna(),  # leading gaps have nothing to carry forward
    "drop": lambda frame: frame.dropna(),
}


def _rows_have(n: int) -> str:
    return "1 row has" if n == 1 else f"{n} rows have"


def _describe(frame: pd.DataFrame) -> dict[str, Any]:
    index = pd.DatetimeIndex(frame.index)
    fmt = date_format(index)
    return {
        "rows": len(frame),
        "first_date": index[0].strftime(fmt) if len(index) else None,
        "last_date": index[-1].strftime(fmt) if len(index) else None,
        "columns": [str(c) for c in frame.columns],
        "sha256": hashlib.sha256(frame.to_csv().encode("utf-8")).hexdigest(),
    }


def _when(index: pd.Index, row: int) -> str:
    return pd.DatetimeIndex(index)[row].strftime(date_format(pd.DatetimeIndex(index)))


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


# --- the dataset list ------------------------------------------------------------------------


def _builtin_entry(dataset: BuiltinDataset) -> dict[str, Any]:
    described = _describe(dataset.load())
    return {
        "name": dataset.name,
        "source": "builtin",
        **{k: described[k] for k in ("rows", "columns", "first_date", "last_date")},
        "target": dataset.default_target,
        "description": dataset.description,
    }


def _cached_entry(csv_path: Path) -> dict[str, Any] | None:
    sidecar = _read_sidecar(csv_path.with_suffix(".json"))
    if sidecar is None:
        return None
    fetched = str(sidecar.get("fetched_at") or "")[:10]
    columns = sidecar.get("columns")
    rows = sidecar.get("rows")
    return {  # a sidecar is untrusted input: every field is checked for its type
        "name": csv_path.stem,
        "source": shown(sidecar.get("source") or "yahoo"),
        "rows": rows if isinstance(rows, int) and not isinstance(rows, bool) else None,
        "columns": [shown(c) for c in columns] if isinstance(columns, list) else [],
        "first_date": shown(sidecar.get("first_date") or ""),
        "last_date": shown(sidecar.get("last_date") or ""),
        "target": "Close",
        "description": f"Yahoo Finance download ({sidecar.get('interval', '1d')}), fetched {fetched or '?'}",
    }


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    """A download's JSON sidecar, or None when there is none; an unreadable one warns and is skipped."""
    if not path.exists():
        return None
    try:
        sidecar = loads_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        warnings.warn(f"{path}: unreadable sidecar ({exc}); skipped", UserWarning, stacklevel=2)
        return None
    return sidecar if isinstance(sidecar, dict) else None
