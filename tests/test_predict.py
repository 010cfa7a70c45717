"""`seqbench predict`: forecasts from a trained run, checked against the run's own test forecasts."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from seqbench.cli import app
from seqbench.run.experiment import run_experiment
from seqbench.spec import load_spec
from seqbench.trained.predict import predict_run

runner = CliRunner()


def train(tmp_path, csv, *overrides, name="p"):
    """A completed two-epoch run on `csv`, its folder."""
    spec_file = tmp_path / f"{name}.yaml"
    spec_file.write_text(
        f"name: {name}\ndataset: {{source: csv, path: {csv}, target: Close, seq_len: 12}}\n"
        "model: {name: gru, hidden_size: 8}\ntrain: {epochs: 2, batch_size: 32}\n"
    )
    result = run_experiment(load_spec(spec_file, list(overrides)), tmp_path / "results")
    assert result.status == "completed", result.message
    return result.run_dir


def hourly_csv(tmp_path):
    """Three daily-periodic channels, hourly, with a date column named `date` (like ETT)."""
    rng = np.random.default_rng(3)
    n = 600
    t = np.arange(n)
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2020-03-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M:%S"),
            "Close": 10 + np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.1, n),
            "HUFL": 5 + np.cos(2 * np.pi * t / 24) + rng.normal(0, 0.1, n),
            "OT": 20 + 0.01 * t + rng.normal(0, 0.2, n),
        }
    )
    path = tmp_path / "hourly.csv"
    frame.to_csv(path, index=False)
    return path


def truncated(csv, rows, tmp_path):
    """The first `rows` rows of `csv`, as a new CSV."""
    path = tmp_path / f"first_{rows}.csv"
    pd.read_csv(csv).iloc[:rows].to_csv(path, index=False)
    return path


CASES = {
    "levels": ("price", []),
    "log returns, two features": (
        "price",
        ["dataset.transform=log_return", "dataset.features=[Close,Volume]", "dataset.horizon=3"],
    ),
    "diff, window-normalised": ("price", ["dataset.transform=diff", "dataset.normalize=window"]),
    "instance, channels independent, hourly": (
        "hourly",
        [
            "dataset.features=[Close,HUFL,OT]",
            "dataset.target=[Close,HUFL,OT]",
            "dataset.normalize=instance",
            "dataset.channels=independent",
            "dataset.scaler=standard",
            "dataset.horizon=5",
        ],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_forecast_from_new_rows_is_the_runs_own_test_forecast(tmp_path, price_csv, case):
    """Cut the data after a test window's last input row: predict's forecast from those rows, with
    their dates, is exactly that window's row in the run's predictions.csv."""
    data, overrides = CASES[case]
    csv = price_csv if data == "price" else hourly_csv(tmp_path)
    run_dir = train(tmp_path, csv, *overrides)
    saved = pd.read_csv(run_dir / "predictions.csv")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    horizon = metrics["config"]["horizon"]
    first_test_target = metrics["splits"]["test"]["target_rows"][0]
    for origin in (first_test_target - 1, first_test_target + 7):  # rows 0..origin are known
        forecast = predict_run(run_dir, truncated(csv, origin + 1, tmp_path))
        window = saved.iloc[(origin - first_test_target + 1) * horizon * len(metrics["config"]["targets"]) :]
        window = window.iloc[: len(forecast.frame)]
        assert list(forecast.frame["date"]) == list(window["date"])
        assert list(forecast.frame["series"]) == list(window["series"])
        np.testing.assert_allclose(forecast.frame["prediction"], window["prediction"], rtol=1e-6)


def test_the_runs_own_data_gives_the_next_trading_day(tmp_path, price_csv):
    csv = truncated(price_csv, 397, tmp_path)  # business days from 2015-01-01 to Friday 2016-07-08
    run_dir = train(tmp_path, csv, "dataset.horizon=2")
    forecast = predict_run(run_dir)
    assert forecast.last_date == "2016-07-08"
    assert list(forecast.frame["date"]) == ["2016-07-11", "2016-07-12"]  # Monday, Tuesday
    assert list(forecast.frame["step"]) == [1, 2]
    assert np.isfinite(forecast.frame["prediction"]).all()


def test_a_run_saved_before_its_scaler_was_recorded_gives_the_same_forecast(tmp_path, price_csv):
    run_dir = train(tmp_path, price_csv, "dataset.transform=diff")
    before = predict_run(run_dir).frame
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    del metrics["scaling"]
    metrics_file.write_text(json.dumps(metrics))
    pd.testing.assert_frame_equal(predict_run(run_dir).frame, before)


def invoke(*args):
    return runner.invoke(app, ["predict", *map(str, args)])


def test_the_command_prints_the_table_and_writes_the_csv(tmp_path, price_csv):
    run_dir = train(tmp_path, price_csv, "dataset.horizon=2")
    out = tmp_path / "forecast.csv"
    result = invoke(run_dir, "-o", out)
    assert result.exit_code == 0, result.output
    assert "2016-07-14" in result.stdout and "after its last row, 2016-07-13 (400 rows)" in result.stdout
    written = pd.read_csv(out)
    assert list(written.columns) == ["date", "series", "step", "prediction"]
    assert list(written["date"]) == ["2016-07-14", "2016-07-15"]


def one_line_error(result, message):
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_input_is_one_line_and_exit_2(tmp_path, price_csv):
    run_dir = train(tmp_path, price_csv)
    one_line_error(invoke(tmp_path), "is not a run folder")
    missing = tmp_path / "no_close.csv"
    pd.read_csv(price_csv).drop(columns="Close").to_csv(missing, index=False)
    one_line_error(invoke(run_dir, "--data", missing), "Close")
    one_line_error(invoke(run_dir, "--data", truncated(price_csv, 11, tmp_path)), "last 12 rows")
    one_line_error(invoke(run_dir, "--data", tmp_path / "absent.csv"), "absent.csv")
    out = tmp_path / "f.csv"
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    metrics_file.write_text(json.dumps({**metrics, "status": "interrupted"}))
    one_line_error(invoke(run_dir, "-o", out), "needs a completed run")
    assert not out.exists()


def test_a_language_model_run_is_refused(tmp_path):
    (tmp_path / "t.txt").write_text("abc def ghi\n" * 300)
    spec_file = tmp_path / "lm.yaml"
    spec_file.write_text(
        f"name: lm\ntask: lm\ndataset: {{source: text, path: {tmp_path / 't.txt'}, seq_len: 8}}\n"
        "model: {name: gru, hidden_size: 4}\ntrain: {epochs: 1, batches_per_epoch: 2, batch_size: 4}\n"
    )
    result = run_experiment(load_spec(spec_file, []), tmp_path / "results")
    one_line_error(invoke(result.run_dir), "needs a forecast run")
