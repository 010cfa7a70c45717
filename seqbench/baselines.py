"""The baselines every result stands next to, on the same test windows as the model.

- persistence: tomorrow equals today (the last observed target, for every step);
- seasonal: seasonal persistence, the last `dataset.season` targets repeated (default: a day
  of sub-daily rows, a week of daily ones);
- linear: ridge regression from the flattened input window to the targets, fit on the training
  windows in the same model space as the network, with the loss the network minimises (under RevIN,
  each window weighted by its scale squared: the MSE in the scaler's units, the papers' RLinear),
  its penalty chosen on the validation windows; mapped back the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import Ridge

from seqbench.data.windows import Windows


def persistence_forecast(windows: Windows, split: str) -> np.ndarray:
    """(N, H, T) in original units."""
    return windows.persistence(split)


def seasonal_forecast(windows: Windows, split: str) -> np.ndarray:
    """(N, H, T) in original units."""
    return windows.seasonal(split)


# the ridge penalties tried on the validation windows (sklearn's alpha: a sum of squares, not a mean)
RIDGE_ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4, 1e5)


@dataclass(frozen=True)
class LinearFit:
    """The ridge baseline as fit: one model per group of outputs that share a loss weight."""

    alpha: float  # chosen on the validation windows
    val_loss: float  # its (weighted) validation MSE in model space, the loss the models are scored on
    weighted: bool  # fit with each window's loss weight (its scale squared under RevIN)
    models: tuple[tuple[np.ndarray, Ridge], ...]  # (output columns, fitted ridge)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Windows (N, L, F) -> model-space forecasts (N, O)."""
        flat = x.reshape(len(x), -1)
        out = np.empty((len(x), sum(len(columns) for columns, _ in self.models)))
        for columns, model in self.models:
            out[:, columns] = model.predict(flat).reshape(len(x), -1)
        return out

    def record(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "chosen_on": "val", "val_loss": self.val_loss, "weighted": self.weighted}


def weight_groups(windows: Windows, n_outputs: int) -> list[np.ndarray]:
    """Output columns that share one loss weight per window: all of them, or (under RevIN with the
    channels mixed, where each target has its own scale) the columns of each target."""
    if windows.train.weight is None or windows.independent:
        return [np.arange(n_outputs)]
    T = len(windows.targets)
    return [np.arange(t, n_outputs, T) for t in range(T)]  # horizon-major: column h T + t


def fit_linear(windows: Windows) -> LinearFit:
    """Ridge from the flattened window to the targets, in model space, fit on the training windows with
    the loss the models minimise (each window's weight, when the windows have one: RevIN's scale
    squared, so the fit minimises the MSE in the scaler's units as the protocol scores it), its
    penalty chosen among RIDGE_ALPHAS by the same loss on the validation windows. Cached per windows."""
    cached = windows.fitted.get("linear")
    if cached is not None:
        return cached
    train, val = windows.train, windows.val
    x, xv = train.x.reshape(len(train.x), -1), val.x.reshape(len(val.x), -1)
    groups = weight_groups(windows, train.y.shape[1])
    best: LinearFit | None = None
    for alpha in RIDGE_ALPHAS:
        models, loss = [], 0.0
        for columns in groups:
            w = None if train.weight is None else train.weight[:, columns[0]]
            model = Ridge(alpha=alpha).fit(x, train.y[:, columns], sample_weight=w)
            error = (model.predict(xv).reshape(len(xv), -1) - val.y[:, columns]) ** 2  # (Nv, columns)
            loss += float(np.sum(error if val.weight is None else val.weight[:, columns] * error))
            models.append((columns, model))
        loss /= val.y.size
        if best is None or loss < best.val_loss:
            best = LinearFit(alpha, loss, train.weight is not None, tuple(models))
    windows.fitted["linear"] = best
    return best


def linear_forecast(windows: Windows, split: str) -> np.ndarray:
    """The ridge baseline (`fit_linear`) forecasting `split`: (N, H, T) in original units."""
    return windows.to_original(split, fit_linear(windows).predict(windows.split(split).x))


BASELINES = {"persistence": persistence_forecast, "seasonal": seasonal_forecast, "linear": linear_forecast}
