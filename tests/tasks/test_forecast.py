"""The forecast task's pictures of a multi-step run: which windows predictions.png shows, their
inputs, and the error per horizon step it draws (whose mean is metrics.json's `scaled` score)."""

import numpy as np
import pandas as pd
import pytest

from seqbench.artifacts.plots import HorizonForecasts
from seqbench.data.windows import make_windows
from seqbench.spec import DatasetSpec, Spec
from seqbench.tasks import forecast
from seqbench.tasks.forecast import horizon_forecasts, scaled_scores


def hourly_windows(seq_len=8, horizon=5, transform="none", n=300):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"HUFL": 5 + rng.normal(size=n).cumsum(), "OT": 20 + rng.normal(size=n).cumsum()},
        index=pd.date_range("2016-07-01", periods=n, freq="h", name="date"),
    )
    ds = DatasetSpec(
        source="synthetic", name="x", seq_len=seq_len, horizon=horizon, transform=transform, scaler="standard"
    )
    return make_windows(frame, ["HUFL", "OT"], ["HUFL", "OT"], ds)


def test_the_shown_windows_are_spread_over_the_test_split_with_their_inputs():
    windows = hourly_windows()
    truth = windows.truth("test")  # (N, H, T)
    view = horizon_forecasts(windows, {"model": truth + 1.0, "persistence": windows.persistence("test")}, 8)
    n = len(windows.test.origin)
    assert view.series == "OT" and view.n_windows == n
    assert list(view.windows) == [0, round((n - 1) / 3), round(2 * (n - 1) / 3), n - 1]
    for k, window in enumerate(view.windows):
        origin = windows.test.origin[window]
        np.testing.assert_array_equal(view.inputs[k], windows.raw_targets[origin - 7 : origin + 1, 1])
        assert view.input_dates[k, -1] == windows.dates.values[origin]
        assert view.target_dates[k, 0] == view.input_dates[k, -1] + np.timedelta64(1, "h")
        np.testing.assert_array_equal(view.truth[k], truth[window, :, 1])
        np.testing.assert_array_equal(view.forecasts["model"][k], truth[window, :, 1] + 1.0)
    assert view.inputs.shape == (4, 8) and view.target_dates.shape == (4, 5)


def test_the_error_per_step_is_the_scaled_mse_whose_mean_metrics_json_reports():
    windows = hourly_windows()
    truth = windows.truth("test")
    forecasts = {"model": truth + 1.0, "persistence": windows.persistence("test")}
    view = horizon_forecasts(windows, forecasts, 8)
    assert (
        view.error_name == "MSE (scaled)"
        and view.error_scope == f"all {view.n_windows} test windows and 2 series"
    )
    expected = np.mean(1 / windows.target_scale**2)  # an error of 1 in original units, scaled
    np.testing.assert_allclose(view.step_error["model"], np.full(5, expected))
    scores = scaled_scores(windows, forecasts, trained=True)
    for name in forecasts:
        assert np.mean(view.step_error[name]) == pytest.approx(scores[name]["mse"], rel=1e-12)
    assert view.step_error["persistence"][0] < view.step_error["persistence"][-1]  # a random walk drifts


def test_under_a_transform_the_error_per_step_is_in_original_units():
    windows = hourly_windows(transform="diff")
    view = horizon_forecasts(windows, {"model": windows.truth("test") + 2.0}, 8)
    assert view.error_name == "MSE (original units)"
    np.testing.assert_allclose(view.step_error["model"], np.full(5, 4.0))


def test_a_test_split_of_few_windows_shows_each_once():
    windows = hourly_windows(horizon=20, n=145)
    n = len(windows.test.origin)
    view = horizon_forecasts(windows, {"model": windows.truth("test")}, 8, shown=n + 3)
    assert n < 4 and list(view.windows) == list(range(n))


@pytest.mark.parametrize("horizon", [1, 3])
def test_a_run_draws_the_multi_step_figure_only_for_a_multi_step_horizon(
    tmp_path, price_csv, monkeypatch, horizon
):
    from seqbench.run.experiment import run_experiment

    drawn = {}

    def capture(predictions, path, title, horizon=None):
        drawn.update(predictions=predictions, horizon=horizon)
        open(path, "wb").close()

    monkeypatch.setattr(forecast, "plot_predictions", capture)
    spec = Spec.model_validate(
        {
            "name": "h",
            "dataset": {
                "source": "csv", "path": str(price_csv), "target": ["Open", "Close"],
                "features": ["Open", "Close"], "seq_len": 10, "horizon": horizon, "scaler": "standard",
            },
            "model": {"name": "gru", "hidden_size": 4},
            "train": {"epochs": 1},
        }
    )  # fmt: skip
    result = run_experiment(spec, tmp_path / "results")
    assert len(drawn["predictions"]) == result.metrics["test_windows"] * horizon * 2
    if horizon == 1:
        assert drawn["horizon"] is None
        return
    view = drawn["horizon"]
    assert isinstance(view, HorizonForecasts) and view.series == "Close"
    assert list(view.forecasts) == list(view.step_error) == ["model", "persistence", "seasonal", "linear"]
    for name, scores in result.metrics["scaled"].items():
        assert np.mean(view.step_error[name]) == pytest.approx(scores["mse"], rel=1e-9)
    saved = drawn["predictions"]
    last = saved[(saved["series"] == "Close") & (saved["date"] == saved["date"].iloc[-1])]
    assert view.forecasts["model"][-1, -1] == last["prediction"].iloc[-1]
