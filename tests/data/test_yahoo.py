"""Yahoo Finance downloads: validation, caching, the offline failure, the files written. No network."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import sys
import warnings
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest

from seqbench.data import yahoo
from seqbench.data.yahoo import download, tidy, validate_ticker
from seqbench.errors import DataError

OFFLINE_MESSAGE = (
    "could not download 'AAPL' from Yahoo Finance (network unreachable or unknown ticker); "
    "use a CSV (dataset.source: csv) or a built-in dataset (seqbench datasets)"
)


def prices(ticker: str = "AAPL", days: int = 5, scale: float = 1.0) -> pd.DataFrame:
    """What yfinance 1.x returns for one ticker: (Price, Ticker) MultiIndex columns, a `Date` index."""
    index = pd.bdate_range("2020-01-02", periods=days, name="Date")
    close = [scale * (100.0 + i) for i in range(days)]
    fields = {
        "Close": close,
        "High": [c + 1 for c in close],
        "Low": [c - 1 for c in close],
        "Open": [c - 0.5 for c in close],
        "Volume": [1_000_000 + i for i in range(days)],
    }
    columns = pd.MultiIndex.from_tuples([(f, ticker) for f in fields], names=["Price", "Ticker"])
    return pd.DataFrame(list(zip(*fields.values(), strict=True)), index=index, columns=columns)


def offline_frame(ticker: str = "AAPL") -> pd.DataFrame:
    """What yfinance 1.7 returns offline: no rows, (field, ticker) columns."""
    fields = ["Adj Close", "Close", "High", "Low", "Open", "Volume"]
    columns = pd.MultiIndex.from_tuples([(f, ticker) for f in fields], names=["Price", "Ticker"])
    return pd.DataFrame(index=pd.DatetimeIndex([]), columns=columns, dtype=float)


class Recorder:
    """A fetch that returns `frame` and records its calls."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame, self.calls = frame, []

    def __call__(self, ticker, start, end, interval):
        self.calls.append((ticker, start, end, interval))
        return self.frame


def never(*args):
    raise AssertionError("fetch must not be called")


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def test_download_writes_csv_and_sidecar(tmp_path):
    fetch = Recorder(prices())
    path = download("AAPL", "2020-01-01", "2020-01-10", data_dir=tmp_path, fetch=fetch)
    assert path == tmp_path / "AAPL.csv"
    assert files(tmp_path) == ["AAPL.csv", "AAPL.json"]
    assert fetch.calls == [("AAPL", "2020-01-01", "2020-01-10", "1d")]
    lines = path.read_text().splitlines()
    assert lines[0] == "Date,Open,High,Low,Close,Volume"
    assert lines[1] == "2020-01-02,99.5,101.0,99.0,100.0,1000000"
    assert len(lines) == 6
    meta = json.loads((tmp_path / "AAPL.json").read_text())
    assert meta["source"] == "yahoo"
    assert meta["ticker"] == "AAPL"
    assert (meta["start"], meta["end"], meta["interval"]) == ("2020-01-01", "2020-01-10", "1d")
    assert meta["rows"] == 5
    assert meta["columns"] == ["Open", "High", "Low", "Close", "Volume"]
    assert (meta["first_date"], meta["last_date"]) == ("2020-01-02", "2020-01-08")
    assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["adjusted"] is True
    assert meta["yfinance"] == metadata.version("yfinance")
    fetched = dt.datetime.fromisoformat(meta["fetched_at"])
    assert fetched.utcoffset() == dt.timedelta(0)
    assert abs(dt.datetime.now(dt.timezone.utc) - fetched) < dt.timedelta(minutes=5)


def test_cached_download_does_not_fetch_again(tmp_path):
    path = download("AAPL", data_dir=tmp_path, fetch=Recorder(prices()))
    before = path.read_bytes()
    assert download("AAPL", data_dir=tmp_path, fetch=never) == path
    assert download("aapl", data_dir=tmp_path, fetch=never) == path  # tickers are upper-cased
    assert path.read_bytes() == before


def test_force_fetches_again_and_replaces_the_files(tmp_path):
    download("AAPL", data_dir=tmp_path, fetch=Recorder(prices()))
    fetch = Recorder(prices(days=7, scale=2.0))
    path = download("AAPL", data_dir=tmp_path, force=True, fetch=fetch)
    assert len(fetch.calls) == 1
    assert len(path.read_text().splitlines()) == 8
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["rows"] == 7
    assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert files(tmp_path) == ["AAPL.csv", "AAPL.json"]


@pytest.mark.parametrize(
    "ticker",
    ["../etc", "a/b", "/abs", "", "..", "A..B", "a\\b", "AAPL\n", "-rf", ".hidden", "X" * 21, "AA PL", "C:x"],
)
def test_bad_tickers_are_refused_and_nothing_is_written(tmp_path, ticker):
    data_dir = tmp_path / "data"
    with pytest.raises(DataError, match="not a valid ticker"):
        download(ticker, data_dir=data_dir, fetch=never)
    assert files(tmp_path) == []


@pytest.mark.parametrize("ticker", ["AAPL", "^GSPC", "BRK-B", "EURUSD=X", "BTC-USD", "VOD.L", "msft"])
def test_real_ticker_shapes_are_accepted(ticker):
    assert validate_ticker(ticker) == ticker.upper()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"interval": "7d"}, "unknown interval '7d'"),
        ({"start": "2021-01-01", "end": "2020-01-01"}, "start 2021-01-01 is after end 2020-01-01"),
        ({"start": "2020-13-01"}, "--start '2020-13-01' is not a date"),
    ],
)
def test_bad_range_or_interval_is_refused_before_fetching(tmp_path, kwargs, match):
    with pytest.raises(DataError, match=match):
        download("AAPL", data_dir=tmp_path, fetch=never, **kwargs)
    assert files(tmp_path) == []


