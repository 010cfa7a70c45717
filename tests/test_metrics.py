import numpy as np
import pytest

from seqbench.metrics import regression_metrics


def test_metrics_against_hand_computed_values():
    t = np.array([1.0, 2.0, 4.0])
    p = np.array([2.0, 2.0, 2.0])
    last = np.array([0.0, 3.0, 3.0])
    m = regression_metrics(t, p, last)
    assert m["mse"] == pytest.approx((1 + 0 + 4) / 3)
    assert m["rmse"] == pytest.approx(np.sqrt(5 / 3))
    assert m["mae"] == pytest.approx(1.0)
    assert m["r2"] == pytest.approx(1 - 5 / np.sum((t - t.mean()) ** 2))
    assert m["mape"] == pytest.approx(100 * (1 + 0 + 0.5) / 3)
    # directions: up/up, down/down, up/down -> 2 of 3
    assert m["direction_accuracy"] == pytest.approx(2 / 3)


def test_mape_skips_zero_targets_and_perfect_forecast():
    t = np.array([0.0, 1.0, 2.0])
    m = regression_metrics(t, t, np.zeros(3))
    assert m["rmse"] == 0 and m["r2"] == 1 and m["mape"] == 0


def test_direction_accuracy_is_undefined_for_a_flat_forecast():
    last = np.array([1.0, 2.0])
    m = regression_metrics(np.array([2.0, 1.0]), last, last)
    assert np.isnan(m["direction_accuracy"])
