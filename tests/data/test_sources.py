"""load_frame and list_datasets over every source: columns, filters, checks and missing values."""

from __future__ import annotations

import hashlib
import json
import typing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqbench.data.builtin import BUILTINS
from seqbench.data.sources import SOURCES, list_datasets, load_frame
from seqbench.data.yahoo import download
from seqbench.errors import DataError
from seqbench.spec import DatasetSpec


def spec(**kwargs) -> DatasetSpec:
    return DatasetSpec(**kwargs)


def load_error(ds: DatasetSpec, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        load_frame(ds, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def prices(ticker, start, end, interval) -> pd.DataFrame:
    """A fetch standing in for Yahoo: 30 business days of (field, ticker) columns from 2020-01-01."""
    index = pd.bdate_range("2020-01-01", periods=30, name="Date")
    close = np.linspace(100, 129, 30)
    columns = pd.MultiIndex.from_product([["Close", "Open", "Volume"], [ticker]], names=["Price", "Ticker"])
    return pd.DataFrame(np.column_stack([close, close - 1, np.full(30, 1e6)]), index=index, columns=columns)


def never(*args):
    raise AssertionError("fetch must not be called")


def write_csv(tmp_path: Path, frame: pd.DataFrame, name: str = "series.csv") -> str:
    path = tmp_path / name
    frame.to_csv(path, index_label="Date")
    return str(path)


def daily(n: int = 15, **columns) -> pd.DataFrame:
    return pd.DataFrame(columns, index=pd.date_range("2021-03-01", periods=n, freq="D"))


def test_dispatch_covers_every_source_in_the_spec():
    """Every series source; `text` is an LM's bytes, read by seqbench.tasks.lm, never a frame."""
    assert set(SOURCES) == set(typing.get_args(DatasetSpec.model_fields["source"].annotation)) - {"text"}


def test_builtin_defaults_to_its_own_target():
    loaded = load_frame(spec(source="builtin", name="sp500"))
    assert loaded.features == loaded.targets == ["Close"]
    assert list(loaded.frame.columns) == ["Close"]
    assert loaded.frame.index.name == "date"
    assert loaded.frame.index.is_monotonic_increasing and loaded.frame.index.is_unique
    assert loaded.frame["Close"].dtype == np.float64
    info = loaded.info
    assert (info["source"], info["label"], info["rows"]) == ("builtin", "sp500", 5031)
    assert (info["first_date"], info["last_date"]) == ("1999-01-04", "2018-12-31")
    assert info["columns"] == ["Close"]
    assert info["sha256"] == hashlib.sha256(loaded.frame.to_csv().encode()).hexdigest()


def test_hash_is_stable_and_tracks_the_data():
    first = load_frame(spec(source="synthetic", name="sine", data_seed=1)).info["sha256"]
    again = load_frame(spec(source="synthetic", name="sine", data_seed=1)).info["sha256"]
    other = load_frame(spec(source="synthetic", name="sine", data_seed=2)).info["sha256"]
    assert first == again != other


def test_features_first_then_extra_targets_all_float():
    ds = spec(source="builtin", name="sp500", features=["Volume", "Open"], target=["Close", "Open"])
    loaded = load_frame(ds)
    assert list(loaded.frame.columns) == ["Volume", "Open", "Close"]
    assert (loaded.features, loaded.targets) == (["Volume", "Open"], ["Close", "Open"])
    assert (loaded.frame.dtypes == np.float64).all()  # Volume is int64 in the package


def test_weather_target_and_features():
    ds = spec(source="builtin", name="seattle-weather", features=["temp_max", "wind"])
    loaded = load_frame(ds)
    assert loaded.targets == ["temp_max"]
    assert list(loaded.frame.columns) == ["temp_max", "wind"]


def test_synthetic_uses_length_and_data_seed():
    loaded = load_frame(spec(source="synthetic", name="ar", length=300, data_seed=4))
    assert loaded.targets == ["value"]
    assert len(loaded.frame) == 300
    assert (loaded.info["length"], loaded.info["data_seed"]) == (300, 4)


def test_start_and_end_are_inclusive_filters():
    loaded = load_frame(spec(source="builtin", name="sp500", start="2010-01-01", end="2010-12-31"))
    assert (loaded.info["first_date"], loaded.info["last_date"]) == ("2010-01-04", "2010-12-31")
    assert len(loaded.frame) == 252


def test_end_keeps_the_whole_last_day_of_hourly_data():
    loaded = load_frame(spec(source="builtin", name="seattle-temps", start="2010-06-01", end="2010-06-02"))
    assert len(loaded.frame) == 48
    assert loaded.info["last_date"] == "2010-06-02 23:00:00"


def test_a_filter_outside_the_data_says_what_the_data_covers():
    message = load_error(spec(source="builtin", name="seattle-weather", start="2020-01-01"))
    assert message == (
        "seattle-weather: no rows between dataset.start 2020-01-01 and dataset.end ...; "
        "the data covers 2012-01-01 to 2015-12-31"
    )


def test_too_few_rows_left():
    ds = spec(source="synthetic", name="sine", start="2000-01-01", end="2000-01-05")
    assert load_error(ds) == "sine: only 5 rows left to use; need at least 10"


def test_missing_column_lists_the_available_ones():
    message = load_error(spec(source="builtin", name="sp500", target="close"))
    assert message.startswith("dataset.target: column 'close' not found in sp500; did you mean 'Close'?")
    assert message.endswith("available columns: Open, High, Low, Close, Adj Close, Volume")
    assert load_error(spec(source="builtin", name="sp500", features=["Close", "Vol"])).startswith(
        "dataset.features: column 'Vol' not found in sp500"
    )


@pytest.mark.parametrize(
    ("source", "name", "kind"),
    [("builtin", "sp5000", "built-in dataset"), ("synthetic", "sinus", "synthetic generator")],
)
def test_unknown_names_suggest_the_nearest(source, name, kind):
    message = load_error(spec(source=source, name=name))
    assert message.startswith(f"unknown {kind} '{name}'; did you mean")
    assert "choose one of:" in message


# --- csv ----------------------------------------------------------------------------------------


def test_csv_defaults_to_close(tmp_path):
    path = write_csv(tmp_path, daily(Open=np.arange(15.0), Close=np.arange(15.0) + 1))
    loaded = load_frame(spec(source="csv", path=path))
    assert loaded.targets == ["Close"]
    assert (loaded.info["source"], loaded.info["label"]) == ("csv", path)
    assert loaded.frame["Close"].iloc[0] == 1.0


def test_csv_defaults_to_its_only_numeric_column(tmp_path):
    path = write_csv(tmp_path, daily(station=["a"] * 15, temp=np.arange(15.0)))
    assert load_frame(spec(source="csv", path=path)).targets == ["temp"]


def test_csv_with_several_numeric_columns_asks_for_a_target(tmp_path):
    path = write_csv(tmp_path, daily(a=np.arange(15.0), b=np.arange(15.0)))
    assert load_error(spec(source="csv", path=path)) == (
        f"{path}: which column should be predicted (a, b)? set dataset.target"
    )


def test_csv_without_numeric_columns(tmp_path):
    path = write_csv(tmp_path, daily(note=["x"] * 15))
    assert "no numeric column to predict; set dataset.target" in load_error(spec(source="csv", path=path))


def test_csv_errors_pass_through(tmp_path):
    missing = str(tmp_path / "missing.csv")
    assert load_error(spec(source="csv", path=missing)) == f"CSV file not found: {missing}"


def test_a_non_numeric_column_is_named(tmp_path):
    values = [str(v) for v in range(15)]
    values[4] = "n.a."
    path = write_csv(tmp_path, daily(Close=values))
    message = load_error(spec(source="csv", path=path))
    assert message == (
        f"{path}: column 'Close' is not numeric ('n.a.' on 2021-03-05); "
        "choose numeric columns for dataset.features and dataset.target"
    )


def test_csv_date_column_override_is_used(tmp_path):
    frame = daily(Close=np.arange(15.0))
    frame.index.name = "when"
    path = tmp_path / "custom.csv"
    frame.to_csv(path)
    with pytest.raises(DataError, match="no date column found"):
        load_frame(spec(source="csv", path=str(path)))
    assert len(load_frame(spec(source="csv", path=str(path), date_column="when")).frame) == 15


# --- missing values -----------------------------------------------------------------------------


@pytest.fixture
def gappy(tmp_path) -> str:
    close = np.arange(15.0)
    close[[0, 4]] = np.nan
    close[7] = np.inf
    return write_csv(tmp_path, daily(Close=close, Open=np.arange(15.0)))


def test_missing_values_are_refused_by_default(gappy):
    assert load_error(spec(source="csv", path=gappy)) == (
        f"{gappy}: 3 rows have missing or infinite values (first: column 'Close' on 2021-03-01); "
        "set dataset.fill: ffill | drop"
    )


def test_ffill_carries_values_forward_and_drops_leading_gaps(gappy):
    loaded = load_frame(spec(source="csv", path=gappy, fill="ffill"))
    close = loaded.frame["Close"]
    assert len(close) == 14
    assert close.index[0] == pd.Timestamp("2021-03-02")
    assert close["2021-03-05"] == 3.0 and close["2021-03-08"] == 6.0
    assert np.isfinite(close).all()
    assert loaded.info["rows_with_missing"] == 3


def test_drop_removes_rows(gappy):
    loaded = load_frame(spec(source="csv", path=gappy, fill="drop"))
    assert len(loaded.frame) == 12
    assert pd.Timestamp("2021-03-05") not in loaded.frame.index
    assert np.isfinite(loaded.frame.to_numpy()).all()


def test_only_used_columns_are_checked_for_gaps(gappy):
    loaded = load_frame(spec(source="csv", path=gappy, target="Open"))
    assert list(loaded.frame.columns) == ["Open"] and len(loaded.frame) == 15


# --- yahoo --------------------------------------------------------------------------------------


def test_yahoo_downloads_when_not_cached_then_reads_the_cache(tmp_path):
    calls = []

    def fetch(*args):
        calls.append(args)
        return prices(*args)

    ds = spec(source="yahoo", ticker="AAPL", start="2020-01-06", end="2020-01-31")
    loaded = load_frame(ds, data_dir=tmp_path, fetch=fetch)
    assert calls == [("AAPL", "2020-01-06", "2020-01-31", "1d")]
    assert (tmp_path / "AAPL.csv").exists() and (tmp_path / "AAPL.json").exists()
    info = loaded.info
    assert (info["source"], info["label"], info["adjusted"]) == ("yahoo", "AAPL", True)
    assert (info["first_date"], info["last_date"]) == ("2020-01-06", "2020-01-31")
    assert loaded.targets == ["Close"]
    again = load_frame(spec(source="yahoo", ticker="AAPL"), data_dir=tmp_path, fetch=never)
    assert len(again.frame) == 30


def test_a_cached_download_shorter_than_asked_warns(tmp_path):
    download("AAPL", data_dir=tmp_path, fetch=prices)  # 2020-01-01 .. 2020-02-11
    ds = spec(source="yahoo", ticker="AAPL", start="2019-01-01", end="2020-02-10")
    with pytest.warns(UserWarning, match="covers only 2020-01-01 to 2020-02-11.*--start 2019-01-01"):
        loaded = load_frame(ds, data_dir=tmp_path, fetch=never)
    assert len(loaded.frame) == 29


def test_yahoo_offline_is_one_line_and_leaves_nothing(tmp_path):
    def offline(*args):
        return pd.DataFrame()

    message = load_error(spec(source="yahoo", ticker="MSFT"), data_dir=tmp_path, fetch=offline)
    assert message.startswith("could not download 'MSFT' from Yahoo Finance")
    assert list(tmp_path.iterdir()) == []


# --- the dataset list ---------------------------------------------------------------------------


def test_list_datasets_shows_builtins_and_cached_downloads(tmp_path):
    download("AAPL", data_dir=tmp_path, fetch=prices)
    (tmp_path / "notes.csv").write_text("Date,x\n2020-01-01,1\n")  # no sidecar: not a download
    (tmp_path / "BROKEN.csv").write_text("Date,Close\n2020-01-01,1\n")
    (tmp_path / "BROKEN.json").write_text("{not json")
    with pytest.warns(UserWarning, match="unreadable sidecar"):
        entries = list_datasets(tmp_path)
    assert [e["name"] for e in entries] == [*BUILTINS, "AAPL"]
    sp500 = entries[0]
    assert (sp500["source"], sp500["rows"], sp500["first_date"]) == ("builtin", 5031, "1999-01-04")
    assert sp500["description"] == BUILTINS["sp500"].description
    aapl = entries[-1]
    assert (aapl["source"], aapl["rows"], aapl["columns"]) == ("yahoo", 30, ["Open", "Close", "Volume"])
    assert (aapl["first_date"], aapl["last_date"]) == ("2020-01-01", "2020-02-11")
    assert json.loads((tmp_path / "AAPL.json").read_text())["rows"] == aapl["rows"]
    keys = {"name", "source", "rows", "columns", "first_date", "last_date", "description"}
    assert all(keys <= set(e) for e in entries)


def test_list_datasets_without_a_data_folder(tmp_path):
    assert [e["name"] for e in list_datasets(tmp_path / "absent")] == list(BUILTINS)