def test_empty_result_is_one_line_error_and_no_file(tmp_path):
    with pytest.raises(DataError) as info:
        download("AAPL", data_dir=tmp_path, fetch=Recorder(offline_frame()))
    assert str(info.value) == OFFLINE_MESSAGE
    assert files(tmp_path) == []


@pytest.mark.parametrize("result", [None, pd.DataFrame(), "not a frame"])
def test_nothing_usable_is_an_error(tmp_path, result):
    with pytest.raises(DataError, match="could not download 'AAPL'"):
        download("AAPL", data_dir=tmp_path, fetch=lambda *a: result)
    assert files(tmp_path) == []


def test_rows_that_are_all_missing_count_as_nothing(tmp_path):
    frame = prices() * float("nan")
    with pytest.raises(DataError, match="could not download"):
        download("AAPL", data_dir=tmp_path, fetch=Recorder(frame))
    assert files(tmp_path) == []


def test_an_exception_from_fetch_becomes_the_offline_error(tmp_path):
    def broken(*args):
        raise ConnectionError("Could not resolve host: query2.finance.yahoo.com")

    with pytest.raises(DataError) as info:
        download("AAPL", data_dir=tmp_path, fetch=broken)
    assert str(info.value) == OFFLINE_MESSAGE
    assert isinstance(info.value.__cause__, ConnectionError)  # kept for --debug
    assert files(tmp_path) == []


def test_a_failed_sidecar_write_leaves_no_file(tmp_path, monkeypatch):
    def disk_full(path, obj):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(yahoo, "atomic_write_json", disk_full)
    with pytest.raises(OSError, match="No space"):
        download("AAPL", data_dir=tmp_path, fetch=Recorder(prices()))
    assert files(tmp_path) == []


def test_tidy_handles_ticker_first_columns_time_zones_and_duplicates():
    frame = prices().swaplevel(axis=1)  # (Ticker, Price), as with group_by="ticker"
    hours = pd.date_range("2024-03-01 09:30", periods=5, freq="h", tz="America/New_York")
    frame.index = hours.insert(5, hours[-1])[:5]
    frame = pd.concat([frame, frame.iloc[[-1]] * 2])  # yfinance sometimes repeats the last row
    table = tidy(frame, "AAPL")
    assert list(table.columns) == ["Date", "Open", "High", "Low", "Close", "Volume"]
    assert table["Date"].tolist()[0] == "2024-03-01 09:30:00"  # exchange wall time, no offset
    assert len(table) == 5
    assert table["Close"].iloc[-1] == 2 * 104.0  # the later duplicate wins


# --- the default fetch: yfinance itself, monkeypatched -------------------------------------------


@pytest.fixture
def fake_yfinance(monkeypatch):
    """Replace `yfinance.download`; the test sets `.result` and reads `.kwargs`."""
    import yfinance

    class Fake:
        def __init__(self) -> None:
            self.result, self.kwargs = offline_frame(), {}

        def __call__(self, tickers, **kwargs):
            self.kwargs = {"tickers": tickers, **kwargs}
            sys.stdout.write("[*********************100%***********************]  1 of 1 completed\n")
            sys.stderr.write("\n1 Failed download:\n")
            sys.stderr.write("['AAPL']: DNSError('Could not resolve host: query2.finance.yahoo.com')\n")
            logging.getLogger("yfinance").error("Failed to get ticker 'AAPL'")
            warnings.warn("The inplace keyword is deprecated", FutureWarning, stacklevel=1)
            return self.result

    fake = Fake()
    monkeypatch.setattr(yfinance, "download", fake)
    return fake


def test_default_fetch_offline_is_quiet_and_writes_nothing(tmp_path, fake_yfinance, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataError) as info:
            download("AAPL", data_dir=tmp_path)
    assert str(info.value) == OFFLINE_MESSAGE
    out, err = capsys.readouterr()
    assert (out, err) == ("", "")
    assert [r for r in caplog.records if r.name.startswith("yfinance")] == []
    assert caught == []
    assert logging.getLogger("yfinance").disabled is False  # restored after the call
    assert files(tmp_path) == []


def test_default_fetch_success_writes_the_files(tmp_path, fake_yfinance, capsys):
    fake_yfinance.result = prices(days=3)
    path = download("AAPL", "2020-01-01", "2020-01-06", data_dir=tmp_path)
    assert capsys.readouterr() == ("", "")
    kwargs = fake_yfinance.kwargs
    assert kwargs["tickers"] == "AAPL"
    assert (kwargs["start"], kwargs["end"]) == ("2020-01-01", "2020-01-07")  # yfinance's end is exclusive
    assert (kwargs["interval"], kwargs["auto_adjust"], kwargs["progress"]) == ("1d", True, False)
    assert "period" not in kwargs
    table = pd.read_csv(path)
    assert list(table.columns) == ["Date", "Open", "High", "Low", "Close", "Volume"]
    assert table["Date"].tolist() == ["2020-01-02", "2020-01-03", "2020-01-06"]
    assert table["Close"].tolist() == [100.0, 101.0, 102.0]
    meta = json.loads(path.with_suffix(".json").read_text())
    assert (meta["rows"], meta["last_date"]) == (3, "2020-01-06")
    assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_default_fetch_without_start_asks_for_the_whole_history(tmp_path, fake_yfinance):
    fake_yfinance.result = prices()
    download("AAPL", data_dir=tmp_path)
    assert fake_yfinance.kwargs["period"] == "max"
    assert fake_yfinance.kwargs["end"] is None
