"""Weights that travel: seqbench's Mamba to and from the layout of mambapy and mamba_ssm.

mambapy (alxndrTL/mamba.py) names a block's weights `layers.{i}.mixer.{in_proj,conv1d,x_proj,
dt_proj,out_proj}.*`, `layers.{i}.mixer.{A_log,D}` and `layers.{i}.norm.weight`; the official
mamba_ssm code uses the same names per layer under `backbone.` (with `backbone.norm_f.weight`
and `backbone.embedding.weight`). seqbench's block holds the same weights: its linear maps are
stored (in, out) where torch's nn.Linear stores (out, in), and its depthwise conv (ED, K) where
nn.Conv1d stores (ED, 1, K). Only the blocks (and, where the source has them, the final norm and
a language model's embedding) travel: seqbench's forecast embedding and head have no peer there.

Both backends: `load_mambapy(model, state)` takes a NumPy or a Torch seqbench Mamba.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from seqbench.errors import SeqbenchError

# per block: seqbench's name -> (the peer's name under `layers.{i}.`, how the two layouts differ)
BLOCK = {
    "norm.weight": ("norm.weight", "same"),
    "in_proj.weight": ("mixer.in_proj.weight", "T"),  # theirs (2ED, D), ours (D, 2ED)
    "conv1d.weight": ("mixer.conv1d.weight", "conv"),  # theirs (ED, 1, K), ours (ED, K)
    "conv1d.bias": ("mixer.conv1d.bias", "same"),
    "x_proj.weight": ("mixer.x_proj.weight", "T"),  # theirs (R + 2N, ED), ours (ED, R + 2N)
    "dt_proj.weight": ("mixer.dt_proj.weight", "T"),  # theirs (ED, R), ours (R, ED)
    "dt_proj.bias": ("mixer.dt_proj.bias", "same"),
    "A_log": ("mixer.A_log", "same"),  # (ED, N)
    "D": ("mixer.D", "same"),  # (ED,)
    "out_proj.weight": ("mixer.out_proj.weight", "T"),  # theirs (D, ED), ours (ED, D)
}
FROM_PEER = {"same": lambda w: w, "T": lambda w: w.T, "conv": lambda w: w[:, 0, :]}
TO_PEER = {"same": lambda w: w, "T": lambda w: w.T, "conv": lambda w: w[:, None, :]}
# outside the blocks, where the source has them (mamba_ssm's MambaLMHeadModel)
OUTER = {"norm_f.weight": "norm_f.weight", "embed.weight": "embedding.weight"}


class ConversionError(SeqbenchError):
    """A state dict that does not fit the model: names the first missing or misshapen parameter."""


def _array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _params(model: Any) -> dict[str, np.ndarray]:
    """The model's weights by seqbench name, as NumPy arrays (either backend)."""
    if hasattr(model, "state_dict"):
        return {k: _array(v) for k, v in model.state_dict().items()}
    return model.params


def _strip_prefix(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The state dict with mamba_ssm's `backbone.` prefix removed (mambapy has none)."""
    return {k.removeprefix("backbone."): _array(v) for k, v in state.items()}


def from_mambapy(state: Mapping[str, Any], model: Any) -> dict[str, np.ndarray]:
    """seqbench weights for `model` (a NumPy or Torch Mamba) from a mambapy / mamba_ssm state dict.

    Every block's weights must be in `state` with the shape `model`'s sizes give; the first one
    missing or misshapen raises ConversionError naming it. Weights the peer has no counterpart
    for (the forecast embedding and head; the final norm if absent) keep `model`'s values.
    """
    state = _strip_prefix(state)
    params = {k: np.array(v) for k, v in _params(model).items()}
    names = [(f"layers.{i}.{ours}", f"layers.{i}.{theirs}", kind) for i in range(model.n_layers)
             for ours, (theirs, kind) in BLOCK.items()]  # fmt: skip
    names += [(ours, theirs, "same") for ours, theirs in OUTER.items() if theirs in state]
    for ours, theirs, kind in names:
        if theirs not in state:
            raise ConversionError(f"the state dict has no '{theirs}' (for seqbench's '{ours}')")
        if ours not in params:
            raise ConversionError(f"the model has no '{ours}' for the state dict's '{theirs}'")
        want = TO_PEER[kind](params[ours]).shape
        if state[theirs].shape != want:
            raise ConversionError(
                f"'{theirs}' has shape {tuple(state[theirs].shape)}; this model needs {tuple(want)} "
                "(check hidden_size, expand, state_size, conv_kernel and dt_rank)"
            )
        params[ours] = FROM_PEER[kind](state[theirs]).astype(params[ours].dtype)
    extra = [k for k in state if k.startswith("layers.") and int(k.split(".")[1]) >= model.n_layers]
    if extra:
        raise ConversionError(f"the state dict has '{extra[0]}', more layers than n_layers={model.n_layers}")
    return params


def load_mambapy(model: Any, state: Mapping[str, Any]) -> None:
    """Load a mambapy (or mamba_ssm) Mamba state dict into seqbench Mamba `model`, NumPy or Torch."""
    params = from_mambapy(state, model)
    if hasattr(model, "state_dict"):
        from seqbench.models.torch.base import load_numpy

        load_numpy(model, params)
    else:
        for name, value in params.items():
            model.params[name][...] = value


def to_mambapy(model: Any) -> dict[str, np.ndarray]:
    """`model`'s blocks and final norm in mambapy's layout (the inverse of load_mambapy); under
    a `backbone.` prefix it is mamba_ssm's. Arrays in the model's dtype."""
    params = _params(model)
    state = {}
    for i in range(model.n_layers):
        for ours, (theirs, kind) in BLOCK.items():
            state[f"layers.{i}.{theirs}"] = np.ascontiguousarray(TO_PEER[kind](params[f"layers.{i}.{ours}"]))
    state["norm_f.weight"] = np.array(params["norm_f.weight"])
    if "embed.weight" in params and getattr(model, "is_lm", False):
        state["embedding.weight"] = np.array(params["embed.weight"])
    return state
