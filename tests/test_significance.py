"""The Diebold-Mariano test: a hand-computed example, known behaviour, and pairing predictions.csv."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from seqbench.artifacts.significance import (
    autocovariance,
    diebold_mariano,
    dm_against_baselines,
    dm_between_runs,
    dm_vs_persistence,
    paired_losses,
    read_predictions,
    window_losses,
)
from seqbench.errors import SeqbenchError

LOSS1 = np.array([1.0, 4.0, 2.0, 3.0, 5.0])
LOSS2 = np.full(5, 2.0)


def test_hand_computed_example_h1():
    """d = [-1, 2, 0, 1, 3]: dbar 1, gamma_0 = 10/5 = 2, V = 2/5, DM = 1/sqrt(0.4);
    HLN factor sqrt((5 + 1 - 2) / 5) = sqrt(0.8), so DM* = sqrt(2); p = 2 P(T_4 > sqrt 2)."""
    result = diebold_mariano(LOSS1, LOSS2, h=1)
    assert result.statistic == pytest.approx(math.sqrt(2), rel=1e-12)
    # Student t with 4 df: F(x) = 1/2 + 3/8 x / sqrt(1 + x^2/4) (1 - x^2 / (12 (1 + x^2/4)))
    x = math.sqrt(2)
    cdf = 0.5 + 3 / 8 * x / math.sqrt(1 + x * x / 4) * (1 - x * x / (12 * (1 + x * x / 4)))
    assert result.p_value == pytest.approx(2 * (1 - cdf), rel=1e-9)
    assert result.p_value == pytest.approx(0.2301996, abs=1e-7)
    assert (result.n, result.h, result.mean_loss_diff) == (5, 1, 1.0)


def test_hand_computed_example_h2_counts_lag_one():
    """gamma_1 = (1*-2 + -1*1 + 0*-1 + 2*0) / 5 = -0.6: V = (2 - 1.2) / 5 = 0.16, DM = 2.5;
    HLN factor sqrt((5 + 1 - 4 + 2/5) / 5) = sqrt(0.48), so DM* = sqrt(3)."""
    assert autocovariance(LOSS1 - LOSS2, 0) == pytest.approx(2.0)
    assert autocovariance(LOSS1 - LOSS2, 1) == pytest.approx(-0.6)
    result = diebold_mariano(LOSS1, LOSS2, h=2)
    assert result.statistic == pytest.approx(math.sqrt(3), rel=1e-12)
    x = math.sqrt(3)
    cdf = 0.5 + 3 / 8 * x / math.sqrt(1 + x * x / 4) * (1 - x * x / (12 * (1 + x * x / 4)))
    assert result.p_value == pytest.approx(2 * (1 - cdf), rel=1e-9)


def test_sign_and_symmetry():
    forward, backward = diebold_mariano(LOSS1, LOSS2), diebold_mariano(LOSS2, LOSS1)
    assert forward.statistic == -backward.statistic and forward.p_value == backward.p_value


def test_identical_forecasts_give_p_one():
    result = diebold_mariano(LOSS1, LOSS1.copy(), h=3)
    assert (result.statistic, result.p_value, result.mean_loss_diff) == (0.0, 1.0, 0.0)


def test_clearly_better_forecast_gives_a_tiny_p():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=500)
    good = (truth + rng.normal(scale=0.1, size=500) - truth) ** 2
    bad = (truth + rng.normal(scale=1.0, size=500) - truth) ** 2
    result = diebold_mariano(good, bad)
    assert result.statistic < -10 and result.p_value < 1e-12


def test_forecasts_of_equal_quality_are_not_significant():
    rng = np.random.default_rng(1)
    p_values = [
        diebold_mariano(rng.normal(size=300) ** 2, rng.normal(size=300) ** 2).p_value for _ in range(40)
    ]
    assert np.median(p_values) > 0.01 and sum(p < 0.05 for p in p_values) <= 6  # about 5% by chance


def test_constant_nonzero_differential_and_bad_input():
    result = diebold_mariano(LOSS2 + 1, LOSS2)
    assert result.statistic == math.inf and result.p_value == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        diebold_mariano(np.ones(1), np.ones(1))
    with pytest.raises(ValueError, match="one length"):
        diebold_mariano(np.ones(3), np.ones(4))


def test_window_losses_average_steps_and_series():
    truth = np.zeros((2, 3, 2))
    forecast = np.ones((2, 3, 2))
    forecast[1] *= 2
    assert window_losses(truth, forecast).tolist() == [1.0, 4.0]
    sig = dm_against_baselines(truth, forecast, {"zero": truth})
    assert sig["zero"]["h"] == 3 and sig["zero"]["mean_loss_diff"] == pytest.approx(2.5)


# --- predictions.csv ----------------------------------------------------------------------------


def predictions(dates, horizon=1, series=("Close",), prediction=None, seed=0):
    """A predictions.csv frame as seqbench writes it: window by window, steps then series."""
    rng = np.random.default_rng(seed)
    rows = []
    for w in range(len(dates) - horizon + 1):
        for step in range(1, horizon + 1):
            for s in series:
                target = 100.0 + pd.Timestamp(dates[w + step - 1]).day_of_year + (s != "Close")
                rows.append(
                    {
                        "date": dates[w + step - 1],
                        "series": s,
                        "step": step,
                        "target": target,
                        "prediction": target + rng.normal(scale=prediction or 1.0),
                        "persistence": target + rng.normal(scale=2.0),
                        "linear": target,
                    }
                )
    return pd.DataFrame(rows)


def write_run(tmp_path, name, frame):
    run_dir = tmp_path / name
    run_dir.mkdir()
    frame.to_csv(run_dir / "predictions.csv", index=False)
    return run_dir


DATES = [str(d.date()) for d in pd.bdate_range("2020-01-01", periods=60)]


def test_windows_of_a_multistep_multiseries_file(tmp_path):
    run = write_run(tmp_path, "a", predictions(DATES, horizon=3, series=("Close", "Open")))
    frame = read_predictions(run)
    assert frame["window"].nunique() == len(DATES) - 2
    assert (frame.groupby("window").size() == 6).all()
    loss1, _, h = paired_losses(frame, frame, "prediction", "persistence")
    assert len(loss1) == len(DATES) - 2 and h == 3
    expected = frame.assign(e=(frame["prediction"] - frame["target"]) ** 2).groupby("window")["e"].mean()
    np.testing.assert_allclose(loss1, expected.to_numpy())
    result = dm_vs_persistence(run)
    assert result is not None and result.h == 3 and result.statistic < 0  # error sd 1 vs 2


def test_against_another_run_pairs_the_shared_windows(tmp_path):
    a = write_run(tmp_path, "a", predictions(DATES, prediction=0.2, seed=1))
    b = write_run(tmp_path, "b", predictions(DATES[20:], prediction=1.0, seed=2))
    result = dm_between_runs(a, b)
    assert result.n == len(DATES) - 20 and result.statistic < 0 and result.p_value < 1e-3
    assert dm_between_runs(a, a).p_value == 1.0


def test_against_a_run_on_other_targets_is_an_error(tmp_path):
    a = write_run(tmp_path, "a", predictions(DATES))
    other = predictions(DATES)
    other["target"] += 1000  # same dates, another series
    b = write_run(tmp_path, "b", other)
    with pytest.raises(SeqbenchError, match="share 0 test forecasts"):
        dm_between_runs(a, b)
    with pytest.raises(SeqbenchError, match="cannot read"):
        dm_between_runs(a, tmp_path / "missing")


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("prediction", "oops", "column 'prediction' holds 'oops' in row 5, not a number"),
        ("target", "1e5x", "column 'target' holds '1e5x' in row 5, not a number"),
        ("step", "0", "column 'step' holds 0 in row 5, not a whole number from 1"),
        ("step", "1.5", "column 'step' holds 1.5 in row 5, not a whole number from 1"),
        ("step", "", "column 'step' holds nan in row 5, not a whole number from 1"),
    ],
)
def test_text_where_a_number_belongs_is_named(tmp_path, column, value, message):
    """Once a TypeError traceback in `reference` (str - float; found by tests/test_fuzz_files.py)."""
    frame = predictions(DATES).astype({column: object})
    frame.loc[4, column] = value
    run = write_run(tmp_path, "a", frame)
    with pytest.raises(SeqbenchError, match=re.escape(f"predictions.csv: {message}; the file was not")):
        read_predictions(run)


def test_whole_steps_written_as_floats_read_as_integers(tmp_path):
    run = write_run(tmp_path, "a", predictions(DATES).astype({"step": float}))
    assert read_predictions(run)["step"].dtype == np.int64


# --- end to end: metrics.json at train time, the dm_p column of compare -------------------------


def test_train_time_significance_matches_predictions_csv(tmp_path, price_csv):
    """metrics.json's `significance` is the test compare would run on predictions.csv."""
    from seqbench.artifacts.runs import load_run
    from seqbench.results.compare import compare_rows
    from seqbench.run.experiment import run_experiment
    from seqbench.spec import Spec

    spec = Spec.model_validate(
        {
            "name": "dm",
            "dataset": {"source": "csv", "path": str(price_csv), "seq_len": 10, "horizon": 3},
            "model": {"name": "mingru", "hidden_size": 4},
            "train": {"epochs": 1},
        }
    )
    result = run_experiment(spec, tmp_path / "results")
    stored = result.metrics["significance"]
    assert set(stored) == {"persistence", "seasonal", "linear"}
    assert set(stored["persistence"]) == {"statistic", "p_value", "n", "h", "mean_loss_diff"}
    assert stored["persistence"]["h"] == 3 and stored["persistence"]["n"] == len(
        read_predictions(result.run_dir)["window"].unique()
    )
    from_csv = dm_vs_persistence(result.run_dir)
    assert from_csv.statistic == pytest.approx(stored["persistence"]["statistic"], rel=1e-9)
    assert from_csv.p_value == pytest.approx(stored["persistence"]["p_value"], rel=1e-9, abs=1e-300)
    mse_diff = result.metrics["test"]["mse"] - result.metrics["baselines"]["persistence"]["mse"]
    assert stored["persistence"]["mean_loss_diff"] == pytest.approx(mse_diff, rel=1e-9)

    run = load_run(result.run_dir)
    (row,) = compare_rows([run])
    assert row["dm_p"] == stored["persistence"]["p_value"]
    del run["significance"]  # an older run: compare computes it from predictions.csv
    (row,) = compare_rows([run])
    assert row["dm_p"] == pytest.approx(stored["persistence"]["p_value"], rel=1e-9, abs=1e-300)
    (row,) = compare_rows([{"run_id": "x", "status": "failed"}])
    assert row["dm_p"] is None


