"""Reading a user's CSV: finding the date column, and one clear error for each kind of bad file."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from seqbench.data.csvfile import date_strings, read_csv
from seqbench.errors import DataError


def write(tmp_path: Path, text: str, name: str = "series.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def rows(header: str, dates: list[str]) -> str:
    return header + "\n" + "".join(f"{d},{i}.5\n" for i, d in enumerate(dates))


DAYS = ["2020-01-01", "2020-01-02", "2020-01-03"]


def one_line_error(path: Path, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        read_csv(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("header", ["Date", "date", "DATE", "timestamp", "Datetime", "time", "trade_date"])
def test_date_column_found_by_name(tmp_path, header):
    frame = read_csv(write(tmp_path, rows(f"{header},Close", DAYS)))
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert frame.index.name == "date"
    assert list(frame.columns) == ["Close"]
    assert frame.index[0] == pd.Timestamp("2020-01-01")
    assert frame["Close"].tolist() == [0.5, 1.5, 2.5]


def test_date_column_need_not_come_first(tmp_path):
    frame = read_csv(write(tmp_path, "value,Date\n1,2020-01-01\n2,2020-01-02\n"))
    assert list(frame.columns) == ["value"]
    assert frame.index[1] == pd.Timestamp("2020-01-02")


def test_unnamed_first_column_of_dates_is_the_date(tmp_path):
    saved = pd.DataFrame({"temp": [1.0, 2.0]}, index=pd.to_datetime(["2021-05-01", "2021-05-02"]))
    path = tmp_path / "saved.csv"
    saved.to_csv(path)  # header: ",temp"
    frame = read_csv(path)
    assert list(frame.columns) == ["temp"]
    assert frame.index.tolist() == [pd.Timestamp("2021-05-01"), pd.Timestamp("2021-05-02")]


def test_unnamed_first_column_of_numbers_is_not_a_date(tmp_path):
    path = write(tmp_path, ",temp\n0,1.0\n1,2.0\n")
    message = one_line_error(path)
    assert str(path) in message
    assert "no date column found" in message
    assert "dataset.date_column" in message


def test_no_date_column_says_how_to_name_one(tmp_path):
    path = write(tmp_path, "when,value\n2020-01-01,1\n")
    message = one_line_error(path)
    assert "no date column found (columns: when, value)" in message
    assert "dataset.date_column" in message


def test_date_column_override(tmp_path):
    frame = read_csv(write(tmp_path, "when,Date,value\n2020-01-05,x,1\n2020-01-06,y,2\n"), date_column="when")
    assert list(frame.columns) == ["Date", "value"]
    assert frame.index[0] == pd.Timestamp("2020-01-05")


def test_override_naming_a_missing_column_lists_the_columns(tmp_path):
    path = write(tmp_path, rows("Date,Close", DAYS))
    message = one_line_error(path, date_column="Day")
    assert message == f"{path}: date column 'Day' not found; available columns: Date, Close"


def test_hourly_timestamps_keep_their_time(tmp_path):
    path = write(tmp_path, "date,OT\n2016-07-01 00:00:00,1\n2016-07-01 01:00:00,2\n")
    frame = read_csv(path)
    assert frame.index[1] == pd.Timestamp("2016-07-01 01:00")
    assert date_strings(frame.index) == ["2016-07-01 00:00:00", "2016-07-01 01:00:00"]


def test_unix_seconds_in_a_timestamp_column(tmp_path):
    frame = read_csv(write(tmp_path, "timestamp,value\n1577836800,1\n1577923200,2\n"))
    assert frame.index.tolist() == [pd.Timestamp("2020-01-01"), pd.Timestamp("2020-01-02")]


def test_other_columns_are_kept_as_they_are(tmp_path):
    frame = read_csv(write(tmp_path, "Date,Close,note\n2020-01-01,1.5,up\n2020-01-02,2.5,down\n"))
    assert frame["note"].tolist() == ["up", "down"]
    assert frame["Close"].dtype == "float64"


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    assert one_line_error(path) == f"CSV file not found: {path}"


def test_a_directory_is_not_a_csv_file(tmp_path):
    assert "is a directory" in one_line_error(tmp_path)


def test_empty_file(tmp_path):
    path = write(tmp_path, "")
    assert one_line_error(path) == f"{path}: the file is empty"


def test_header_only(tmp_path):
    path = write(tmp_path, "Date,Close\n")
    assert one_line_error(path) == f"{path}: no data rows (only a header)"


def test_binary_file(tmp_path):
    path = tmp_path / "image.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x81" * 20)
    assert one_line_error(path) == f"{path}: not a text CSV file (cannot decode it as UTF-8)"


def test_malformed_csv(tmp_path):
    path = write(tmp_path, 'Date,Close\n2020-01-01,1\n"2020-01-02,2\n')
    assert one_line_error(path).startswith(f"{path}: malformed CSV: ")


def test_unparseable_date_names_row_and_value(tmp_path):
    path = write(tmp_path, rows("Date,Close", ["2020-01-01", "2020-01-02", "not-a-date", "2020-01-04"]))
    message = one_line_error(path)
    assert message == (
        f"{path}: cannot parse 'not-a-date' as a date in column 'Date' (row 3, line 4 of the file)"
    )


def test_missing_date_names_the_row(tmp_path):
    path = write(tmp_path, "Date,Close\n2020-01-01,1\n,2\n")
    assert "missing date in column 'Date' (row 2, line 3 of the file)" in one_line_error(path)


def test_duplicate_dates_are_refused(tmp_path):
    path = write(tmp_path, rows("Date,Close", ["2020-01-01", "2020-01-02", "2020-01-02", "2020-01-03"]))
    message = one_line_error(path)
    assert message == f"{path}: duplicate date 2020-01-02 (row 3); each date must appear once"


def test_unsorted_dates_are_sorted_with_a_warning(tmp_path):
    path = write(tmp_path, rows("Date,Close", ["2020-01-03", "2020-01-01", "2020-01-02"]))
    with pytest.warns(UserWarning, match="not in ascending order; sorted them"):
        frame = read_csv(path)
    assert frame.index.is_monotonic_increasing
    assert frame["Close"].tolist() == [1.5, 2.5, 0.5]  # each value moved with its date


def test_sorted_file_reads_without_warnings(tmp_path):
    path = write(tmp_path, rows("Date,Close", DAYS))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_csv(path)
