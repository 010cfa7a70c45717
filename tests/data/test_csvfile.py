"""Reading a user's CSV: finding the date column, and one clear error for each kind of bad file."""

from __future__ import annotations

import os
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


def test_numbers_that_are_not_yyyymmdd_ask_for_a_date_format(tmp_path):
    path = write(tmp_path, "timestamp,value\n1577836800,1\n1577923200,2\n")
    message = one_line_error(path)
    assert "holds numbers (e.g. 1577836800), not dates" in message and "dataset.date_format" in message


@pytest.mark.parametrize(
    ("fmt", "values"), [("unix", "1577836800,1577923200"), ("unix_ms", "1577836800000,1577923200000")]
)
def test_unix_seconds_with_date_format_unix(tmp_path, fmt, values):
    first, second = values.split(",")
    frame = read_csv(write(tmp_path, f"timestamp,value\n{first},1\n{second},2\n"), date_format=fmt)
    assert frame.index.tolist() == [pd.Timestamp("2020-01-01"), pd.Timestamp("2020-01-02")]


def test_other_columns_are_kept_as_they_are(tmp_path):
    frame = read_csv(write(tmp_path, "Date,Close,note\n2020-01-01,1.5,up\n2020-01-02,2.5,down\n"))
    assert frame["note"].tolist() == ["up", "down"]
    assert frame["Close"].dtype == "float64"


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    assert one_line_error(path) == f"CSV file not found: {path}"


def test_missing_relative_path_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = one_line_error(Path("sub/nope.csv"))
    assert message == (
        f"CSV file not found: sub/nope.csv (looked for {tmp_path / 'sub' / 'nope.csv'}; "
        "a relative dataset.path is taken from the current directory)"
    )


def test_a_fifo_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    assert one_line_error(fifo) == (
        f"{fifo} is not a regular file (a pipe, socket or device); save the data to a file"
    )


def test_a_huge_file_is_refused_before_reading(tmp_path):
    """A 3 GiB sparse CSV once kept pandas busy for minutes (`predict --data`, found by
    tests/test_fuzz_files.py); its size is checked first."""
    path = write(tmp_path, rows("Date,Close", DAYS))
    with open(path, "ab") as f:
        f.truncate(3 * 2**30)
    assert one_line_error(path) == (
        f"{path}: the file is 3,221,225,472 bytes, over the limit of 1,073,741,824 for a CSV file "
        "(seqbench reads data of up to 1 GiB)"
    )


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


# --- dates as people store them ---------------------------------------------------------------


def test_eight_digit_integers_are_yyyymmdd(tmp_path):
    """london_weather.csv style: integer dates, and a gap in another column makes no difference."""
    frame = read_csv(write(tmp_path, "date,temp,snow\n19790101,2.3,\n19790102,1.6,9\n19790103,1.3,\n"))
    assert frame.index.tolist() == [pd.Timestamp(f"1979-01-0{d}") for d in (1, 2, 3)]


def test_yyyymmdd_with_a_missing_date_names_the_row(tmp_path):
    path = write(tmp_path, "date,temp\n19790101,2.3\n,1.6\n19790103,1.3\n")
    assert "missing date in column 'date' (row 2, line 3 of the file)" in one_line_error(path)


def test_eight_digits_that_are_no_date_are_an_error(tmp_path):
    path = write(tmp_path, "date,temp\n19791301,2.3\n19790102,1.6\n")
    assert "cannot parse 19791301 as a date in column 'date' (row 1" in one_line_error(path)


def test_date_format_reads_exactly_that_format(tmp_path):
    path = write(tmp_path, "Date,Close\n01/02/2020,1\n02/02/2020,2\n03/02/2020,3\n")
    frame = read_csv(path, date_format="%d/%m/%Y")
    assert frame.index.tolist() == [pd.Timestamp(f"2020-02-0{d}") for d in (1, 2, 3)]
    message = one_line_error(
        write(tmp_path, "Date,Close\n01/02/2020,1\n2020-02-02,2\n", "mixed.csv"), date_format="%d/%m/%Y"
    )
    assert (
        "cannot parse '2020-02-02' as a date with dataset.date_format '%d/%m/%Y' in column 'Date' (row 2"
        in message
    )