def test_cli_compare_against_a_run(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from seqbench.cli import app

    monkeypatch.chdir(tmp_path)
    runs = {}
    for name, scale, dates in (("good", 0.2, DATES), ("ref", 1.0, DATES[10:]), ("other", 1.0, DATES)):
        run_dir = tmp_path / "results" / name / f"2026-{name}"
        run_dir.mkdir(parents=True)
        frame = predictions(dates, prediction=scale, seed=len(name))
        if name == "other":
            frame["target"] += 500  # another series on the same dates
        frame.to_csv(run_dir / "predictions.csv", index=False)
        (run_dir / "metrics.json").write_text(json.dumps({"name": name, "run_id": run_dir.name}))
        runs[name] = run_dir
    invoke = CliRunner().invoke
    base = ["compare", "results/good", "results/ref", "--against", str(runs["ref"]), "--format", "json"]
    result = invoke(app, base)
    assert result.exit_code == 0, result.output
    rows = {row["run"].split("/")[0]: row for row in json.loads(result.stdout)}
    assert rows["ref"]["dm_p"] is None and rows["good"]["dm_p"] < 1e-3
    assert "against ref/2026-ref" in result.stderr

    result = invoke(app, ["compare", "--against", str(runs["ref"])])
    assert result.exit_code == 2 and "share 0 test forecasts" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = invoke(app, ["compare", "--against", "results/*"])
    assert result.exit_code == 2 and "--against needs one run" in result.stderr


def test_non_finite_losses_give_no_test():
    result = diebold_mariano(np.array([1.0, np.nan, 2.0]), np.ones(3))
    assert math.isnan(result.statistic) and math.isnan(result.p_value)
