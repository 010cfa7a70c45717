"""The long-horizon protocol: row-count splits, instance normalisation, channel independence,
seasonal persistence and scores in scaler units; checked on ETTh1 itself where the shared file is."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqbench.baselines import linear_forecast
from seqbench.data.windows import default_season, make_windows
from seqbench.errors import DataError
from seqbench.spec import DatasetSpec, Spec, config_id

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SEQBENCH_SHARED", REPO.parent / "shared"))
ETTH1 = SHARED / "data" / "ETTh1.csv"
ETT_SPLIT = {"train": 8640, "val": 2880, "test": 2880}


def frame(n=300, columns=("a", "b", "c"), freq="h", seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    values = (
        10
        + np.sin(2 * np.pi * t / 24) * np.arange(1, len(columns) + 1)
        + rng.normal(0, 0.1, (n, len(columns)))
    )
    index = pd.date_range("2020-01-01", periods=n, freq=freq, name="date")
    return pd.DataFrame(values, columns=list(columns), index=index)


def spec(**kw):
    base = {
        "seq_len": 48,
        "horizon": 12,
        "scaler": "standard",
        "split": {"train": 200, "val": 40, "test": 40},
    }
    return DatasetSpec(source="csv", path="x", **{**base, **kw})


def scores(w, forecast):
    error = w.to_scaled(forecast) - w.to_scaled(w.truth("test"))
    return float(np.mean(error**2)), float(np.mean(np.abs(error)))


@pytest.mark.parametrize("normalize", ["global", "window", "instance"])
@pytest.mark.parametrize("channels", ["mixed", "independent"])
def test_model_space_maps_back_exactly(normalize, channels):
    cols = ["a", "b", "c"]
    w = make_windows(frame(), cols, cols, spec(normalize=normalize, channels=channels))
    n = len(w.test.origin)
    assert n == 40 - 12 + 1
    assert len(w.test.x) == (3 * n if channels == "independent" else n)
    assert np.allclose(w.to_original("test", w.test.y), w.truth("test"))


@pytest.mark.parametrize("channels", ["mixed", "independent"])
def test_instance_normalisation_weights_the_loss_into_scaled_units(channels):
    """RevIN's loss is taken after undoing the normalisation: the weighted MSE on normalised targets
    is the MSE in scaled units, so a flat window (tiny std) cannot blow the loss up."""
    cols = ["a", "b", "c"]
    w = make_windows(frame(), cols, cols, spec(normalize="instance", channels=channels))
    for split in ("train", "val", "test"):
        windows = w.split(split)
        assert windows.weight is not None and windows.weight.shape == windows.y.shape
    forecast = w.test.y + np.random.default_rng(1).normal(0, 0.3, w.test.y.shape)
    weighted = float(np.mean(w.test.weight * (forecast - w.test.y) ** 2))
    assert weighted == pytest.approx(scores(w, w.to_original("test", forecast))[0], rel=1e-9)
    assert make_windows(frame(), cols, cols, spec(channels=channels)).test.weight is None


def test_instance_normalisation_is_per_channel_mean_and_std():
    cols = ["a", "b", "c"]
    w = make_windows(frame(), cols, cols, spec(normalize="instance"))
    assert np.allclose(w.test.x.mean(axis=1), 0, atol=1e-9)
    assert np.allclose(w.test.x.std(axis=1), 1, atol=1e-3)


def test_independent_channels_share_one_univariate_window_layout():
    cols = ["a", "b", "c"]
    mixed = make_windows(frame(), cols, cols, spec())
    alone = make_windows(frame(), cols, cols, spec(channels="independent"))
    assert alone.test.x.shape == (3 * len(mixed.test.x), 48, 1)
    assert np.array_equal(alone.test.x[1::3, :, 0], mixed.test.x[:, :, 1])  # window 0's b, window 1's b, ...


def test_independent_channels_need_the_targets_as_features():
    with pytest.raises(DataError, match=r"must be dataset\.target"):
        make_windows(frame(), ["a", "b"], ["a"], spec(channels="independent"))


def test_seasonal_persistence_repeats_the_last_season():
    cols = ["a"]
    w = make_windows(frame(columns=cols), cols, cols, spec(season=5))
    origin = w.test.origin[0]
    expected = w.raw_targets[origin - 4 : origin + 1]  # the last 5 rows
    assert np.array_equal(w.seasonal("test")[0], np.concatenate([expected, expected, expected[:2]]))


@pytest.mark.parametrize(("freq", "season"), [("h", 24), ("15min", 96), ("D", 7), ("B", 5), ("W", 1)])
def test_default_season_is_a_day_or_a_week(freq, season):
    assert default_season(pd.date_range("2020-01-01", periods=50, freq=freq)) == season


def test_a_seasonal_series_is_forecast_well_by_seasonal_persistence_and_channel_independent_ridge():
    cols = ["a", "b", "c"]
    w = make_windows(frame(), cols, cols, spec(normalize="instance", channels="independent"))
    assert w.season == 24
    persistence, seasonal = scores(w, w.persistence("test")), scores(w, w.seasonal("test"))
    assert seasonal[0] < persistence[0] / 10
    assert scores(w, linear_forecast(w, "test"))[0] < persistence[0] / 10


def test_the_new_keys_at_their_defaults_keep_config_ids():
    plain = {"dataset": {"name": "sp500"}, "model": {"name": "gru", "hidden_size": 32}}
    assert config_id(Spec.model_validate(plain)) == "c76b2ff4a064"
    other = {**plain, "dataset": {"name": "sp500", "channels": "independent"}}
    assert config_id(Spec.model_validate(other)) != "c76b2ff4a064"


@pytest.fixture(scope="module")
def etth1():
    if not ETTH1.is_file():
        pytest.skip(f"ETTh1 is not at {ETTH1} (set SEQBENCH_SHARED to the shared/ folder)")
    df = pd.read_csv(ETTH1, index_col="date", parse_dates=True)
    return df, list(df.columns)


def ett_windows(etth1, **kw):
    df, cols = etth1
    ds = DatasetSpec(
        source="csv",
        path=str(ETTH1),
        target=cols,
        seq_len=96,
        horizon=96,
        split=ETT_SPLIT,
        scaler="standard",
        **kw,
    )
    return make_windows(df, cols, cols, ds)


def test_etth1_has_the_published_window_counts(etth1):
    w = ett_windows(etth1)
    assert (len(w.train.x), len(w.val.x), len(w.test.x)) == (8449, 2785, 2785)
    assert w.season == 24 and w.test.x.shape == (2785, 96, 7)


def test_etth1_baselines_land_on_the_protocol_check(etth1):
    w = ett_windows(etth1)
    assert scores(w, w.persistence("test")) == pytest.approx((1.294, 0.713), abs=1e-3)
    assert scores(w, w.seasonal("test")) == pytest.approx((0.512, 0.433), abs=1e-3)
    rlinear = ett_windows(etth1, normalize="instance", channels="independent")
    # weighted ridge (the loss the protocol scores), alpha chosen on val: RLinear's published 0.386 / 0.395
    assert scores(rlinear, linear_forecast(rlinear, "test")) == pytest.approx((0.384, 0.392), abs=1e-3)


def test_row_counts_at_a_step_scale_with_the_data_step():
    cols = ["a"]
    split = {"train": 50, "val": 10, "test": 10, "step": "h"}
    hourly = make_windows(frame(columns=cols), cols, cols, spec(seq_len=8, horizon=4, split=split))
    quarter = make_windows(
        frame(columns=cols, freq="15min"), cols, cols, spec(seq_len=8, horizon=4, split=split)
    )
    assert hourly.split_rows["test"] == (60, 70)
    assert quarter.split_rows == {"train": (0, 200), "val": (200, 240), "test": (240, 280)}
    with pytest.raises(DataError, match="not a whole fraction"):
        make_windows(frame(columns=cols, freq="D"), cols, cols, spec(seq_len=8, horizon=4, split=split))


def test_the_ett_spec_trains_offline_and_records_the_protocol(tmp_path, model="mingru"):
    """As the README runs it (`--set dataset.path=...`, here at horizon 24 so its files stay small; 96
    is the benchmark's quick test's), on a synthetic 7-channel hourly file of ETTh1's length, cut
    short (the other models' specs: the 15-minute test below, on fewer rows)."""
    from seqbench.run.experiment import run_experiment
    from seqbench.spec import load_spec

    cols = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    path = tmp_path / "ETTh1.csv"
    frame(n=14_400, columns=cols).to_csv(path)
    overrides = [
        f"dataset.path={path}", "dataset.horizon=24", "train.epochs=1", "model.hidden_size=4",
        "train.batch_size=4096",
    ]  # fmt: skip
    spec = load_spec(REPO / "experiments" / f"ett_{model}.yaml", overrides)
    result = run_experiment(spec, tmp_path / "results")
    assert result.status == "completed", result.message
    m = result.metrics
    assert m["test_windows"] == 2880 - 24 + 1
    assert set(m["scaled"]) == {"model", "persistence", "seasonal", "linear"}
    assert m["config"]["season"] == 24 and m["scaled"]["seasonal"]["mse"] < m["scaled"]["persistence"]["mse"]


@pytest.mark.parametrize("model", ["mingru", "gru", "mamba"])
def test_the_ett_specs_run_unchanged_on_15_minute_rows(tmp_path, model):
    """ETTm1 / ETTm2 are 15-minute files: the same spec reads 4 rows per hour of its split (here cut to
    480 / 120 / 120 hours so the test stays small) and a day of 96 rows as the season."""
    from seqbench.run.experiment import run_experiment
    from seqbench.spec import load_spec

    cols = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    path = tmp_path / "ETTm1.csv"
    frame(n=4 * 720, columns=cols, freq="15min").to_csv(path)
    overrides = [
        f"dataset.path={path}", "train.epochs=1", "model.hidden_size=4",
        "dataset.split={train: 480, val: 120, test: 120, step: h}",
    ]  # fmt: skip
    spec = load_spec(REPO / "experiments" / f"ett_{model}.yaml", overrides)
    result = run_experiment(spec, tmp_path / "results")
    assert result.status == "completed", result.message
    m = result.metrics
    assert m["splits"]["test"]["rows"] == [4 * 600, 4 * 720]
    assert m["test_windows"] == 4 * 120 - 96 + 1 and m["config"]["season"] == 96


def test_the_log_counts_windows_as_the_docs_do_and_says_the_channels_fold_into_rows():
    """docs/forecasting.md says 8,449 / 2,785 / 2,785 windows at input and horizon 96; a run with
    channels independent feeds the model 7 rows per window (59,143 training rows): its log says both."""
    from types import SimpleNamespace

    from seqbench.tasks.forecast import ForecastTask

    cols = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    df = frame(n=14_400, columns=cols)
    kw = {"seq_len": 96, "horizon": 96, "split": ETT_SPLIT, "normalize": "instance"}
    run = SimpleNamespace(dataset=SimpleNamespace(label="ETTh1", fill="ffill"))
    loaded = SimpleNamespace(frame=df, info={"first_date": "2020-01-01", "last_date": "2021-08-22"})
    folded = make_windows(df, cols, cols, spec(**kw, channels="independent"))
    assert len(folded.train.x) == 59_143
    task = ForecastTask(run, Path("data"))
    task.loaded, task.data = loaded, folded
    (line,) = task.header()
    assert line.endswith("windows train 8449, val 2785, test 2785 (x 7 channels, one row each)")
    task.data = make_windows(df, cols, cols, spec(**kw))
    (line,) = task.header()
    assert line.endswith("windows train 8449, val 2785, test 2785")
