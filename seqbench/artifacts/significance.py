"""Is one forecast's test error different from another's beyond chance? The Diebold-Mariano test.

Diebold & Mariano (1995, "Comparing predictive accuracy") on the loss differential of two
forecasts of the same targets, with the small-sample correction of Harvey, Leybourne &
Newbold (1997, "Testing the equality of prediction mean squared errors"):

    d_t     = e1_t^2 - e2_t^2                     paired per-window squared errors, t = 1..n
    gamma_k = 1/n sum_{t>k} (d_t - dbar)(d_{t-k} - dbar)    autocovariance at lag k
    V       = (gamma_0 + 2 sum_{k=1}^{h-1} gamma_k) / n     long-run variance of dbar
    DM      = dbar / sqrt(V)
    DM*     = DM * sqrt((n + 1 - 2h + h(h-1)/n) / n)        HLN correction
    p       = 2 P(T_{n-1} > |DM*|)                          Student t with n - 1 degrees of freedom

h is the forecast horizon: the errors of h-step forecasts made from overlapping windows are
correlated up to lag h - 1, so the variance counts those autocovariances. A negative DM means
the first forecast has the smaller loss. A window's loss is the mean squared error over its
steps and target series, so the mean of d is the difference of the two test MSEs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from seqbench.artifacts.predictions_file import find_forecasts, read_forecasts
from seqbench.errors import SeqbenchError, brief

KEYS = ["date", "series", "step"]  # one forecast in predictions.csv


@dataclass
class DMResult:
    """The test of forecast 1 against forecast 2 (statistic < 0: forecast 1 has the smaller loss)."""

    statistic: float  # DM*, HLN-corrected; 0 when the losses are identical
    p_value: float  # two-sided; 1 when the losses are identical
    n: int  # paired windows
    h: int  # horizon: autocovariances up to lag h - 1
    mean_loss_diff: float  # dbar = MSE 1 - MSE 2

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def autocovariance(d: np.ndarray, lag: int) -> float:
    """gamma_k = 1/n sum_{t=k+1}^{n} (d_t - dbar)(d_{t-k} - dbar), the biased estimator DM uses."""
    n = len(d)
    centred = d - d.mean()
    return float(np.dot(centred[lag:], centred[: n - lag]) / n)


def diebold_mariano(loss1: np.ndarray, loss2: np.ndarray, h: int = 1) -> DMResult:
    """The HLN-corrected Diebold-Mariano test on paired losses (n,), in time order.

    Equal losses everywhere give statistic 0 and p = 1; a NaN or infinite loss gives NaN. A
    long-run variance that comes out zero or negative (possible with h > 1 on short samples)
    falls back to gamma_0 alone; if that is zero too, the differential is a nonzero constant:
    statistic +-inf, p = 0.
    """
    loss1, loss2 = np.asarray(loss1, dtype=np.float64), np.asarray(loss2, dtype=np.float64)
    if loss1.shape != loss2.shape or loss1.ndim != 1:
        raise ValueError(f"paired losses must be 1-D arrays of one length, got {loss1.shape}, {loss2.shape}")
    n = len(loss1)
    if n < 2:
        raise ValueError(f"the Diebold-Mariano test needs at least 2 paired losses, got {n}")
    if h < 1:
        raise ValueError(f"horizon h must be >= 1, got {h}")
    d = loss1 - loss2  # (n,) loss differential
    dbar = float(d.mean())
    if not np.isfinite(d).all():  # e.g. a diverged run's NaN forecasts: no test
        return DMResult(math.nan, math.nan, n, h, dbar)
    if not np.any(d):
        return DMResult(0.0, 1.0, n, h, 0.0)
    gamma = [autocovariance(d, k) for k in range(min(h, n))]  # lags 0 .. h-1
    variance = (gamma[0] + 2 * sum(gamma[1:])) / n
    if variance <= 0:
        variance = gamma[0] / n
    if variance <= 0:
        return DMResult(math.copysign(math.inf, dbar), 0.0, n, h, dbar)
    dm = dbar / math.sqrt(variance)
    correction = math.sqrt(max(n + 1 - 2 * h + h * (h - 1) / n, 0.0) / n)
    statistic = dm * correction
    p_value = float(2 * stats.t.sf(abs(statistic), df=n - 1))
    return DMResult(float(statistic), p_value, n, h, dbar)


def window_losses(truth: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """Squared error per window, averaged over its steps and series: (N, H, T) -> (N,)."""
    err = np.asarray(forecast, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    return (err * err).reshape(len(err), -1).mean(axis=1)


def dm_against_baselines(
    truth: np.ndarray, forecast: np.ndarray, baselines: dict[str, np.ndarray]
) -> dict[str, dict[str, Any]]:
    """metrics.json's `significance`: the model's test forecast (N, H, T) against each baseline's."""
    h = truth.shape[1]
    model_loss = window_losses(truth, forecast)
    out: dict[str, dict[str, Any]] = {}
    for name, baseline in baselines.items():
        if len(model_loss) < 2:
            continue
        out[name] = diebold_mariano(model_loss, window_losses(truth, baseline), h).as_dict()
    return out


