"""Run folders from anyone, read by report, predict and sample: pipes and huge files are refused
before they are read, hand-edited metrics.json fields are named, a page of many runs stays bounded,
and a forecast from other rows than the run's says so.

Each refusal is one `error:` line and exit 2 (or a `warning:` line where the command can go on),
never a traceback, and no file in the run folders changes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import files_of, invoke, one_line_error

from seqbench.io import FileRefused, read_head, read_regular
from seqbench.report import write as report

SPARSE = 3 * 2**30  # a 3 GiB file that costs no disk
GAP_ROWS = 30  # the last rows of the run's data: Volume missing, dropped by `fill: drop`


def prices(n: int, freq: str) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    dates = (
        pd.bdate_range("2015-01-01", periods=n)
        if freq == "B"
        else pd.date_range("2020-01-01", periods=n, freq=freq)
    )
    return pd.DataFrame(
        {
            "Date": dates.strftime("%Y-%m-%d %H:%M" if freq == "h" else "%Y-%m-%d"),
            "Close": 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n))),
            "Volume": rng.integers(1_000, 5_000, n).astype(float),
        }
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A completed daily run (trading days) on Close and Volume, trained with `fill: drop` on data
    whose last GAP_ROWS rows have no Volume."""
    root = tmp_path_factory.mktemp("untrusted")
    frame = prices(240, "B")
    frame.loc[len(frame) - GAP_ROWS :, "Volume"] = np.nan
    frame.to_csv(root / "prices.csv", index=False)
    (root / "p.yaml").write_text(
        f"name: p\ndataset: {{source: csv, path: {root / 'prices.csv'}, target: Close, "
        "features: [Close, Volume], seq_len: 8, fill: drop}\n"
        "model: {name: gru, hidden_size: 4}\ntrain: {epochs: 1, batch_size: 32}\n"
    )
    result = invoke("train", "-q", "-c", root / "p.yaml", "--results", root / "results")
    assert result.exit_code == 0, result.output
    (run,) = (root / "results" / "p").iterdir()
    return run


@pytest.fixture
def copy(run_dir, tmp_path):
    """A copy of the run folder to spoil, under tmp_path/results/p/."""
    target = tmp_path / "results" / "p" / run_dir.name
    shutil.copytree(run_dir, target)
    return target


@pytest.fixture
def no_hang():
    """Fail, rather than hang, if a command blocks opening or reading a FIFO."""

    def stop(signum, frame):
        raise RuntimeError("blocked on a FIFO")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def sparse(path: Path) -> None:
    with open(path, "ab") as f:
        f.truncate(SPARSE)


# --- row 1: regular files of bounded size, checked before reading ----------------------------------


def test_the_reader_refuses_a_pipe_a_folder_and_a_large_file_before_reading(tmp_path, no_hang):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "link").symlink_to(tmp_path / "pipe")
    sparse(tmp_path / "big")
    for name in ("pipe", "link"):
        with pytest.raises(FileRefused, match=r"is not a regular file \(a pipe, socket or device\)"):
            read_regular(tmp_path / name, 100, "a test file")
    with pytest.raises(FileRefused, match=r"is not a regular file \(a folder\)"):
        read_regular(tmp_path, 100, "a test file")
    with pytest.raises(FileRefused, match="is 3,221,225,472 bytes, over the limit of 100 for a test file"):
        read_regular(tmp_path / "big", 100, "a test file")
    assert read_head(tmp_path / "big", 4) == (b"\0" * 4, SPARSE)


@pytest.mark.parametrize(
    ("command", "name", "spoil", "message"),
    [
        (
            "predict",
            "metrics.json",
            os.mkfifo,
            "metrics.json is not a regular file (a pipe, socket or device)",
        ),
        (
            "predict",
            "metrics.json",
            sparse,
            "metrics.json is 3,221,225,472 bytes, over the limit of 16,777,216",
        ),
        ("predict", "spec.yaml", os.mkfifo, "spec.yaml is not a regular file (a pipe, socket or device)"),
        ("sample", "spec.yaml", os.mkfifo, "spec.yaml is not a regular file (a pipe, socket or device)"),
        ("sample", "spec.yaml", sparse, "spec.yaml is 3,221,225,472 bytes, over the limit of 1,048,576"),
    ],
)
def test_predict_and_sample_refuse_a_pipe_or_a_huge_file(copy, no_hang, command, name, spoil, message):
    if spoil is os.mkfifo:
        (copy / name).unlink()
    spoil(copy / name)
    before = files_of(copy)
    one_line_error(invoke(command, copy), message)
    assert files_of(copy) == before


