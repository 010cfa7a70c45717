"""Built-in datasets: real series that ship inside PyPI packages, so that runs work offline.

Importing this module is cheap (spec.py imports it to resolve `dataset: sp500`); the
packages that hold the data (`arch`, `vega_datasets`) are imported only by the loaders.
Every loader returns a frame with an ascending, unique DatetimeIndex named "date".
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    description: str
    frequency: str  # daily | business-daily | hourly
    default_target: str
    loader: Callable[[], pd.DataFrame]
    adjusted: bool | None = None  # prices adjusted for splits and dividends; None: not prices, or unknown

    def load(self) -> pd.DataFrame:
        return self.loader()


def _arch(module: str) -> Callable[[], pd.DataFrame]:
    """A loader for one of the `arch` package's daily OHLCV sets (1999-2018)."""

    def load() -> pd.DataFrame:
        frame = importlib.import_module(f"arch.data.{module}").load()
        return _dated(frame.copy())

    return load


def _vega(name: str, columns: list[str]) -> Callable[[], pd.DataFrame]:
    """A loader for one of `vega_datasets`' local sets, keeping the numeric `columns`."""

    def load() -> pd.DataFrame:
        from vega_datasets import local_data

        frame = local_data(name)
        return _dated(frame.set_index("date")[columns])

    return load


def _dated(frame: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    frame.index = pd.DatetimeIndex(frame.index, name="date")
    return frame.sort_index()


BUILTINS: dict[str, BuiltinDataset] = {
    d.name: d
    for d in (
        BuiltinDataset(
            "sp500",
            "S&P 500 index, daily OHLCV 1999-2018 (from the arch package)",
            "business-daily",
            "Close",
            _arch("sp500"),
            adjusted=True,  # an index: its Close equals Yahoo's Adj Close
        ),
        BuiltinDataset(
            "nasdaq",
            "NASDAQ Composite index, daily OHLCV 1999-2018 (from the arch package)",
            "business-daily",
            "Close",
            _arch("nasdaq"),
            adjusted=True,  # an index: its Close equals Yahoo's Adj Close
        ),
        BuiltinDataset(
            "seattle-weather",
            "Seattle daily weather 2012-2015: precipitation, temp_max, temp_min, wind (vega_datasets)",
            "daily",
            "temp_max",
            _vega("seattle-weather", ["precipitation", "temp_max", "temp_min", "wind"]),
        ),
        BuiltinDataset(
            "seattle-temps",
            "Seattle hourly temperature (F) in 2010 (vega_datasets)",
            "hourly",
            "temp",
            _vega("seattle-temps", ["temp"]),
        ),
    )
}
