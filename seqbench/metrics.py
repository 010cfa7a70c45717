"""Forecast error metrics, computed over every window, step and target series."""

from __future__ import annotations

import numpy as np


def regression_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, last: np.ndarray | None = None
) -> dict[str, float]:
    """MSE, RMSE, MAE, R2; with `last` (the last observed values) also MAPE and direction accuracy.

    y_true, y_pred, last: arrays of one shape, e.g. (N, H, T). MAPE is in percent over the
    entries whose true value is not 0; direction accuracy is the share of entries where the
    forecast moves from `last` in the same direction as the truth (NaN for a flat forecast).
    """
    t, p = np.ravel(y_true).astype(np.float64), np.ravel(y_pred).astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a non-finite forecast scores NaN
        error = t - p
        mse = float(np.mean(error**2))
        total = float(np.sum((t - t.mean()) ** 2))
        out = {
            "mse": mse,
            "rmse": float(np.sqrt(mse)),
            "mae": float(np.mean(np.abs(error))),
            # R2 as scikit-learn defines it; undefined (NaN) for one value or a constant truth
            "r2": 1.0 - float(np.sum(error**2)) / total if len(t) > 1 and total > 0 else float("nan"),
        }
    out = {key: value if np.isfinite(value) else float("nan") for key, value in out.items()}
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
