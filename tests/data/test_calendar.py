"""The dates after a series' last row: trading days, hours, months, or the median step."""

import pandas as pd

from seqbench.data.calendar import next_dates


def test_next_dates_follow_the_series_frequency():
    weekdays = pd.bdate_range("2023-11-01", "2023-12-29")
    trading = weekdays.drop([pd.Timestamp("2023-11-23"), pd.Timestamp("2023-12-25")])  # NYSE holidays
    assert list(next_dates(trading, 2)) == [pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03")]
    # weekdays only, the holidays kept: business days, New Year's Day included
    assert list(next_dates(weekdays, 2)) == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02")]
    hourly = pd.date_range("2016-07-01", periods=50, freq="h")
    assert next_dates(hourly, 1)[0] == pd.Timestamp("2016-07-03 02:00")
    monthly = pd.date_range("2020-01-01", periods=24, freq="MS")
    assert list(next_dates(monthly, 2)) == [pd.Timestamp("2022-01-01"), pd.Timestamp("2022-02-01")]
    daily = pd.date_range("2024-02-26", periods=10, freq="D")  # with weekends: calendar days
    assert next_dates(daily, 1)[0] == pd.Timestamp("2024-03-07")
    irregular = pd.DatetimeIndex(["2024-01-01", "2024-01-03", "2024-01-05", "2024-01-08", "2024-01-10"])
    assert next_dates(irregular, 1)[0] == pd.Timestamp("2024-01-12")  # the median step, 2 days


def test_a_long_trading_history_with_one_off_closures_still_skips_exchange_holidays():
    from seqbench.data.calendar import NYSEHolidays

    weekdays = pd.bdate_range("2010-01-04", "2018-12-28")
    closed = NYSEHolidays().holidays("2010-01-01", "2018-12-31")
    one_offs = pd.DatetimeIndex(["2012-10-29", "2012-10-30", "2018-12-05"])  # Sandy; a state funeral
    trading = weekdays.difference(closed).difference(one_offs)
    assert list(next_dates(trading, 2)) == [pd.Timestamp("2018-12-31"), pd.Timestamp("2019-01-02")]
