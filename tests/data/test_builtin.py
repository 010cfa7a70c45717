"""Built-in datasets load offline, with the documented columns, sizes and date ranges."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pandas as pd
import pytest

from seqbench.data.builtin import BUILTINS


def test_the_builtin_names():
    assert list(BUILTINS) == ["sp500", "nasdaq", "seattle-weather", "seattle-temps"]
    assert all(name == d.name for name, d in BUILTINS.items())


def test_importing_the_names_does_not_import_the_data_packages():
    code = (
        "import sys, seqbench.data.builtin as b; assert 'sp500' in b.BUILTINS; "
        "print(sorted(m for m in ('arch', 'vega_datasets', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_entries_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        BUILTINS["sp500"].default_target = "Open"  # type: ignore[misc]


OHLCV = ["Open", "High", "Low", "Close", "Adj Close", "Volume"]
WEATHER = ["precipitation", "temp_max", "temp_min", "wind"]


@pytest.mark.parametrize(
    ("name", "rows", "columns", "first", "last"),
    [
        ("sp500", 5031, OHLCV, "1999-01-04", "2018-12-31"),
        ("nasdaq", 5031, OHLCV, "1999-01-04", "2018-12-31"),
        ("seattle-weather", 1461, WEATHER, "2012-01-01", "2015-12-31"),
        ("seattle-temps", 8759, ["temp"], "2010-01-01 00:00", "2010-12-31 23:00"),
    ],
)
def test_builtin_loads_offline_with_documented_shape(name, rows, columns, first, last):
    dataset = BUILTINS[name]
    frame = dataset.load()
    assert frame.shape == (rows, len(columns))
    assert list(frame.columns) == columns
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert frame.index.name == "date"
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert (frame.index[0], frame.index[-1]) == (pd.Timestamp(first), pd.Timestamp(last))
    assert dataset.default_target in frame.columns
    assert frame.select_dtypes("number").shape[1] == len(columns)
    assert not frame.isna().any().any()


def test_price_series_look_like_prices():
    sp500 = BUILTINS["sp500"].load()
    assert (sp500["High"] >= sp500["Low"]).all()
    assert 600 < sp500["Close"].min() < sp500["Close"].max() < 3000
    assert sp500.loc["2018-12-31", "Close"] == pytest.approx(2506.85, abs=0.01)


def test_seattle_temps_is_hourly():
    index = BUILTINS["seattle-temps"].load().index
    assert pd.Series(index).diff().dropna().mode()[0] == pd.Timedelta(hours=1)
    assert BUILTINS["seattle-temps"].frequency == "hourly"
