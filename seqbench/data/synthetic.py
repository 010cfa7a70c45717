"""Seeded synthetic series for tests and sanity checks: same (length, seed), same frame.

Each generator returns a frame with one column, `value`, on a DatetimeIndex named "date"
starting 2000-01-01, one row per `freq` (a pandas frequency: "D" daily, "B" business days,
"h" hourly, "15min", ...):
- `sine`: a noisy sine with period 25 steps;
- `ar`: a stationary AR(10) process, y_t = -0.6 y_{t-1} - 0.5 y_{t-5} - 0.2 y_{t-10} + 0.1 e_t
  (largest root modulus ~0.92); it oscillates, so persistence is ~4x worse than the
  process noise that a model which remembers 10 steps can reach;
- `random_walk`: a positive price-like path, 100 * exp(cumsum(0.01 e_t)).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

DEFAULT_TARGET = "value"
START = "2000-01-01"
AR_COEFFICIENTS = {1: -0.6, 5: -0.5, 10: -0.2}  # lag -> coefficient; stationary
AR_BURN_IN = 500


def _frame(values: np.ndarray, freq: str) -> pd.DataFrame:
    index = pd.date_range(START, periods=len(values), freq=freq, name="date")
    return pd.DataFrame({DEFAULT_TARGET: values.astype(np.float64)}, index=index)


def sine(length: int, seed: int, freq: str = "D") -> pd.DataFrame:
    """sin(2 pi t / 25) plus Gaussian noise with standard deviation 0.1."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return _frame(np.sin(2 * np.pi * t / 25) + 0.1 * rng.standard_normal(length), freq)


def ar(length: int, seed: int, freq: str = "D") -> pd.DataFrame:
    """A stationary autoregression with lags 1, 5 and 10 (see AR_COEFFICIENTS), noise 0.1."""
    rng = np.random.default_rng(seed)
    noise = 0.1 * rng.standard_normal(length + AR_BURN_IN)
    y = np.zeros(length + AR_BURN_IN)
    p = max(AR_COEFFICIENTS)
    for t in range(p, len(y)):
        y[t] = sum(a * y[t - lag] for lag, a in AR_COEFFICIENTS.items()) + noise[t]
    return _frame(y[AR_BURN_IN:], freq)


def random_walk(length: int, seed: int, freq: str = "D") -> pd.DataFrame:
    """A geometric random walk starting near 100: 100 * exp(cumsum(0.01 * N(0, 1)))."""
    rng = np.random.default_rng(seed)
    return _frame(100.0 * np.exp(np.cumsum(0.01 * rng.standard_normal(length))), freq)


GENERATORS: dict[str, Callable[[int, int, str], pd.DataFrame]] = {
    "sine": sine,
    "ar": ar,
    "random_walk": random_walk,
}
