"""seqbench's minGRU (`variant: log_space`) to and from the layout of lucidrains/minGRU-pytorch.

minGRU-pytorch's layer `minGRU(dim, expansion_factor)` has `to_hidden_and_gate.weight`
(2 ED, D), an nn.Linear without bias whose first ED rows make the candidate's pre-activation and
the rest the gate's, and, when expansion_factor != 1, `to_out.weight` (D, ED). seqbench's layer
holds the same maps stored (in, out): `W_h` (D, ED), `W_z` (D, ED) and `W_out` (ED, D). A stack of
minGRU-pytorch layers applied one after the other (e.g. an nn.ModuleList named `layers`) is
seqbench's stack: its names are `layers.{i}.to_hidden_and_gate.weight`; a single layer's own state
dict (no prefix) loads into a one-layer model. The paper variant (biases, no g) has no such
weights: only `model.mingru.variant: log_space` converts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from seqbench.convert.common import (
    ConversionError,
    Rule,
    check_layers,
    give,
    load_params,
    params_of,
    take,
    transposed,
)

HINT = "hidden_size, expansion and the number of features"
SINGLE = ("to_hidden_and_gate.weight", "to_out.weight")  # one layer's names, without a prefix


def hidden_and_gate(i: int) -> Rule:
    """[W_h^T; W_z^T] (2 ED, F): the candidate's rows, then the gate's."""
    ours = (f"layers.{i}.W_h", f"layers.{i}.W_z")

    def to_peer(W_h: np.ndarray, W_z: np.ndarray) -> np.ndarray:
        return np.concatenate([W_h.T, W_z.T], axis=0)  # (2 ED, F)

    def from_peer(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inner = w.shape[0] // 2
        return w[:inner].T, w[inner:].T  # (F, ED) each

    return Rule(f"layers.{i}.to_hidden_and_gate.weight", ours, to_peer, from_peer)


def layer_rules(model: Any) -> list[Rule]:
    params = params_of(model)
    rules = []
    for i in range(model.n_layers):
        rules.append(hidden_and_gate(i))
        if f"layers.{i}.W_out" in params:
            rules.append(transposed(f"layers.{i}.W_out", f"layers.{i}.to_out.weight"))  # theirs (D, ED)
    return rules


def check_log_space(model: Any) -> None:
    if getattr(model, "variant", None) != "log_space":
        raise ConversionError(
            f"minGRU-pytorch's layer is appendix B.3's (no biases, the activation g): it converts only "
            f"to and from model.mingru.variant: log_space, and this minGRU is variant "
            f"'{getattr(model, 'variant', '?')}' (set --set model.mingru.variant=log_space)"
        )


def _with_prefix(state: Mapping[str, Any], model: Any) -> dict[str, Any]:
    """The state dict by `layers.{i}.` names: a single layer's (no prefix) becomes layer 0's; unread."""
    if not any(k in state for k in SINGLE):
        return dict(state)
    if model.n_layers != 1:
        raise ConversionError(
            f"the state dict is one minGRU layer's ('to_hidden_and_gate.weight' without a prefix), "
            f"but the model has n_layers={model.n_layers}; a stack's names are 'layers.{{i}}.…'"
        )
    return {(f"layers.0.{k}" if k in SINGLE else k): v for k, v in state.items()}


def from_mingru_pytorch(state: Mapping[str, Any], model: Any) -> dict[str, np.ndarray]:
    """seqbench weights for `model` (a NumPy or Torch minGRU, variant log_space) from a
    minGRU-pytorch state dict: one layer's, or a stack's under `layers.{i}.`.

    The first weight missing or misshapen raises ConversionError naming it; the head (and a
    language model's embedding), which minGRU-pytorch's layer has no counterpart for, keep
    `model`'s values.
    """
    check_log_space(model)
    state = _with_prefix(state, model)
    rules = layer_rules(model)
    params = take(state, model, rules, HINT)
    for i in range(model.n_layers):
        if f"layers.{i}.to_out.weight" in state and f"layers.{i}.W_out" not in params:
            raise ConversionError(
                f"the state dict has 'layers.{i}.to_out.weight' (an output projection, expansion != 1), "
                f"which this model (expansion {model.expansion:g}) lacks: see model.mingru.expansion"
            )
    check_layers(state, model.n_layers)
    return params


def load_mingru_pytorch(model: Any, state: Mapping[str, Any]) -> None:
    """Load a minGRU-pytorch state dict into seqbench minGRU `model` (log_space), NumPy or Torch."""
    load_params(model, from_mingru_pytorch(state, model))


def to_mingru_pytorch(model: Any) -> dict[str, np.ndarray]:
    """`model`'s layers in minGRU-pytorch's layout under `layers.{i}.` (the inverse of
    load_mingru_pytorch); strip `layers.0.` to load a one-layer model into `minGRU(dim)`."""
    check_log_space(model)
    return give(model, layer_rules(model))
