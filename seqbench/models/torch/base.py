"""A stack of recurrent layers with a linear head, in PyTorch, built from its NumPy twin.

Weights are initialised once, by the NumPy model: a Torch model's constructor takes the
NumPy constructor's arguments, builds the NumPy twin with the same generator and copies
its `params` by name, so one seed gives the same weights on either backend.
`state_dict()` has exactly the NumPy names and shapes (linear weights are (in, out)), and
`to_numpy` / `load_numpy` convert weights both ways.

As on NumPy, forward = head(backbone(adapter(x))): the adapter passes features on, or embeds
token ids (B, L) with `embed.weight` (V, D) when `vocab_size` is given (a language model, whose
head reads every step). The recurrent API, `initial_state`, `forward_state` (a chunk from a
carried state, parallel over time) and `step` (one token, the recurrence), runs without autograd
on the same layers; states are lists of tensors, one entry per layer, laid out as on NumPy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from seqbench.models.numpy.base import RecurrentStack
from seqbench.models.torch.layers import Embedding, Linear
from seqbench.models.weights_file import check_weights

Params = dict[str, np.ndarray]

TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
NUMPY_DTYPES = {torch_dtype: numpy_dtype for numpy_dtype, torch_dtype in TORCH_DTYPES.items()}


def torch_dtype(dtype: Any) -> torch.dtype:
    """The torch dtype of a NumPy dtype (float32 or float64)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    return TORCH_DTYPES[np.dtype(dtype)]


def to_numpy(model: nn.Module) -> Params:
    """Every weight of `model` as a NumPy array (a copy, on the CPU), by its NumPy name."""
    return {name: value.detach().cpu().numpy().copy() for name, value in model.state_dict().items()}


def load_numpy(model: nn.Module, params: Mapping[str, Any]) -> None:
    """Copy weights (NumPy arrays or tensors, by name) into `model`, in its dtype and device.

    The names and shapes must be exactly the model's; otherwise a ValueError names the first
    difference and nothing is changed.
    """
    state = model.state_dict()
    check_weights(state, params)
    with torch.no_grad():
        for name, target in state.items():
            value = params[name]
            source = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))
            target.copy_(source)


