"""Finite-difference gradient checks for the NumPy models, in float64.

For a model with parameters theta and a random projection w of its output, the
scalar f(theta) = sum(w * model(x)) has analytic gradients from `backward(w)`;
each is compared with the central difference (f(theta + eps) - f(theta - eps)) / 2 eps.
Language models (`vocab_size`) are checked the same way on random token ids, their output
being the logits of every step; the embedding's gradient is checked like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqbench.models.numpy.forecasting import ForecastOptions
from seqbench.models.registry import model_class

# The finite differences below carry about 1e-12 of rounding and truncation noise on an O(1)
# function, so a gradient entry smaller than this floor is measured against the floor.
ERROR_FLOOR = 1e-5


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """max |a - n| / max(|a| + |n|, ERROR_FLOOR): 0 when both agree, 1 when one of them is 0."""
    scale = np.maximum(np.abs(analytic) + np.abs(numeric), ERROR_FLOOR)
    return float(np.max(np.abs(analytic - numeric) / scale)) if analytic.size else 0.0


def numeric_gradient(
    f: Callable[[], float],
    array: np.ndarray,
    eps: float = 1e-4,
    max_entries: int | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Five-point central differences of f with respect to entries of `array`.

        f'(x) = (f(x - 2e) - 8 f(x - e) + 8 f(x + e) - f(x + 2e)) / 12e + O(e^4)

    The fourth-order stencil lets e be 1e-4, where rounding noise stays near 1e-12.
    Entries are changed in place and restored. Returns (flat indices checked, their numeric
    gradients); `max_entries` samples a subset.
    """
    flat = array.reshape(-1)
    indices = np.arange(flat.size)
    if max_entries is not None and flat.size > max_entries:
        indices = (rng or np.random.default_rng(0)).choice(flat.size, max_entries, replace=False)
    grads = np.empty(len(indices))
    for j, i in enumerate(indices):
        old = flat[i]
        values = []
        for step in (-2, -1, 1, 2):
            flat[i] = old + step * eps
            values.append(f())
        flat[i] = old
        grads[j] = (values[0] - 8 * values[1] + 8 * values[2] - values[3]) / (12 * eps)
    return indices, grads


@dataclass
class GradCheckResult:
    model: str
    name: str  # parameter name, or "input"
    shape: tuple[int, ...]
    checked: int
    max_rel_error: float
    lm: bool = False  # a language model (token ids in, logits of every step out)
    forecast: bool = False  # with a forecast's input segments, segment decoder and skip path


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
    model_options: dict | None = None,
    vocab_size: int | None = None,
) -> list[GradCheckResult]:
    """Check every parameter gradient of NumPy model `name` against finite differences.

    The parameters are the model's initial ones plus N(0, 0.5) noise: at initialisation some
    paths (Mamba's small step sizes) have gradients near the finite-difference noise floor.
    With `vocab_size`, the model is a language model (n_features and output_size are V) fed
    random token ids (batch, seq_len), and w weighs its logits (batch, seq_len, V).
    """
    rng = np.random.default_rng(seed)
    if vocab_size is not None:
        n_features = output_size = vocab_size
    model = model_class(name, "numpy")(
        n_features,
        output_size,
        hidden_size=hidden_size,
        n_layers=n_layers,
        rng=rng,
        dtype=np.float64,
        **(model_options or {}),
        **({} if vocab_size is None else {"vocab_size": vocab_size}),
    )
    for param in model.params.values():
        param += rng.normal(0, 0.5, size=param.shape)
    if vocab_size is None:
        x = rng.normal(size=(batch, seq_len, n_features))
        w = rng.normal(size=(batch, output_size))
    else:
        x = rng.integers(0, vocab_size, size=(batch, seq_len))
        # scaled so that f stays about as large as a forecast's, where ERROR_FLOOR was set: its
        # rounding noise grows with its terms, and a sum over L x V logits has many more
        w = rng.normal(size=(batch, seq_len, vocab_size)) / np.sqrt(seq_len * vocab_size)

    def f() -> float:
        return float(np.sum(w * model.forward(x)[0]))

    _, caches = model.forward(x)
    grads = model.backward(w, caches)
    results = []
    for pname, param in model.params.items():
        state = rng.bit_generator.state  # the same sampled entries for both step sizes
        idx, coarse = numeric_gradient(f, param, eps=1e-3, max_entries=max_entries, rng=rng)
        rng.bit_generator.state = state
        _, fine = numeric_gradient(f, param, eps=1e-4, max_entries=max_entries, rng=rng)
        analytic = grads[pname].reshape(-1)[idx]
        # Two step sizes: the larger wins where rounding dominates (tiny gradients), the smaller
        # where curvature does. A wrong analytic gradient disagrees with both, so taking the
        # better of the two per entry removes finite-difference noise, not bugs.
        errors = [
            min(relative_error(analytic[[j]], coarse[[j]]), relative_error(analytic[[j]], fine[[j]]))
            for j in range(len(idx))
        ]
        worst = max(errors, default=0.0)
        results.append(GradCheckResult(name, pname, param.shape, len(idx), worst, vocab_size is not None))
    return results