def test_predict_refuses_a_huge_data_file_before_reading(copy, tmp_path, no_hang):
    """Once minutes of pandas on 3 GiB of NUL bytes (found by tests/test_fuzz_files.py)."""
    data = tmp_path / "new.csv"
    prices(40, "B").to_csv(data, index=False)
    sparse(data)
    before = files_of(copy)
    one_line_error(invoke("predict", copy, "--data", data), "3,221,225,472 bytes, over the limit")
    assert files_of(copy) == before


def test_report_leaves_out_a_pipe_and_huge_files_with_a_warning_each(copy, tmp_path, no_hang):
    os.mkfifo(copy / "x.png")
    sparse(copy / "big.png")
    (copy / "samples.txt").write_text("ROMEO: hello\n")
    sparse(copy / "samples.txt")
    other = copy.parent / "20990101-000000-bbbbbb"
    shutil.copytree(copy, other, ignore=shutil.ignore_patterns("x.png", "*.txt", "big.png"))
    sparse(other / "metrics.json")
    before = files_of(copy.parent)
    result = invoke("report", copy.parent, "-o", tmp_path / "r.html")
    assert result.exit_code == 0, result.output
    warnings = result.stderr.strip().splitlines()[:-1]  # then "wrote ..."
    assert sorted(line.split(": ")[0] for line in warnings) == ["warning"] * 3, result.stderr
    assert any(
        line.endswith("x.png is not a regular file (a pipe, socket or device); left out of the report")
        for line in warnings
    )
    assert any("big.png is 3,221,225,472 bytes, over the limit of 8,000,000" in line for line in warnings)
    assert any(
        line.startswith(f"warning: skipping {other}: ") and "3,221,225,472 bytes" in line for line in warnings
    )
    page = (tmp_path / "r.html").read_text()
    assert "x.png: not shown" in page and "big.png: not shown" in page
    assert "ROMEO: hello" in page and "[... cut: the file is 3,221,225,472 bytes]" in page
    assert (tmp_path / "r.html").stat().st_size < 2_000_000
    assert files_of(copy.parent) == before


# --- row 2: a page of many runs is bounded --------------------------------------------------------


def many_runs(run_dir: Path, root: Path, n: int) -> Path:
    """`n` copies of the run under root/n (hard links: no disk), each with 10 more pictures."""
    for i in range(n):
        copy = root / str(n) / f"r{i}" / run_dir.name
        shutil.copytree(run_dir, copy, copy_function=os.link)
        for k in range(10):
            os.link(run_dir / "loss_curve.png", copy / f"extra_{k}.png")
    return root / str(n)