def test_date_format_for_integer_dates(tmp_path):
    frame = read_csv(write(tmp_path, "date,v\n202001,1\n202002,2\n"), date_format="%Y%m")
    assert frame.index.tolist() == [pd.Timestamp("2020-01-01"), pd.Timestamp("2020-02-01")]


def test_a_semicolon_file_names_its_separator(tmp_path):
    path = write(tmp_path, "Date;Open;Close\n2020-01-01;1.5;2\n2020-01-02;2.5;3\n")
    assert one_line_error(path) == (
        f"{path}: the fields seem to be separated by ';', not ',' (header 'Date;Open;Close'); "
        "set dataset.sep: ';'"
    )


def test_a_decimal_comma_file_names_both_settings(tmp_path):
    path = write(tmp_path, "Date;Open;Close\n2020-01-01;1,5;2,25\n2020-01-02;2,5;3,0\n")
    assert one_line_error(path).endswith("set dataset.sep: ';' and dataset.decimal: ','")
    frame = read_csv(path, sep=";", decimal=",")
    assert frame["Open"].tolist() == [1.5, 2.5] and frame["Close"].tolist() == [2.25, 3.0]


def test_tab_separated_file_reads_with_sep(tmp_path):
    path = write(tmp_path, "Date\tClose\n2020-01-01\t1.5\n2020-01-02\t2.5\n")
    assert "set dataset.sep: '\\t'" in one_line_error(path)
    assert read_csv(path, sep="\t")["Close"].tolist() == [1.5, 2.5]


def test_one_offset_for_the_whole_file_keeps_the_local_time(tmp_path):
    """yfinance's daily history: midnight in New York stays a date, not 05:00 UTC."""
    path = write(tmp_path, "Date,Close\n2020-01-02 00:00:00-05:00,1\n2020-01-03 00:00:00-05:00,2\n")
    assert date_strings(read_csv(path).index) == ["2020-01-02", "2020-01-03"]
    utc = read_csv(path, timezone="utc")
    assert date_strings(utc.index) == ["2020-01-02 05:00:00", "2020-01-03 05:00:00"]


def test_mixed_offsets_follow_the_same_rule(tmp_path):
    """Across a daylight-saving change: 09:30 local both days (local), or one hour apart in UTC."""
    path = write(tmp_path, "Datetime,Close\n2020-03-06 09:30:00-05:00,1\n2020-03-09 09:30:00-04:00,2\n")
    assert read_csv(path).index.tolist() == [
        pd.Timestamp("2020-03-06 09:30"),
        pd.Timestamp("2020-03-09 09:30"),
    ]
    utc = read_csv(path, timezone="utc").index.tolist()
    assert utc == [pd.Timestamp("2020-03-06 14:30"), pd.Timestamp("2020-03-09 13:30")]


def test_a_repeated_local_hour_points_at_timezone_utc(tmp_path):
    path = write(
        tmp_path,
        "time,v\n2021-11-07 01:00:00-04:00,1\n2021-11-07 01:00:00-05:00,2\n2021-11-07 02:00:00-05:00,3\n",
    )
    assert "set dataset.timezone: utc" in one_line_error(path)
    assert len(read_csv(path, timezone="utc")) == 3


def test_control_characters_in_column_names_are_escaped(tmp_path):
    path = write(tmp_path, "Date,Cl\x1bose\n2020-01-01,1\n")
    message = one_line_error(path, date_column="Da\x07y")
    assert "\x1b" not in message and "\x07" not in message
    assert "Cl\\x1bose" in message and "Da\\x07y" in message