# What `seqbench gradcheck` runs for every model: several steps of a small batch through a
# two-layer stack, and one step of one window (the edge case). Every entry is checked.
GRADCHECK_CONFIGS: tuple[dict[str, int], ...] = (
    {"batch": 3, "seq_len": 6, "n_layers": 2},
    {"batch": 1, "seq_len": 1, "n_layers": 1},
)
# And for a forecast model: its input in segments with the segment decoder and the skip path, and in
# segments with the head on the last state (dropout is off outside a training step).
FORECAST_CONFIGS: tuple[dict[str, Any], ...] = (
    {
        "batch": 3, "seq_len": 6, "n_layers": 2, "output_size": 4,
        "forecast": ForecastOptions(segment=2, decoder="segments", linear_skip=True, seq_len=6, horizon=4),
    },
    {"batch": 2, "seq_len": 6, "n_layers": 1, "forecast": ForecastOptions(segment=3, seq_len=6, horizon=2)},
)  # fmt: skip
# Small sizes for models with options beyond hidden_size, so that a full check stays quick.
GRADCHECK_OPTIONS: dict[str, dict[str, int]] = {
    "mamba": {"state_size": 3, "expand": 2, "conv_kernel": 3, "dt_rank": 2},
}
# Settings that change a model's function: every one is checked (the worst of them is reported).
GRADCHECK_VARIANTS: dict[str, tuple[dict[str, str], ...]] = {
    "mamba": ({"discretization": "delta_b"}, {"discretization": "zoh"}),
}


# The vocabulary of the language models `gradcheck_models(..., lm=True)` checks: small, and more
# than the positions of a batch, so that some embedding rows get no gradient (they must get 0).
GRADCHECK_VOCAB = 7


def gradcheck_models(
    names: list[str], hidden_size: int = 4, lm: bool = False, forecast: bool = False
) -> list[GradCheckResult]:
    """Every parameter of every model in `names`, checked in full under GRADCHECK_CONFIGS
    (and each of its GRADCHECK_VARIANTS).

    One result per (model, parameter): entries checked summed over the configurations, and
    the worst relative error among them. An unknown name raises SeqbenchError before any work.
    With `lm`, the models are language models over GRADCHECK_VOCAB tokens instead; with `forecast`,
    forecast models with the options of FORECAST_CONFIGS.
    """
    for name in names:
        model_class(name, "numpy")
    worst: dict[tuple[str, str], GradCheckResult] = {}
    runs = [
        (name, config, {**GRADCHECK_OPTIONS.get(name, {}), **variant})
        for name in names
        for variant in GRADCHECK_VARIANTS.get(name, ({},))
        for config in (FORECAST_CONFIGS if forecast else GRADCHECK_CONFIGS)
    ]
    for name, config, options in runs:
        config = dict(config)
        if "forecast" in config:
            options = {**options, "forecast": config.pop("forecast")}
        for r in check_model(
            name,
            hidden_size=hidden_size,
            max_entries=None,
            model_options=options or None,
            vocab_size=GRADCHECK_VOCAB if lm else None,
            **config,
        ):
            r.forecast = forecast
            seen = worst.get((name, r.name))
            if seen is None:
                worst[(name, r.name)] = r
            else:
                seen.checked += r.checked
                seen.max_rel_error = max(seen.max_rel_error, r.max_rel_error)
    return list(worst.values())


def gradcheck_all(model: str | None = None, lm: bool = False) -> list[GradCheckResult]:
    """`seqbench gradcheck`: every model (or `model`) as it is and with a forecast's options, and
    as a language model with `lm`."""
    from seqbench.models.registry import model_names

    names = [model] if model else model_names()
    results = gradcheck_models(names) + gradcheck_models(names, forecast=True)
    return results + (gradcheck_models(names, lm=True) if lm else [])


def raise_for_failures(results: list[GradCheckResult], tolerance: float) -> None:
    """RunFailed (exit 1) when some parameter's relative error is above `tolerance`."""
    from seqbench.errors import RunFailed

    failed = sum(r.max_rel_error > tolerance for r in results)
    if failed:
        raise RunFailed(f"gradient check failed: {failed} of {len(results)} parameters above {tolerance:g}")
