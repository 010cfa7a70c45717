"""Model registry: a model name and a backend -> the class that builds it.

Each entry is an import path, so that asking for one backend never imports
the other (torch stays optional).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import numpy as np

from seqbench.errors import SeqbenchError
from seqbench.models.numpy.forecasting import ForecastOptions

# name -> backend -> "module:Class"
MODELS: dict[str, dict[str, str]] = {
    "mingru": {
        "numpy": "seqbench.models.numpy.mingru:MinGRU",
        "torch": "seqbench.models.torch.mingru:MinGRU",
    },
    "gru": {
        "numpy": "seqbench.models.numpy.gru:GRU",
        "torch": "seqbench.models.torch.gru:GRU",
    },
    "mamba": {
        "numpy": "seqbench.models.numpy.mamba:Mamba",
        "torch": "seqbench.models.torch.mamba:Mamba",
    },
}

TORCH_HINT = "pip install 'seqbench[torch]' -c constraints.txt  (or: pip install torch)"


def torch_installed() -> bool:
    """Whether PyTorch can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a broken or blocked installation
        return False


def model_names() -> list[str]:
    return sorted(MODELS)


def model_class(name: str, backend: str) -> Any:
    """The class implementing `name` on `backend`; a clear SeqbenchError otherwise."""
    if name not in MODELS:
        raise SeqbenchError(f"unknown model '{name}'; choose one of: {', '.join(model_names())}")
    if backend == "torch" and not torch_installed():
        raise SeqbenchError(
            f"model.backend 'torch' needs PyTorch, which is not installed: {TORCH_HINT}; "
            "or use model.backend: numpy"
        )
    if backend not in MODELS[name]:
        have = ", ".join(sorted(MODELS[name]))
        raise SeqbenchError(f"model '{name}' has no '{backend}' backend yet; available: {have}")
    module_name, class_name = MODELS[name][backend].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def model_options(
    model_spec: Any, cls: Any, vocab_size: int | None = None, window: tuple[int, int] | None = None
) -> dict[str, Any]:
    """The constructor keywords beyond the common ones: the model's own spec keys, vocab_size, and a
    forecast's input and head settings (`forecast`, given the window's (seq_len, horizon))."""
    own = model_spec.options  # the model's section of the spec (model.mamba.*)
    options = {key: own[key] for key in cls.options if key in own}  # (no section: the class's defaults)
    if vocab_size is not None:
        options["vocab_size"] = vocab_size
    forecast = forecast_options(model_spec, *(window or (None, None)))
    if forecast is not None:
        options["forecast"] = forecast
    return options


def forecast_options(model_spec: Any, seq_len: int | None, horizon: int | None) -> ForecastOptions | None:
    """A forecast model's input and head settings from the spec's model section (None: all defaults,
    the model as it was before they existed). `seq_len` and `horizon` are the windows' sizes."""
    keys = ("segment", "decoder", "linear_skip", "dropout", "gate_init")
    given = {key: getattr(model_spec, key) for key in keys}
    if given == {key: getattr(ForecastOptions(), key) for key in keys}:
        return None
    return ForecastOptions(**given, seq_len=seq_len, horizon=horizon)


def build_model(
    model_spec: Any,
    n_features: int,
    n_outputs: int,
    seed: int,
    dtype: str | np.dtype,
    backend: str | None = None,
    vocab_size: int | None = None,
    window: tuple[int, int] | None = None,
) -> Any:
    """The model a spec's `model` section describes, weights drawn from `seed` (the same on either backend).

    `backend` overrides the section's own; `model_spec` is a `seqbench.spec.ModelSpec`. With
    `vocab_size`, the model is a language model over that many byte values (embedding in, logits
    at every step out). `window` is a forecast's (seq_len, horizon), which its segment decoder and
    skip path need.
    """
    cls = model_class(model_spec.name, backend or model_spec.backend)
    options = model_options(model_spec, cls, vocab_size, window)
    return cls(
        n_features,
        n_outputs,
        hidden_size=model_spec.hidden_size,
        n_layers=model_spec.n_layers,
        rng=np.random.default_rng(seed),
        dtype=np.dtype(dtype),
        **options,
    )


def count_weights(
    model_spec: Any,
    n_features: int,
    n_outputs: int,
    vocab_size: int | None = None,
    window: tuple[int, int] | None = None,
) -> int:
    """The weights `build_model` would draw for these arguments, on either backend (the same names
    and shapes), counted without building the model."""
    cls = model_class(model_spec.name, "numpy")
    options = model_options(model_spec, cls, vocab_size, window)
    return int(
        cls.count_weights(
            n_features, n_outputs, hidden_size=model_spec.hidden_size, n_layers=model_spec.n_layers, **options
        )
    )
