"""Splits, scaler and windows: chronological, fit on train only, no target from another split."""

import numpy as np
import pandas as pd
import pytest

from seqbench.data.windows import make_windows, split_bounds
from seqbench.errors import DataError
from seqbench.spec import DatasetSpec


def frame(n=200, seed=0, columns=("Close",)):
    rng = np.random.default_rng(seed)
    values = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, size=(n, len(columns))), axis=0))
    return pd.DataFrame(
        values, columns=list(columns), index=pd.date_range("2020-01-01", periods=n, name="date")
    )


def spec(**kw):
    return DatasetSpec(source="synthetic", name="x", **kw)


def test_split_bounds_are_chronological_and_cover_every_row():
    b = split_bounds(1000, (0.7, 0.15, 0.15))
    assert b == {"train": (0, 700), "val": (700, 850), "test": (850, 1000)}


@pytest.mark.parametrize("transform", ["none", "diff", "log_return"])
@pytest.mark.parametrize("normalize", ["global", "window"])
@pytest.mark.parametrize(("seq_len", "horizon"), [(1, 1), (5, 1), (10, 3)])
def test_targets_never_come_from_another_split(transform, normalize, seq_len, horizon):
    df = frame()
    w = make_windows(
        df,
        ["Close"],
        ["Close"],
        spec(seq_len=seq_len, horizon=horizon, transform=transform, normalize=normalize),
    )
    for name in ("train", "val", "test"):
        start, end = w.split_rows[name]
        target_rows = w.split(name).origin[:, None] + np.arange(1, horizon + 1)
        assert target_rows.min() >= start and target_rows.max() < end
        assert w.split(name).x.shape[1:] == (seq_len, 1)
        assert w.split(name).y.shape[1] == horizon
    # every target row of a split is the first target of some window (no sample skipped)
    test_first = w.test.origin + 1
    assert test_first[0] == w.split_rows["test"][0]
    assert test_first[-1] == w.split_rows["test"][1] - horizon


@pytest.mark.parametrize("transform", ["none", "diff", "log_return"])
@pytest.mark.parametrize("normalize", ["global", "window"])
def test_round_trip_model_space_to_original_units(transform, normalize):
    df = frame(columns=("Close", "Open"))
    w = make_windows(
        df,
        ["Close", "Open"],
        ["Close"],
        spec(seq_len=6, horizon=2, transform=transform, normalize=normalize, scaler="standard"),
    )
    np.testing.assert_allclose(w.to_original("test", w.test.y), w.truth("test"), rtol=1e-9)
    assert w.truth("test").shape == (len(w.test.x), 2, 1)


def test_scaler_sees_only_training_rows():
    """Changing validation and test data must not change a single training window."""
    df = frame(300)
    ds = spec(seq_len=5)
    before = make_windows(df, ["Close"], ["Close"], ds)
    altered = df.copy()
    n_train = before.split_rows["train"][1]
    altered.iloc[n_train:] *= 50  # a wild regime after the training period
    after = make_windows(altered, ["Close"], ["Close"], ds)
    np.testing.assert_array_equal(before.train.x, after.train.x)
    np.testing.assert_array_equal(before.train.y, after.train.y)
    np.testing.assert_array_equal(before.target_center, after.target_center)
    assert before.scaler_rows == (0, n_train)
    # and the training inputs lie in [0, 1] under minmax: the scaler was fit on exactly them
    assert before.train.x.min() >= 0 and before.train.x.max() <= 1


def test_minmax_scaled_training_rows_span_zero_to_one():
    w = make_windows(frame(), ["Close"], ["Close"], spec(seq_len=1))
    train_values = np.concatenate([w.train.x[:, 0, 0], w.train.y[:, 0]])
    assert train_values.min() == pytest.approx(0) and train_values.max() == pytest.approx(1)


def test_persistence_is_the_last_input_level():
    df = frame()
    w = make_windows(df, ["Close"], ["Close"], spec(seq_len=4, transform="log_return"))
    last_rows = w.test.origin
    np.testing.assert_array_equal(w.persistence("test")[:, 0, 0], df["Close"].to_numpy()[last_rows])


def test_too_short_split_is_a_clear_error():
    with pytest.raises(DataError, match=r"too few for dataset\.seq_len 80"):
        make_windows(frame(100), ["Close"], ["Close"], spec(seq_len=80))


def test_constant_training_column_is_named():
    df = frame()
    df["Flat"] = 1.0
    with pytest.raises(DataError, match="'Flat' is constant"):
        make_windows(df, ["Close", "Flat"], ["Close"], spec())


def test_log_return_refuses_non_positive_values():
    df = frame()
    df.iloc[10, 0] = -1
    with pytest.raises(DataError, match="positive"):
        make_windows(df, ["Close"], ["Close"], spec(transform="log_return"))


def test_row_count_split_takes_exact_rows_and_leaves_the_rest_unused():
    ds = spec(seq_len=10, horizon=5, split={"train": 100, "val": 40, "test": 40})
    w = make_windows(frame(n=200), ["Close"], ["Close"], ds)
    assert w.split_rows == {"train": (0, 100), "val": (100, 140), "test": (140, 180)}
    # val and test inputs look back into the previous split: rows - horizon + 1 windows each
    assert (len(w.train.x), len(w.val.x), len(w.test.x)) == (100 - 10 - 5 + 1, 40 - 5 + 1, 40 - 5 + 1)
    assert w.test.origin[-1] + 5 == 179 and len(w.raw_targets) == 180


def test_fraction_split_is_unchanged_by_row_counts():
    assert split_bounds(1000, (0.7, 0.15, 0.15)) == split_bounds(1000, spec().split)


def test_row_counts_beyond_the_data_are_one_clear_error():
    ds = spec(split={"train": 150, "val": 40, "test": 40})
    with pytest.raises(DataError, match=r"150 \+ 40 \+ 40 = 230 rows, the data has 200"):
        make_windows(frame(n=200), ["Close"], ["Close"], ds)


@pytest.mark.parametrize(
    ("split", "message"),
    [
        ({"train": 10, "val": 2}, "exactly the keys train, val and test"),
        ({"train": 0, "val": 1, "test": 1}, "whole number >= 1"),
        ({"train": 1.5, "val": 1, "test": 1}, "whole number >= 1"),
    ],
)
def test_bad_row_counts_are_refused(split, message):
    with pytest.raises(ValueError, match=message):
        spec(split=split)
