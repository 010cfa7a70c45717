"""What every peer's conversion shares: the error, a rule per peer tensor, and the checking code.

A `Rule` ties one tensor of the peer's state dict to one or more of seqbench's weights, with the
two maps between the layouts. `take` reads a state dict by rules into a copy of a model's weights,
naming the first peer tensor that is missing or misshapen; `give` writes the weights by the same
rules. Both work on NumPy arrays; a torch tensor is read as one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqbench.errors import SeqbenchError


class ConversionError(SeqbenchError):
    """A state dict that does not fit the model: names the first missing or misshapen parameter."""


@dataclass(frozen=True)
class Rule:
    """The peer's tensor `theirs` is `to_peer(*ours)`; `from_peer(theirs)` gives `ours` back."""

    theirs: str
    ours: tuple[str, ...]
    to_peer: Callable[..., np.ndarray]
    from_peer: Callable[[np.ndarray], tuple[np.ndarray, ...]]


def same(ours: str, theirs: str) -> Rule:
    return Rule(theirs, (ours,), lambda w: w, lambda w: (w,))


def transposed(ours: str, theirs: str) -> Rule:
    """A linear map: torch's nn.Linear stores (out, in), seqbench (in, out)."""
    return Rule(theirs, (ours,), lambda w: w.T, lambda w: (w.T,))


def as_array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def params_of(model: Any) -> dict[str, np.ndarray]:
    """The model's weights by seqbench name, as NumPy arrays (either backend)."""
    if hasattr(model, "state_dict"):
        return {k: as_array(v) for k, v in model.state_dict().items()}
    return model.params


def take(
    state: Mapping[str, np.ndarray], model: Any, rules: Iterable[Rule], hint: str
) -> dict[str, np.ndarray]:
    """A copy of `model`'s weights with every rule's tensor read from `state` (arrays by the peer's
    names); the first one missing or misshapen is a ConversionError (`hint`: which sizes to check)."""
    params = {k: np.array(v) for k, v in params_of(model).items()}
    for rule in rules:
        missing = [name for name in rule.ours if name not in params]
        if missing:
            raise ConversionError(f"the model has no '{missing[0]}' for the state dict's '{rule.theirs}'")
        if rule.theirs not in state:
            raise ConversionError(f"the state dict has no '{rule.theirs}' (for seqbench's '{rule.ours[0]}')")
        want = rule.to_peer(*(params[name] for name in rule.ours)).shape
        got = np.shape(state[rule.theirs])
        if got != want:
            raise ConversionError(
                f"'{rule.theirs}' has shape {tuple(got)}; this model needs {tuple(want)} (check {hint})"
            )
        for name, value in zip(rule.ours, rule.from_peer(as_array(state[rule.theirs])), strict=True):
            params[name] = np.asarray(value).astype(params[name].dtype)
    return params


def give(model: Any, rules: Iterable[Rule]) -> dict[str, np.ndarray]:
    """`model`'s weights by the peer's names and layout (arrays in the model's dtype)."""
    params = params_of(model)
    return {
        rule.theirs: np.ascontiguousarray(rule.to_peer(*(params[name] for name in rule.ours)))
        for rule in rules
    }


def check_layers(state: Mapping[str, Any], n_layers: int, prefix: str = "layers.") -> None:
    """No tensor of a layer beyond the model's `n_layers`."""
    for key in state:
        index = key.removeprefix(prefix).split(".")[0]
        if key.startswith(prefix) and index.isdigit() and int(index) >= n_layers:
            raise ConversionError(f"the state dict has '{key}', more layers than n_layers={n_layers}")


def load_params(model: Any, params: Mapping[str, np.ndarray]) -> None:
    """Copy weights by seqbench name into `model` (NumPy or Torch), in its dtype."""
    if hasattr(model, "state_dict"):
        from seqbench.models.torch.base import load_numpy

        load_numpy(model, dict(params))
    else:
        for name, value in params.items():
            model.params[name][...] = value
