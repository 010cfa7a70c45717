"""Forecast error metrics, computed over every window, step and target series."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score


def regression_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, last: np.ndarray | None = None
) -> dict[str, float]:
    """MSE, RMSE, MAE, R2; with `last` (the last observed values) also MAPE and direction accuracy.

    y_true, y_pred, last: arrays of one shape, e.g. (N, H, T). MAPE is in percent over the
    entries whose true value is not 0; direction accuracy is the share of entries where the
    forecast moves from `last` in the same direction as the truth (NaN for a flat forecast).
    """
    t, p = np.ravel(y_true).astype(np.float64), np.ravel(y_pred).astype(np.float64)
    mse = float(mean_squared_error(t, p))
    out = {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(mean_absolute_error(t, p)),
        "r2": float(r2_score(t, p)) if len(t) > 1 else float("nan"),
    }
    if last is not None:
        nonzero = np.abs(t) > 1e-12
        out["mape"] = (
            float(np.mean(np.abs((t - p)[nonzero] / t[nonzero])) * 100) if nonzero.any() else float("nan")
        )
        base = np.ravel(last).astype(np.float64)
        moves = np.sign(p - base)
        # a forecast that never moves (persistence) has no direction to score
        out["direction_accuracy"] = (
            float(np.mean(moves == np.sign(t - base))) if moves.any() else float("nan")
        )
    return out
