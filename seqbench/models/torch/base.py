"""A stack of recurrent layers with a linear head, in PyTorch, built from its NumPy twin.

Weights are initialised once, by the NumPy model: a Torch model's constructor takes the
NumPy constructor's arguments, builds the NumPy twin with the same generator and copies
its `params` by name, so one seed gives the same weights on either backend.
`state_dict()` has exactly the NumPy names and shapes (linear weights are (in, out)), and
`to_numpy` / `load_numpy` convert weights both ways.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from seqbench.models.numpy.base import RecurrentStack
from seqbench.models.torch.layers import Linear

Params = dict[str, np.ndarray]

TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def torch_dtype(dtype: Any) -> torch.dtype:
    """The torch dtype of a NumPy dtype (float32 or float64)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    return TORCH_DTYPES[np.dtype(dtype)]


def to_numpy(model: nn.Module) -> Params:
    """Every weight of `model` as a NumPy array (a copy, on the CPU), by its NumPy name."""
    return {name: value.detach().cpu().numpy().copy() for name, value in model.state_dict().items()}


def check_weights(expected: dict[str, tuple[int, ...]], given: dict[str, tuple[int, ...]]) -> None:
    """`given` has exactly the names and shapes of `expected`, or a ValueError says which differs."""
    missing = sorted(set(expected) - set(given))
    extra = sorted(set(given) - set(expected))
    if missing or extra:
        raise ValueError(
            f"weights differ from the model: missing {missing or 'none'}, unexpected {extra or 'none'}"
        )
    for name, shape in expected.items():
        if tuple(given[name]) != tuple(shape):
            raise ValueError(
                f"weight '{name}' has shape {tuple(given[name])}, the model needs {tuple(shape)}"
            )


def load_numpy(model: nn.Module, params: dict[str, Any]) -> None:
    """Copy weights (NumPy arrays or tensors, by name) into `model`, in its dtype and device.

    The names and shapes must be exactly the model's; otherwise a ValueError names the first
    difference and nothing is changed.
    """
    state = model.state_dict()
    check_weights(
        {k: tuple(v.shape) for k, v in state.items()}, {k: tuple(v.shape) for k, v in params.items()}
    )
    with torch.no_grad():
        for name, target in state.items():
            value = params[name]
            source = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))
            target.copy_(source)


class TorchStack(nn.Module):
    """`n_layers` recurrent layers, then a linear head on the last time step.

    A subclass names its NumPy twin (`numpy_class`) and supplies `make_layer`, a module
    whose parameters have the names of the twin's `init_layer`; `forward` maps x (B, L, F)
    to y (B, O), as the head of `sequence` (the backbone), the one forward pass there is.
    """

    numpy_class: type[RecurrentStack] = RecurrentStack
    options: tuple[str, ...] = ()  # spec keys (model.*) the constructor takes beyond the common ones

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int = 128,
        n_layers: int = 1,
        rng: np.random.Generator | None = None,
        dtype: type | np.dtype = np.float32,
        **options: Any,
    ) -> None:
        super().__init__()
        twin = self.numpy_class(
            input_size,
            output_size,
            hidden_size=hidden_size,
            n_layers=n_layers,
            rng=rng,
            dtype=dtype,
            **options,
        )
        self.input_size, self.output_size = input_size, output_size
        self.hidden_size, self.n_layers = hidden_size, n_layers
        self.dtype = torch_dtype(twin.dtype)
        for key in self.options:  # as resolved by the twin (e.g. dt_rank "auto" -> an int)
            setattr(self, key, getattr(twin, key))
        self.build()
        load_numpy(self, twin.params)

    @classmethod
    def from_numpy(cls, twin: RecurrentStack) -> TorchStack:
        """The Torch model with the sizes, options, dtype and current weights of NumPy model `twin`."""
        options = {key: getattr(twin, key) for key in cls.options}
        model = cls(
            twin.input_size, twin.output_size, twin.hidden_size, twin.n_layers, dtype=twin.dtype, **options
        )
        load_numpy(model, twin.params)
        return model

    def build(self) -> None:
        """Create the layers and the head (empty weights, filled from the twin)."""
        self.layers = nn.ModuleList(
            self.make_layer(self.input_size if i == 0 else self.hidden_size, self.hidden_size)
            for i in range(self.n_layers)
        )
        self.head = Linear(self.hidden_size, self.output_size, dtype=self.dtype)

    def make_layer(self, input_size: int, hidden_size: int) -> nn.Module:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, return_sequence: bool = False) -> torch.Tensor:
        """x (B, L, F) -> the forecast y (B, O) from the last step.

        With `return_sequence`, the forecast the head makes at every step, (B, L, O): step t's may
        depend on inputs 0..t only, which is what the causality audit checks. Training, prediction
        and the audit all run this one function; `return_sequence` changes only which steps the head reads.
        """
        h = self.sequence(x)  # (B, L, D)
        return self.head(h if return_sequence else h[:, -1])  # (B, L, O) or (B, O)

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, F) -> what the head reads at every step (B, L, D): the backbone of `forward`.

        Here the last layer's states; Mamba overrides it (embedding, blocks, final norm).
        """
        h = x.to(self.dtype)  # (B, L, F)
        for layer in self.layers:
            h = layer(h)  # (B, L, D)
        return h

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
