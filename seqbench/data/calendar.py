"""The dates after a series' last row, in its own frequency, for forecasts of steps not yet seen.

pandas tells most frequencies from the rows (hourly, daily, monthly, ...). Daily rows that skip
weekends are trading days: when the weekdays missing from the series are the New York Stock
Exchange's holidays, the next dates skip those holidays too; otherwise they are business days.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from pandas.tseries.holiday import (
    AbstractHolidayCalendar,
    GoodFriday,
    Holiday,
    USLaborDay,
    USMartinLutherKingJr,
    USMemorialDay,
    USPresidentsDay,
    USThanksgivingDay,
    nearest_workday,
    sunday_to_monday,
)
from pandas.tseries.offsets import CustomBusinessDay

RECENT_ROWS = 60  # rows pandas infers the frequency from: the recent past, where a series may have changed
WEEKEND = 5  # pandas day_of_week of Saturday
MATCH = 0.9  # share of the series' missing weekdays that must be exchange holidays, and back


class NYSEHolidays(AbstractHolidayCalendar):
    """The New York Stock Exchange's regular holidays (not its one-off closures)."""

    rules = [  # noqa: RUF012 (pandas' own calendars declare rules this way)
        Holiday("New Year's Day", month=1, day=1, observance=sunday_to_monday),
        USMartinLutherKingJr,
        USPresidentsDay,
        GoodFriday,
        USMemorialDay,
        Holiday("Juneteenth", month=6, day=19, start_date="2022-01-01", observance=nearest_workday),
        Holiday("Independence Day", month=7, day=4, observance=nearest_workday),
        USLaborDay,
        USThanksgivingDay,
        Holiday("Christmas", month=12, day=25, observance=nearest_workday),
    ]


def next_dates(dates: pd.DatetimeIndex, n: int) -> pd.DatetimeIndex:
    """The `n` timestamps after the last of `dates`, in the series' own frequency.

    Trading days (daily rows, never a weekend) skip weekends, and exchange holidays when the series
    skips them too; other rows take pandas' frequency of the recent rows (h, D, W-SUN, MS, ...),
    or else step by the median gap between rows.
    """
    dates = pd.DatetimeIndex(dates)
    step = row_step(dates)
    if step == pd.Timedelta(days=1) and not (dates.day_of_week >= WEEKEND).any():
        return pd.date_range(dates[-1], periods=n + 1, freq=_trading_day(dates))[1:]
    freq = None
    if len(dates) >= 3:
        try:
            with warnings.catch_warnings():  # pandas 3: "will return a BaseOffset"; date_range takes either
                warnings.simplefilter("ignore")
                freq = pd.infer_freq(dates[-RECENT_ROWS:])
        except (TypeError, ValueError):
            freq = None
    if freq is not None:
        return pd.date_range(dates[-1], periods=n + 1, freq=freq)[1:]
    return pd.DatetimeIndex([dates[-1] + step * k for k in range(1, n + 1)])


def _trading_day(dates: pd.DatetimeIndex) -> CustomBusinessDay:
    """A business day that also skips the exchange's holidays, if the series' gaps are those holidays."""
    days = dates.normalize()
    weekdays = pd.bdate_range(days[0], days[-1])
    missing = weekdays.difference(days)
    holidays = NYSEHolidays().holidays(days[0], days[-1] + pd.Timedelta(days=366))
    in_span = holidays[holidays <= days[-1]]
    if len(missing) and missing.isin(in_span).mean() >= MATCH and in_span.isin(missing).mean() >= MATCH:
        return CustomBusinessDay(holidays=holidays)
    return CustomBusinessDay()


NAMED_STEPS = {
    "1-minute": pd.Timedelta(minutes=1),
    "hourly": pd.Timedelta(hours=1),
    "daily": pd.Timedelta(days=1),
    "weekly": pd.Timedelta(days=7),
    "monthly": pd.Timedelta(days=30.44),
    "quarterly": pd.Timedelta(days=91.31),
    "yearly": pd.Timedelta(days=365.25),
}
NAMED_WITHIN = 1.6  # a step within this factor of a named one has its name: trading days are daily
UNITS = {"day": pd.Timedelta(days=1), "hour": pd.Timedelta(hours=1), "minute": pd.Timedelta(minutes=1)}


def row_step(dates: pd.DatetimeIndex) -> pd.Timedelta:
    """The median gap between consecutive rows."""
    return pd.Series(pd.DatetimeIndex(dates)).diff().median()


def step_name(step: pd.Timedelta) -> str:
    """A step between rows as an adjective: "hourly", "daily" (trading days too), or e.g. "15-minute"."""
    for name, named in NAMED_STEPS.items():
        if 1 / NAMED_WITHIN <= step / named <= NAMED_WITHIN:
            return name
    unit, size = next(
        ((u, size) for u, size in UNITS.items() if step >= size), ("second", pd.Timedelta(seconds=1))
    )
    return f"{np.format_float_positional(step / size, precision=3, fractional=False, trim='-')}-{unit}"