# --- from predictions.csv (or .csv.xz) --------------------------------------------------------


def read_predictions(run_dir: str | Path) -> pd.DataFrame:
    """A run's predictions.csv (or .csv.xz), with `window`: the first target date of the window
    each row is from.

    Rows are window by window (steps, then series, within a window), so a window is a block of
    (max step x series) consecutive rows.
    """
    frame = read_forecasts(run_dir)
    missing = [c for c in [*KEYS, "target", "prediction"] if c not in frame.columns]
    if missing:
        path = find_forecasts(run_dir)
        raise SeqbenchError(f"{path} has no column '{missing[0]}'; it was not written by seqbench train")
    _check_numbers(frame, run_dir)
    per_window = int(frame["step"].max()) * frame["series"].nunique() if len(frame) else 1
    frame["window"] = frame["date"].to_numpy()[(np.arange(len(frame)) // per_window) * per_window]
    return frame


def _check_numbers(frame: pd.DataFrame, run_dir: str | Path) -> None:
    """Numbers where seqbench wrote them, in place (a hand-edited or damaged file holds text): `step`
    whole numbers from 1; targets and forecasts numbers or empty."""
    for column in ("step", "target", "prediction", "persistence", "linear"):
        if column not in frame.columns:
            continue
        values = frame[column]
        numbers = (
            pd.Series(np.nan, index=values.index)
            if pd.api.types.is_bool_dtype(values)
            else pd.to_numeric(values, errors="coerce")
        )
        whole = (numbers >= 1) & (numbers % 1 == 0)
        bad = ~whole if column == "step" else numbers.isna() & values.notna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            what = "a whole number from 1" if column == "step" else "a number"
            raise SeqbenchError(
                f"{find_forecasts(run_dir)}: column '{column}' holds {brief(values.iloc[row])} in row "
                f"{row + 1}, not {what}; the file was not written by seqbench train, or is damaged"
            )
        frame[column] = numbers.astype(np.int64) if column == "step" else numbers


def paired_losses(
    first: pd.DataFrame, second: pd.DataFrame, col1: str = "prediction", col2: str = "prediction"
) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-window squared errors of `col1` in `first` and `col2` in `second`, on the forecasts both have.

    Rows pair by (date, series, step) where both hold the same true target (so that two runs on
    different series with the same dates do not pair); a window's loss is the mean over its
    paired rows. Returns (loss1, loss2, h) in time order, h the largest paired step.
    """
    left = first[[*KEYS, "window", "target", col1]].rename(columns={col1: "f1", "target": "t1"})
    right = second[[*KEYS, "target", col2]].rename(columns={col2: "f2", "target": "t2"})
    both = left.merge(right, on=KEYS, how="inner")
    both = both[np.isclose(both["t1"], both["t2"], rtol=1e-9, atol=0.0)]
    if both.empty:
        return np.zeros(0), np.zeros(0), 1
    both["l1"] = (both["f1"] - both["t1"]) ** 2
    both["l2"] = (both["f2"] - both["t2"]) ** 2
    per_window = both.groupby("window", sort=True)[["l1", "l2"]].mean()
    return per_window["l1"].to_numpy(), per_window["l2"].to_numpy(), int(both["step"].max())


def dm_vs_persistence(run_dir: str | Path) -> DMResult | None:
    """The run's model against persistence, from its predictions.csv; None without enough rows."""
    frame = read_predictions(run_dir)
    if "persistence" not in frame.columns:
        return None
    loss1, loss2, h = paired_losses(frame, frame, "prediction", "persistence")
    return diebold_mariano(loss1, loss2, h) if len(loss1) >= 2 else None


def dm_between_runs(run_dir: str | Path, other_dir: str | Path) -> DMResult:
    """Run `run_dir`'s test forecasts against `other_dir`'s, on the windows both have.

    A SeqbenchError when they share fewer than 2 windows (different data, dates or targets).
    """
    loss1, loss2, h = paired_losses(read_predictions(run_dir), read_predictions(other_dir))
    if len(loss1) < 2:
        raise SeqbenchError(
            f"--against: {run_dir} and {other_dir} share {len(loss1)} test forecasts (same date, series, "
            "step and target), too few for the Diebold-Mariano test; compare runs on the same data"
        )
    return diebold_mariano(loss1, loss2, h)
