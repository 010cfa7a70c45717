"""Every built-in dataset and every common frequency trains to a complete run folder, end to end.

Intraday series used to crash after training (a plot could not parse predictions.csv's dates):
these runs go through the same code as `seqbench train` and read back what they wrote.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from seqbench.data.builtin import BUILTINS
from seqbench.run.experiment import artifacts_of, resume_experiment, run_experiment
from seqbench.spec import Spec

TINY = {"model": {"name": "mingru", "hidden_size": 4}, "train": {"epochs": 1, "batch_size": 256}}


def tiny_spec(dataset: dict) -> Spec:
    return Spec.model_validate({"name": "freq", "dataset": {"seq_len": 8, **dataset}, **TINY})


def assert_complete(run_dir, n_rows: int | None = None) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert all((run_dir / name).is_file() for name in artifacts_of("forecast"))
    assert "warning" not in (run_dir / "run.log").read_text()
    predictions = pd.read_csv(run_dir / "predictions.csv", dtype={"date": str})
    dates = pd.to_datetime(predictions["date"], format="ISO8601")  # one format for the whole file
    assert dates.is_monotonic_increasing
    lengths = predictions["date"].str.len().unique()
    assert len(lengths) == 1, lengths  # never "2010-11-08" beside "2010-11-08 01:00:00"
    return metrics


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_dataset_trains_one_epoch(tmp_path, name):
    spec = tiny_spec({"source": "builtin", "name": name})
    result = run_experiment(spec, tmp_path / "results", tmp_path / "data")
    metrics = assert_complete(result.run_dir)
    assert metrics["data"]["rows"] == len(BUILTINS[name].load())


@pytest.mark.parametrize(
    ("freq", "first", "date_text"),
    [
        ("D", "2000-01-01", "2001-03-"),
        ("B", "2000-01-03", "2001-"),
        ("h", "2000-01-01 00:00:00", "2000-01-"),
        ("15min", "2000-01-01 00:00:00", "2000-01-0"),
    ],
)
def test_synthetic_series_at_each_frequency(tmp_path, freq, first, date_text):
    spec = tiny_spec({"source": "synthetic", "name": "sine", "length": 500, "freq": freq})
    result = run_experiment(spec, tmp_path / "results", tmp_path / "data")
    metrics = assert_complete(result.run_dir)
    assert metrics["data"]["first_date"] == first
    assert metrics["splits"]["test"]["first_date"].startswith(date_text)
    with_time = freq in ("h", "15min")
    assert (":" in metrics["splits"]["test"]["first_date"]) == with_time


def test_hourly_csv_whose_test_split_starts_at_midnight(tmp_path):
    """The case that crashed: midnight rows and other hours in one predictions.csv."""
    index = pd.date_range("2016-07-01", periods=480, freq="h")
    frame = pd.DataFrame({"date": index.strftime("%Y-%m-%d %H:%M:%S"), "OT": range(480)})
    frame["OT"] = (frame["OT"] % 24) + 0.5
    path = tmp_path / "hourly.csv"
    frame.to_csv(path, index=False)
    spec = tiny_spec({"source": "csv", "path": str(path), "target": "OT"})
    result = run_experiment(spec, tmp_path / "results", tmp_path / "data")
    assert_complete(result.run_dir)
    dates = pd.read_csv(result.run_dir / "predictions.csv", dtype={"date": str})["date"]
    assert dates.str.endswith(" 00:00:00").any()


def test_a_failed_plot_keeps_the_run_and_resume_writes_it(tmp_path, monkeypatch):
    import seqbench.tasks.forecast as forecast

    def broken(*args, **kwargs):
        raise ValueError("the plot broke")

    monkeypatch.setattr(forecast, "plot_predictions", broken)
    spec = tiny_spec({"source": "synthetic", "name": "sine", "length": 300, "freq": "h"})
    result = run_experiment(spec, tmp_path / "results", tmp_path / "data")
    run_dir = result.run_dir
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and result.status == "completed"
    assert (run_dir / "model.npz").is_file() and (run_dir / "predictions.csv").is_file()
    assert not (run_dir / "predictions.png").exists()
    log = (run_dir / "run.log").read_text()
    assert "warning: could not write predictions.png (ValueError: the plot broke)" in log
    assert f"seqbench train --resume {run_dir}" in log

    monkeypatch.undo()
    finished = resume_experiment(run_dir, tmp_path / "data")
    assert finished.status == "completed" and finished.metrics == metrics
    assert (run_dir / "predictions.png").is_file()
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics  # the scores are not touched
    assert f"finish {run_dir}: writing predictions.png" in (run_dir / "run.log").read_text()
