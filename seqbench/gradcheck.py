"""Finite-difference gradient checks for the NumPy models, in float64.

For a model with parameters theta and a random projection w of its output, the
scalar f(theta) = sum(w * model(x)) has analytic gradients from `backward(w)`;
each is compared with the central difference (f(theta + eps) - f(theta - eps)) / 2 eps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from seqbench.models.registry import model_class


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """max |a - n| / max(|a| + |n|, floor): 0 when both agree, 1 when one of them is 0."""
    scale = np.maximum(np.abs(analytic) + np.abs(numeric), 1e-8)
    return float(np.max(np.abs(analytic - numeric) / scale)) if analytic.size else 0.0


def numeric_gradient(
    f: Callable[[], float],
    array: np.ndarray,
    eps: float = 1e-5,
    max_entries: int | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Central differences of f with respect to entries of `array` (changed in place, then restored).

    Returns (flat indices checked, their numeric gradients); `max_entries` samples a subset.
    """
    flat = array.reshape(-1)
    indices = np.arange(flat.size)
    if max_entries is not None and flat.size > max_entries:
        indices = (rng or np.random.default_rng(0)).choice(flat.size, max_entries, replace=False)
    grads = np.empty(len(indices))
    for j, i in enumerate(indices):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        grads[j] = (plus - minus) / (2 * eps)
    return indices, grads


@dataclass
class GradCheckResult:
    model: str
    name: str  # parameter name, or "input"
    shape: tuple[int, ...]
    checked: int
    max_rel_error: float


def check_model(
    name: str,
    batch: int = 3,
    seq_len: int = 5,
    n_features: int = 2,
    hidden_size: int = 4,
    output_size: int = 2,
    n_layers: int = 2,
    seed: int = 0,
    max_entries: int | None = 40,
) -> list[GradCheckResult]:
    """Check every parameter gradient of NumPy model `name` against finite differences."""
    rng = np.random.default_rng(seed)
    model = model_class(name, "numpy")(
        n_features, output_size, hidden_size=hidden_size, n_layers=n_layers, rng=rng, dtype=np.float64
    )
    x = rng.normal(size=(batch, seq_len, n_features))
    w = rng.normal(size=(batch, output_size))

    def f() -> float:
        return float(np.sum(w * model.forward(x)[0]))

    _, caches = model.forward(x)
    grads = model.backward(w, caches)
    results = []
    for pname, param in model.params.items():
        idx, numeric = numeric_gradient(f, param, max_entries=max_entries, rng=rng)
        error = relative_error(grads[pname].reshape(-1)[idx], numeric)
        results.append(GradCheckResult(name, pname, param.shape, len(idx), error))
    return results
