"""Property tests for splits and windows on random lengths, windows and split fractions.

Whatever the sizes: the splits partition the rows in time order; no window's target lies
outside its split (no leakage); every row that can be a first target is the first target
of exactly one window (every sample used once); inputs only look back; and the scaler never
sees a row after the training split.
"""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from seqbench.data.windows import SPLITS, make_windows, split_bounds
from seqbench.errors import DataError
from seqbench.spec import DatasetSpec

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def fractions(draw):
    train = draw(st.floats(0.05, 0.9))
    val = draw(st.floats(0.03, 0.97 - train))
    return (train, val, 1.0 - train - val)


@st.composite
def cases(draw):
    ds = DatasetSpec(
        source="synthetic",
        name="x",
        seq_len=draw(st.integers(1, 40)),
        horizon=draw(st.integers(1, 10)),
        split=draw(fractions()),
        transform=draw(st.sampled_from(["none", "diff", "log_return"])),
        normalize=draw(st.sampled_from(["global", "window"])),
        scaler=draw(st.sampled_from(["minmax", "standard", "none"])),
    )
    n_rows = draw(st.integers(10, 400))
    seed = draw(st.integers(0, 2**16))
    return n_rows, seed, ds


def prices(n_rows, seed):
    steps = np.random.default_rng(seed).normal(0, 0.02, size=(n_rows, 2))
    values = 100 * np.exp(np.cumsum(steps, axis=0))  # positive, never constant
    index = pd.date_range("2020-01-01", periods=n_rows, name="date")
    return pd.DataFrame(values, columns=["Close", "Open"], index=index)


@given(n_rows=st.integers(0, 10_000), split=fractions())
@SETTINGS
def test_split_bounds_partition_the_rows_in_time_order(n_rows, split):
    bounds = split_bounds(n_rows, split)
    assert bounds["train"][0] == 0 and bounds["test"][1] == n_rows
    assert bounds["train"][1] == bounds["val"][0] and bounds["val"][1] == bounds["test"][0]
    assert all(start <= end for start, end in bounds.values())


@given(cases())
@SETTINGS
def test_windows_never_leak_and_use_every_sample_once(case):
    n_rows, seed, ds = case
    frame = prices(n_rows, seed)
    first_row = 0 if ds.transform == "none" else 1
    bounds = split_bounds(n_rows, ds.split)
    try:
        w = make_windows(frame, ["Close", "Open"], ["Close"], ds, "prices")
    except DataError as exc:
        message = str(exc)
        assert message.startswith("prices: the ") and "too few for dataset." in message
        # only when some split really has no room for one window
        assert any(
            end - start < ds.horizon or end < first_row + ds.seq_len + ds.horizon
            for start, end in bounds.values()
        )
        return
    assert w.split_rows == bounds
    for name in SPLITS:
        start, end = bounds[name]
        origin = w.split(name).origin
        targets = origin[:, None] + np.arange(1, ds.horizon + 1)  # (N, H) row of each target
        inputs = origin[:, None] + np.arange(-ds.seq_len + 1, 1)  # (N, L) row of each input
        assert targets.min() >= start and targets.max() < end  # no target from another split
        assert inputs.min() >= first_row and (inputs.max(axis=1) < targets.min(axis=1)).all()  # only the past
        # every row that has seq_len rows of history and horizon rows ahead in the split is the
        # first target of exactly one window, in order
        first_possible = max(start, first_row + ds.seq_len)
        np.testing.assert_array_equal(origin + 1, np.arange(first_possible, end - ds.horizon + 1))
        if name != "train" and start >= first_row + ds.seq_len:  # val/test look back into earlier rows
            assert set(targets.reshape(-1)) == set(range(start, end))  # every row of the split is a target
        assert w.split(name).x.shape == (len(origin), ds.seq_len, 2)
        assert w.split(name).y.shape == (len(origin), ds.horizon)


@given(cases(), st.floats(0.1, 10))
@SETTINGS
def test_rows_after_the_training_split_never_change_the_training_windows(case, factor):
    n_rows, seed, ds = case
    frame = prices(n_rows, seed)
    try:
        before = make_windows(frame, ["Close", "Open"], ["Close"], ds)
    except DataError:
        assume(False)
    later = frame.copy()
    later.iloc[before.split_rows["train"][1] :] *= factor
    after = make_windows(later, ["Close", "Open"], ["Close"], ds)
    np.testing.assert_array_equal(before.train.x, after.train.x)
    np.testing.assert_array_equal(before.train.y, after.train.y)
    np.testing.assert_array_equal(before.target_center, after.target_center)
    np.testing.assert_array_equal(before.target_scale, after.target_scale)


@given(cases())
@SETTINGS
def test_model_space_targets_map_back_to_the_true_values(case):
    n_rows, seed, ds = case
    try:
        w = make_windows(prices(n_rows, seed), ["Close"], ["Close"], ds)
    except DataError:
        assume(False)
    for name in SPLITS:
        np.testing.assert_allclose(w.to_original(name, w.split(name).y), w.truth(name), rtol=1e-9)


@pytest.mark.parametrize("horizon", [1, 3])
def test_a_long_enough_series_uses_every_val_and_test_row(horizon):
    """The example the properties generalise: 200 rows, seq_len 10."""
    ds = DatasetSpec(source="synthetic", name="x", seq_len=10, horizon=horizon)
    w = make_windows(prices(200, 0), ["Close"], ["Close"], ds)
    for name in ("val", "test"):
        start, end = w.split_rows[name]
        assert list(w.split(name).origin + 1) == list(range(start, end - horizon + 1))
