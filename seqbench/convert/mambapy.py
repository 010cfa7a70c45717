"""seqbench's Mamba to and from the layout of mambapy (alxndrTL/mamba.py) and mamba_ssm.

mambapy names a block's weights `layers.{i}.mixer.{in_proj,conv1d,x_proj,dt_proj,out_proj}.*`,
`layers.{i}.mixer.{A_log,D}` and `layers.{i}.norm.weight`; the official mamba_ssm code uses the
same names per layer under `backbone.` (with `backbone.norm_f.weight` and
`backbone.embedding.weight`). seqbench's block holds the same weights: its linear maps are stored
(in, out) where torch's nn.Linear stores (out, in), and its depthwise conv (ED, K) where nn.Conv1d
stores (ED, 1, K). Only the blocks (and, where the source has them, the final norm and a language
model's embedding) travel: seqbench's forecast embedding and head have no peer there.

Both backends: `load_mambapy(model, state)` takes a NumPy or a Torch seqbench Mamba.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from seqbench.convert.common import Rule, check_layers, give, load_params, same, take, transposed

HINT = "hidden_size, expand, state_size, conv_kernel and dt_rank"


def conv(ours: str, theirs: str) -> Rule:
    """A depthwise conv: nn.Conv1d stores (ED, 1, K), seqbench (ED, K)."""
    return Rule(theirs, (ours,), lambda w: w[:, None, :], lambda w: (w[:, 0, :],))


def block_rules(i: int) -> list[Rule]:
    """Block i's weights: seqbench's `layers.{i}.NAME` and mambapy's."""
    ours, theirs = f"layers.{i}.", f"layers.{i}."
    return [
        same(f"{ours}norm.weight", f"{theirs}norm.weight"),
        transposed(f"{ours}in_proj.weight", f"{theirs}mixer.in_proj.weight"),  # theirs (2ED, D)
        conv(f"{ours}conv1d.weight", f"{theirs}mixer.conv1d.weight"),  # theirs (ED, 1, K)
        same(f"{ours}conv1d.bias", f"{theirs}mixer.conv1d.bias"),
        transposed(f"{ours}x_proj.weight", f"{theirs}mixer.x_proj.weight"),  # theirs (R + 2N, ED)
        transposed(f"{ours}dt_proj.weight", f"{theirs}mixer.dt_proj.weight"),  # theirs (ED, R)
        same(f"{ours}dt_proj.bias", f"{theirs}mixer.dt_proj.bias"),
        same(f"{ours}A_log", f"{theirs}mixer.A_log"),  # (ED, N)
        same(f"{ours}D", f"{theirs}mixer.D"),  # (ED,)
        transposed(f"{ours}out_proj.weight", f"{theirs}mixer.out_proj.weight"),  # theirs (D, ED)
    ]


# outside the blocks, where the source has them (mamba_ssm's MambaLMHeadModel)
OUTER = [same("norm_f.weight", "norm_f.weight"), same("embed.weight", "embedding.weight")]


def _strip_prefix(state: Mapping[str, Any]) -> dict[str, Any]:
    """The state dict with mamba_ssm's `backbone.` prefix removed (mambapy has none); unread."""
    return {k.removeprefix("backbone."): v for k, v in state.items()}


def from_mambapy(state: Mapping[str, Any], model: Any) -> dict[str, np.ndarray]:
    """seqbench weights for `model` (a NumPy or Torch Mamba) from a mambapy / mamba_ssm state dict.

    Every block's weights must be in `state` with the shape `model`'s sizes give; the first one
    missing or misshapen raises ConversionError naming it. Weights the peer has no counterpart
    for (the forecast embedding and head; the final norm if absent) keep `model`'s values.
    """
    state = _strip_prefix(state)
    rules = [rule for i in range(model.n_layers) for rule in block_rules(i)]
    rules += [rule for rule in OUTER if rule.theirs in state]
    params = take(state, model, rules, HINT)
    check_layers(state, model.n_layers)
    return params


def load_mambapy(model: Any, state: Mapping[str, Any]) -> None:
    """Load a mambapy (or mamba_ssm) Mamba state dict into seqbench Mamba `model`, NumPy or Torch."""
    load_params(model, from_mambapy(state, model))


def to_mambapy(model: Any) -> dict[str, np.ndarray]:
    """`model`'s blocks and final norm in mambapy's layout (the inverse of load_mambapy); under
    a `backbone.` prefix it is mamba_ssm's. Arrays in the model's dtype."""
    rules = [rule for i in range(model.n_layers) for rule in block_rules(i)] + OUTER[:1]
    if getattr(model, "is_lm", False):
        rules += OUTER[1:]
    return give(model, rules)


def to_mamba_ssm(model: Any) -> dict[str, np.ndarray]:
    """`to_mambapy(model)` under mamba_ssm's `backbone.` prefix."""
    return {f"backbone.{k}": v for k, v in to_mambapy(model).items()}
