"""The baselines every result stands next to, on the same test windows as the model.

- persistence: tomorrow equals today (the last observed target, for every step);
- seasonal: seasonal persistence, the last `dataset.season` targets repeated (default: a day
  of sub-daily rows, a week of daily ones);
- linear: ridge regression from the flattened input window to the targets, fit on
  the training windows in the same model space as the network, mapped back the same way.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import Ridge

from seqbench.data.windows import Windows


def persistence_forecast(windows: Windows, split: str) -> np.ndarray:
    """(N, H, T) in original units."""
    return windows.persistence(split)


def seasonal_forecast(windows: Windows, split: str) -> np.ndarray:
    """(N, H, T) in original units."""
    return windows.seasonal(split)


def linear_forecast(windows: Windows, split: str, alpha: float = 1.0) -> np.ndarray:
    """Ridge on the training windows, forecasting `split`: (N, H, T) in original units."""
    train = windows.train
    model = Ridge(alpha=alpha).fit(train.x.reshape(len(train.x), -1), train.y)
    x = windows.split(split).x
    return windows.to_original(split, model.predict(x.reshape(len(x), -1)))


BASELINES = {"persistence": persistence_forecast, "seasonal": seasonal_forecast, "linear": linear_forecast}