class TorchStack(nn.Module):
    """An input adapter, `n_layers` recurrent layers, then a linear head on the last (or every) step.

    A subclass names its NumPy twin (`numpy_class`) and supplies `make_layer`, a module
    whose parameters have the names of the twin's `init_layer` and which has `forward(x)`,
    `initial_state(B)`, `forward_state(x, state)` and `step(x_t, state)`; `forward` maps
    x (B, L, F) to y (B, O), as the head of `sequence` (the backbone), the one forward pass there is.
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
        vocab_size: int | None = None,
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
            vocab_size=vocab_size,
            **options,
        )
        self.input_size, self.output_size = twin.input_size, twin.output_size
        self.hidden_size, self.n_layers = hidden_size, n_layers
        self.vocab_size = twin.vocab_size
        self.forecast = twin.forecast
        self.dtype = torch_dtype(twin.dtype)
        for key in self.options:  # as resolved by the twin (e.g. dt_rank "auto" -> an int)
            setattr(self, key, getattr(twin, key))
        self.build()
        load_numpy(self, twin.params)
        self.eval()  # as on NumPy: dropout only in a training step (the learner switches it on)

    @classmethod
    def from_numpy(cls, twin: RecurrentStack) -> TorchStack:
        """The Torch model with the sizes, options, dtype and current weights of NumPy model `twin`."""
        options = {key: getattr(twin, key) for key in cls.options}
        model = cls(
            twin.input_size,
            twin.output_size,
            twin.hidden_size,
            twin.n_layers,
            dtype=twin.dtype,
            vocab_size=twin.vocab_size,
            forecast=twin.forecast,
            **options,
        )
        load_numpy(model, twin.params)
        return model

    def numpy_twin(self) -> RecurrentStack:
        """The NumPy model of the same sizes, options and dtype, holding copies of this model's weights."""
        twin = self.numpy_class(
            self.input_size,
            self.output_size,
            self.hidden_size,
            self.n_layers,
            dtype=NUMPY_DTYPES[self.dtype],
            vocab_size=self.vocab_size,
            forecast=self.forecast,
            **{key: getattr(self, key) for key in self.options},
        )
        twin.params.update(to_numpy(self))
        return twin

    @property
    def is_lm(self) -> bool:
        """Whether this is a language model: token ids in, logits of every step out."""
        return self.vocab_size is not None

    @property
    def step_size(self) -> int:
        """The values one step reads: F features, or S F in segments of S rows (a token id for an LM)."""
        return self.input_size if self.is_lm else self.input_size * self.forecast.segment

    def build(self) -> None:
        """Create the adapter, the layers and the head (empty weights, filled from the twin)."""
        if self.is_lm:
            self.embed = Embedding(self.vocab_size, self.hidden_size, dtype=self.dtype)
        first = self.hidden_size if self.is_lm else self.step_size
        self.layers = nn.ModuleList(
            self.make_layer(first if i == 0 else self.hidden_size, self.hidden_size)
            for i in range(self.n_layers)
        )
        self.build_head(self.hidden_size if self.is_lm else first)

    def build_head(self, adapter_size: int) -> None:
        """The head (on one output segment's values), and the decoder's positions and skip path if asked."""
        f = self.forecast
        self.head = Linear(self.hidden_size, self.output_size // f.out_segments, dtype=self.dtype)
        if f.decoder == "segments":
            self.decoder = nn.ParameterDict(
                {"position": nn.Parameter(torch.empty(f.out_segments, adapter_size, dtype=self.dtype))}
            )
        if f.linear_skip:
            self.skip = Linear(f.seq_len * self.input_size, self.output_size, dtype=self.dtype)
        self.dropout = nn.Dropout(f.dropout)

    def segments(self, x: torch.Tensor) -> torch.Tensor:
        """A forecast window x (B, L, F) as the steps the model reads: (B, L / S, S F)."""
        B, L, F = x.shape
        S = self.forecast.segment
        if L % S:
            raise ValueError(f"a window of {L} rows cannot be read in segments of {S}")
        return x.to(self.dtype).reshape(B, L // S, S * F)

    def make_layer(self, input_size: int, hidden_size: int) -> nn.Module:
        raise NotImplementedError

    def adapter(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, F), or a language model's ids (B, L) (a LongTensor) -> the backbone's input (B, L, .)."""
        return self.embed(x) if self.is_lm else self.segments(x)

    def forward(self, x: torch.Tensor, return_sequence: bool = False) -> torch.Tensor:
        """x (B, L, F) -> the forecast y (B, O) from the last step.

        With `return_sequence`, the forecast from each prefix of the window, (B, L / S, O): step j's
        may depend on rows up to its segment's end only, which is what the causality audit checks.
        Training, prediction and the audit all run this one function; `return_sequence` changes only
        which steps the head reads (with the segment decoder, each prefix is decoded on its own).
        A language model reads ids x (B, L) and always returns the logits of every step (B, L, V).
        """
        f = self.forecast
        if return_sequence and f.decoder == "segments":
            steps = range(x.shape[1] // f.segment)
            y = torch.stack([self.decode(x[:, : (j + 1) * f.segment]) for j in steps], dim=1)  # (B, N, O)
        else:
            y = self.decode(x, return_sequence)
        if f.linear_skip:
            y = y + (self.skip_prefixes(x) if return_sequence else self.skip(x.to(self.dtype).flatten(1)))
        return y

    def decode(self, x: torch.Tensor, return_sequence: bool = False) -> torch.Tensor:
        """`forward` but the skip path: adapter, backbone (with the segment decoder's steps), head."""
        u = self.adapter(x)  # (B, N, S F) or (B, L, D)
        if self.forecast.decoder == "segments":  # (B M, N + 1, A): each window, then one position p_m
            M = self.forecast.out_segments
            position = self.decoder["position"].repeat(len(x), 1)[:, None]  # (B M, 1, A)
            u = torch.cat([u.repeat_interleave(M, dim=0), position], dim=1)
        h = self.backbone(u)[0]  # (B, N, D) or (B M, N + 1, D)
        read = h if return_sequence or self.is_lm else h[:, -1]  # (B, N, D) or (B, D) or (B M, D)
        y = self.head(self.dropout(read))  # (B, N, O) or (B, O) or (B M, O / M)
        return y.reshape(len(x), *y.shape[1:-1], -1)  # the segment decoder's (B M, O / M) -> (B, O)

    def skip_prefixes(self, x: torch.Tensor) -> torch.Tensor:
        """The skip path of each prefix of the window, (B, N, O): step j reads rows up to its segment end."""
        _, L, F = x.shape
        per_row = torch.einsum("blf,lfo->blo", x.to(self.dtype), self.skip.weight.reshape(L, F, -1))
        return per_row.cumsum(dim=1)[:, self.forecast.segment - 1 :: self.forecast.segment] + self.skip.bias

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, F) -> what the head reads at every step (B, L, D): the backbone of `forward`."""
        return self.backbone(self.adapter(x))[0]

    def backbone(
        self, u: torch.Tensor, state: list[Any] | None = None
    ) -> tuple[torch.Tensor, list[Any] | None]:
        """u (B, L, .) -> the last layer's states (B, L, D), and, when a `state` is carried in (without
        autograd), the state after the last step. Mamba adds its final norm."""
        if state is None:
            h = u
            for layer in self.layers:
                h = layer(h)  # (B, L, D)
            return h, None
        h, new_state = u, []
        for layer, layer_state in zip(self.layers, state, strict=True):
            h, layer_state = layer.forward_state(h, layer_state)  # (B, L, D)
            new_state.append(layer_state)
        return h, new_state

    def backbone_step(self, u: torch.Tensor, state: list[Any]) -> tuple[torch.Tensor, list[Any]]:
        """One time step of the backbone: u (B, .) -> what the head reads (B, D), and the next state."""
        h, new_state = u, []
        for layer, layer_state in zip(self.layers, state, strict=True):
            h, layer_state = layer.step(h, layer_state)  # (B, D)
            new_state.append(layer_state)
        return h, new_state

    # ---- the recurrent state: chunks and single steps -------------------------------------------

    def initial_state(self, batch_size: int) -> list[Any]:
        """The state before any input (zeros), one entry per layer, for `forward_state` and `step`."""
        return [layer.initial_state(batch_size) for layer in self.layers]

    @torch.inference_mode()
    def forward_state(self, x: torch.Tensor, state: list[Any]) -> tuple[torch.Tensor, list[Any]]:
        """x (B, L, F), or ids (B, L), and the state before it -> the head at every step (B, L, O), and the
        state after it: chunks run from the state the one before left give one long forward's outputs."""
        h, new_state = self.backbone(self.adapter(x), state)  # (B, L, D)
        return self.head(h), new_state  # (B, L, O)

    @torch.inference_mode()
    def step(self, x_t: torch.Tensor, state: list[Any]) -> tuple[torch.Tensor, list[Any]]:
        """One time step, as the recurrence: x_t (B, F), or ids (B,), and the state -> y_t (B, O), the
        next state."""
        h, new_state = self.backbone_step(self.adapter(x_t[:, None])[:, 0], state)  # (B, D)
        return self.head(h), new_state  # (B, O)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
