"""Download prices from Yahoo Finance with yfinance, cached as `data_dir/TICKER.csv` + `TICKER.json`.

A download is cached: while `TICKER.csv` exists it is returned without touching the
network, unless `force`. Offline, yfinance neither raises nor stays quiet (it prints
"Failed download" lines and returns an empty frame), so the default fetch silences it
and an empty result becomes one `DataError` line; nothing is written in that case.
Prices are split- and dividend-adjusted (`auto_adjust=True`). `end` is inclusive.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import logging
import re
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from seqbench.data.csvfile import date_strings
from seqbench.errors import DataError
from seqbench.io import atomic_path, atomic_write_json

TICKER_PATTERN = re.compile(r"[A-Za-z0-9^][A-Za-z0-9.=^-]{0,19}")
INTERVALS = ("1m", "2m", "5m", "15m", "30m", "60m", "90m", "1h", "1d", "5d", "1wk", "1mo", "3mo")
FIELD_ORDER = ("Open", "High", "Low", "Close", "Adj Close", "Volume")

Fetch = Callable[[str, str | None, str | None, str], pd.DataFrame]


def validate_ticker(ticker: str) -> str:
    """The ticker in upper case, or a DataError: only letters, digits and `. = ^ -`, no `..`."""
    if not isinstance(ticker, str) or not TICKER_PATTERN.fullmatch(ticker) or ".." in ticker:
        raise DataError(
            f"{ticker!r} is not a valid ticker: use letters, digits and . = ^ - "
            "(at most 20 characters, e.g. AAPL, ^GSPC, BRK-B, EURUSD=X)"
        )
    return ticker.upper()


def cache_path(ticker: str, data_dir: str | Path = Path("data")) -> Path:
    """Where the download of `ticker` is (or would be) cached."""
    return Path(data_dir) / f"{validate_ticker(ticker)}.csv"


def download(
    ticker: str,
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
    interval: str = "1d",
    data_dir: str | Path = Path("data"),
    force: bool = False,
    fetch: Fetch | None = None,
) -> Path:
    """Download `ticker` into `data_dir/TICKER.csv` (and its `.json` sidecar); return the CSV path.

    `fetch(ticker, start, end, interval) -> DataFrame` replaces yfinance (tests inject one).
    """
    symbol = validate_ticker(ticker)
    start_s, end_s = _iso_date(start, "start"), _iso_date(end, "end")
    if start_s and end_s and start_s > end_s:
        raise DataError(f"download {symbol}: start {start_s} is after end {end_s}")
    if interval not in INTERVALS:
        choices = ", ".join(INTERVALS)
        raise DataError(f"download {symbol}: unknown interval '{interval}'; choose one of: {choices}")
    csv_path = cache_path(symbol, data_dir)
    if csv_path.exists() and not force:
        return csv_path
    table = tidy(_call_fetch(fetch or yfinance_fetch, symbol, start_s, end_s, interval), symbol)
    sidecar = {"source": "yahoo", "ticker": symbol, "start": start_s, "end": end_s, "interval": interval}
    _write(csv_path, table, sidecar)
    return csv_path


def yfinance_fetch(ticker: str, start: str | None, end: str | None, interval: str) -> pd.DataFrame:
    """`yfinance.download` with its printing, logging and warnings silenced; `end` made inclusive."""
    import yfinance

    kwargs: dict[str, Any] = {"start": start, "interval": interval, "auto_adjust": True, "progress": False}
    kwargs["end"] = (dt.date.fromisoformat(end) + dt.timedelta(days=1)).isoformat() if end else None
    if start is None:
        kwargs["period"] = "max"  # yfinance's own default is the last month only
    logger = logging.getLogger("yfinance")
    was_disabled, sink = logger.disabled, io.StringIO()
    try:
        logger.disabled = True
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return yfinance.download(ticker, threads=False, **kwargs)
    finally:
        logger.disabled = was_disabled


def tidy(raw: Any, symbol: str) -> pd.DataFrame:
    """A downloaded frame as a table: `Date` first, then Open, High, Low, Close, ..., one row per date."""
    if not isinstance(raw, pd.DataFrame) or raw.empty:
        raise unreachable(symbol)
    frame = raw.copy()
    if isinstance(frame.columns, pd.MultiIndex):
        frame.columns = _field_names(frame.columns, symbol)
    frame = frame.dropna(how="all")
    if frame.empty:
        raise unreachable(symbol)
    if frame.columns.duplicated().any():
        raise DataError(f"download {symbol}: Yahoo Finance returned duplicate columns {list(frame.columns)}")
    index = pd.DatetimeIndex(frame.index)
    frame.index = index.tz_localize(None) if index.tz is not None else index
    frame = frame.sort_index()
    frame = frame[~frame.index.duplicated(keep="last")]
    frame = frame[_ordered_fields(frame.columns)]
    frame.insert(0, "Date", date_strings(pd.DatetimeIndex(frame.index)))
    return frame.reset_index(drop=True)


def unreachable(symbol: str) -> DataError:
    return DataError(
        f"could not download '{symbol}' from Yahoo Finance (network unreachable or unknown ticker); "
        "use a CSV (dataset.source: csv) or a built-in dataset (seqbench datasets)"
    )


def _call_fetch(fetch: Fetch, symbol: str, start: str | None, end: str | None, interval: str) -> Any:
    try:
        return fetch(symbol, start, end, interval)
    except DataError:
        raise
    except Exception as exc:  # yfinance raises many kinds; all mean "could not download"
        raise unreachable(symbol) from exc


def _field_names(columns: pd.MultiIndex, symbol: str) -> pd.Index:
    """(field, ticker) or (ticker, field) column pairs -> the field names."""
    levels = [[str(v) for v in columns.get_level_values(i)] for i in range(columns.nlevels)]
    fields = [level for level in levels if {v.upper() for v in level} != {symbol}]
    return pd.Index(fields[0] if fields else levels[0])


def _ordered_fields(columns: pd.Index) -> list[str]:
    known = [c for c in FIELD_ORDER if c in columns]
    return known + [c for c in columns if c not in known]


def _iso_date(value: str | dt.date | None, name: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise DataError(f"--{name} '{value}' is not a date; use YYYY-MM-DD") from None


def _write(csv_path: Path, table: pd.DataFrame, sidecar: dict[str, Any]) -> None:
    """Write the CSV and its sidecar atomically; the sidecar lands first, the CSV (the cache key) last."""
    data = table.to_csv(index=False).encode("utf-8")
    dates = table["Date"]
    sidecar |= {
        "file": csv_path.name,
        "rows": len(table),
        "columns": [c for c in table.columns if c != "Date"],
        "first_date": dates.iloc[0],
        "last_date": dates.iloc[-1],
        "sha256": hashlib.sha256(data).hexdigest(),
        "fetched_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "adjusted": True,
        "yfinance": _yfinance_version(),
    }
    with atomic_path(csv_path) as tmp:
        tmp.write_bytes(data)
        atomic_write_json(csv_path.with_suffix(".json"), sidecar)


def _yfinance_version() -> str | None:
    try:
        return metadata.version("yfinance")
    except metadata.PackageNotFoundError:
        return None
