"""Synthetic generators: deterministic, well-formed, and with the structure each one promises."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seqbench.data.synthetic import AR_COEFFICIENTS, DEFAULT_TARGET, GENERATORS


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_same_length_and_seed_give_the_same_frame(name):
    generate = GENERATORS[name]
    pd.testing.assert_frame_equal(generate(300, 7), generate(300, 7))
    assert not generate(300, 7).equals(generate(300, 8))


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_frame_shape_index_and_column(name):
    frame = GENERATORS[name](123, 0)
    assert list(frame.columns) == [DEFAULT_TARGET] == ["value"]
    assert frame.shape == (123, 1)
    assert frame["value"].dtype == np.float64
    assert frame.index.name == "date"
    assert frame.index[0] == pd.Timestamp("2000-01-01")
    assert (frame.index[1:] - frame.index[:-1] == pd.Timedelta(days=1)).all()
    assert np.isfinite(frame["value"]).all()


def lag_correlation(values: np.ndarray, lag: int) -> float:
    return float(np.corrcoef(values[:-lag], values[lag:])[0, 1])


def test_sine_has_period_25():
    values = GENERATORS["sine"](2000, 0)["value"].to_numpy()
    assert lag_correlation(values, 25) > 0.9
    assert lag_correlation(values, 12) < -0.8  # half a period away


def test_random_walk_is_positive_and_starts_near_100():
    values = GENERATORS["random_walk"](5000, 3)["value"].to_numpy()
    assert (values > 0).all()
    assert 95 < values[0] < 105
    log_steps = np.diff(np.log(values))
    assert log_steps.std() == pytest.approx(0.01, rel=0.05)


def test_ar_is_stationary():
    companion = np.zeros((10, 10))
    for lag, a in AR_COEFFICIENTS.items():
        companion[0, lag - 1] = a
    companion[1:, :-1] = np.eye(9)
    assert np.abs(np.linalg.eigvals(companion)).max() < 0.95
    values = GENERATORS["ar"](20_000, 0)["value"].to_numpy()
    first, second = values[:10_000], values[10_000:]
    assert first.std() == pytest.approx(second.std(), rel=0.1)
    assert np.abs(values).max() < 2
    assert (values[:10] != 0).all()  # burnt in: no trace of the zero start


def test_ar_rewards_memory_over_persistence():
    values = GENERATORS["ar"](5000, 1)["value"].to_numpy()
    target = values[10:]
    persistence_rmse = np.sqrt(np.mean((target - values[9:-1]) ** 2))
    lags = np.column_stack([values[10 - k : len(values) - k] for k in range(1, 11)])  # (N, 10)
    coef, *_ = np.linalg.lstsq(lags, target, rcond=None)
    memory_rmse = np.sqrt(np.mean((target - lags @ coef) ** 2))
    assert memory_rmse == pytest.approx(0.1, rel=0.1)  # the process noise
    assert persistence_rmse > 3 * memory_rmse