def test_a_report_of_many_runs_embeds_a_bounded_share_and_says_what_it_left_out(
    run_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr(report, "MAX_PAGE_IMAGE_BYTES", 1_000_000)
    monkeypatch.setattr(report, "MAX_PAGE_TEXT_CHARS", 20_000)
    sizes = {}
    for n in (4, 40):
        out = tmp_path / f"{n}.html"
        result = invoke("report", many_runs(run_dir, tmp_path, n), "--no-group", "-o", out)
        assert result.exit_code == 0, result.output
        sizes[n] = out.stat().st_size
        page = out.read_text()
        assert page.count("data:image/png") <= 4 * report.MAX_PICTURES_PER_FOLDER
        assert f"{report.MAX_PICTURES_PER_FOLDER} pictures per folder" in page
    assert sizes[40] < 1_000_000 * 4 / 3 + 40 * 25_000  # the pictures' budget, then a few KB a run
    assert sizes[40] - sizes[4] < 36 * 25_000  # each run beyond the budget: its table and notes
    assert "extra_8.png, extra_9.png" in page and "not embedded, to keep the page small" in page
    assert "file(s) are not embedded in this page, which holds at most 1,000,000 bytes of pictures" in page
    assert "[not embedded, to keep the page small: spec.yaml" in page


# --- row 3: a hand-edited metrics.json ------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda m: m["scaling"].update(center={"a": 1}),
            "scaling.center is {'a': 1}, expected 2 finite number(s)",
        ),
        (
            lambda m: m["scaling"].update(columns=["Close", "Nope"]),
            "scaling.columns is ['Close', 'Nope'], expected the run's columns ['Close', 'Volume']",
        ),
        (
            lambda m: m["config"].update(features=[1]),
            "config.features is [1], expected a list of column names",
        ),
        (lambda m: m.update(config="abc"), "config is 'abc', expected a mapping of keys"),
    ],
)
def test_predict_names_a_hand_edited_field(copy, edit, message):
    metrics = json.loads((copy / "metrics.json").read_text())
    edit(metrics)
    (copy / "metrics.json").write_text(json.dumps(metrics))
    before = files_of(copy)
    one_line_error(invoke("predict", copy), f"{copy / 'metrics.json'}: {message}")
    assert files_of(copy) == before


@pytest.mark.parametrize(
    ("command", "code", "said"),
    [
        (["predict"], 2, "error: "),
        (["reference", "-o", "ref.json"], 2, "error: "),
        (["compare"], 0, "warning: "),
    ],
)
def test_a_metrics_json_nested_thousands_deep_is_one_line(copy, tmp_path, monkeypatch, command, code, said):
    """Once a RecursionError traceback from json.loads (found by tests/test_fuzz_files.py)."""
    monkeypatch.chdir(tmp_path)
    (copy / "metrics.json").write_text('{"status": ' + "[" * 5000 + "]" * 5000 + "}")
    before = files_of(copy)
    result = invoke(command[0], copy, *command[1:])
    assert result.exit_code == code and "Traceback" not in result.output, result.output
    assert result.stderr.splitlines()[-1].startswith(said), result.stderr
    assert files_of(copy) == before and not (tmp_path / "ref.json").exists()


# --- rows 4 and 5: a forecast from other rows than the run's -------------------------------------


def test_hourly_rows_for_a_daily_run_are_a_warning_naming_both(run_dir, tmp_path):
    prices(100, "h").to_csv(tmp_path / "hourly.csv", index=False)
    result = invoke("predict", run_dir, "--data", tmp_path / "hourly.csv")
    assert result.exit_code == 0, result.output
    (warning,) = result.stderr.strip().splitlines()
    data = tmp_path / "hourly.csv"
    assert warning.startswith(f"warning: {data} has hourly rows, but the run was trained on daily rows (")
    assert "the forecast is dated hourly and reads the last 8 rows as if they were daily" in warning
    assert "2020-01-05 04:00" in result.stdout  # the step after the file's last row, 03:00


def test_daily_rows_for_a_daily_run_say_nothing(run_dir, tmp_path):
    prices(100, "B").to_csv(tmp_path / "daily.csv", index=False)
    result = invoke("predict", run_dir, "--data", tmp_path / "daily.csv")
    assert result.exit_code == 0 and result.stderr == "", result.output


def test_rows_dropped_at_the_end_say_where_the_forecast_starts(run_dir):
    result = invoke("predict", run_dir)
    assert result.exit_code == 0, result.output
    (warning,) = result.stderr.strip().splitlines()
    dates = pd.bdate_range("2015-01-01", periods=240).strftime("%Y-%m-%d")
    last_full, last = dates[-GAP_ROWS - 1], dates[-1]
    data = run_dir.parent.parent.parent / "prices.csv"
    assert warning == (
        f"warning: {data}: the forecast starts after {last_full}, not after the data's last row {last}: "
        f"the {GAP_ROWS} row(s) after it have gaps (in Volume) and the run drops such rows "
        "(dataset.fill: drop)"
    )
    assert f"after its last row, {last_full}" in result.stdout
