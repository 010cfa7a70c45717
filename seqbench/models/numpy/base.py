"""A stack of recurrent layers with a linear head: the shape every NumPy model shares.

A model is an input adapter, a backbone and a head: forward = head(backbone(adapter(x))).

- Forecast models (the default) map a window x (B, L, F) to a forecast y (B, O): the
  adapter passes the features on (Mamba's embeds them linearly), the backbone (the layers)
  turns the sequence into hidden states (B, L, D), and the head reads the last one.
  `forward(x, return_sequence=True)` has the head read every step instead (the forecast
  from each prefix of the window), and `sequence(x)` is the backbone's output.
- Language models (`vocab_size=V`) read integer token ids x (B, L); the adapter is an
  embedding `embed.weight` (V, D), the first layer takes D inputs, and the head reads every
  step: forward(x) gives next-token logits (B, L, V), trained with `cross_entropy_loss`.

There is one forward pass, `forward`, which training, prediction and the causality audit all
run. The same adapter, backbone and head, with a carried state, make the recurrent API:
`initial_state(B)` (zeros), `forward_state(x, state)` (a chunk of any length, parallel over
time: chunks with the state carried give the outputs of one long forward) and `step(x_t, state)`
(one time step as the recurrence, constant time per token, for generation). A subclass supplies
one recurrent layer (its init, forward, backward, state and step); this class stacks `n_layers`
of them and owns the parameters, by name, in `self.params` (names match the Torch twins, so
weights convert both ways).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from seqbench.models.numpy.forecasting import (
    ForecastOptions,
    decoder_inputs,
    decoder_inputs_backward,
    dropout_mask,
    skip_prefixes,
    to_segments,
)
from seqbench.models.numpy.layers import (
    check_ids,
    embedding,
    embedding_backward,
    init_embedding,
    init_uniform,
    linear,
    linear_backward,
)

Params = dict[str, np.ndarray]
State = list[Any]  # one entry per layer, opaque outside the model
StepFunction = Callable[[np.ndarray, State], tuple[np.ndarray, State]]  # (x_t, state) -> (y_t, next state)


class RecurrentStack:
    """An input adapter, `n_layers` recurrent layers, then a linear head on the last (or every) step."""

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
        forecast: ForecastOptions | None = None,
        **options: Any,
    ) -> None:
        """`options`: the model's own keywords (its class's `options`, e.g. state_size), for `configure`."""
        rng = rng if rng is not None else np.random.default_rng(0)
        self.dtype = np.dtype(dtype)
        self.forecast = forecast or ForecastOptions()
        if vocab_size is not None and self.forecast != ForecastOptions():
            raise ValueError(
                "segment, decoder, linear_skip, dropout and gate_init are options of a forecast model"
            )
        if vocab_size is not None:
            if output_size != vocab_size:
                raise ValueError(
                    f"a language model predicts the next token: output_size must be vocab_size "
                    f"({vocab_size}), got {output_size}"
                )
            input_size = vocab_size  # the features of a token are its embedding
        self.vocab_size = vocab_size
        self.input_size, self.output_size = input_size, output_size
        self.hidden_size, self.n_layers = hidden_size, n_layers
        self.training = False  # dropout is on only in a training step (the learner sets this)
        self.configure(**options)
        self.params: Params = self.init_adapter(rng, self.step_size, hidden_size, self.dtype)
        for i in range(n_layers):
            layer_in = self.adapter_size if i == 0 else hidden_size
            for key, value in self.init_layer(rng, layer_in, hidden_size, self.dtype).items():
                self.params[f"layers.{i}.{key}"] = value
        head_out = output_size // self.forecast.out_segments  # one output segment's values
        self.params["head.weight"] = init_uniform(rng, (hidden_size, head_out), hidden_size, self.dtype)
        self.params["head.bias"] = init_uniform(rng, (head_out,), hidden_size, self.dtype)
        self.params.update(self.init_forecast_parts(rng))
        self.params.update(self.init_final(rng))
        self.dropout_rng = np.random.default_rng(rng.integers(2**63)) if self.forecast.dropout else None

    def configure(self) -> None:
        """Take the model's own options (none here; a subclass's keywords, e.g. Mamba's state_size),
        once the sizes and forecast options are set and before any weight is drawn."""

    @classmethod
    def count_weights(
        cls,
        input_size: int,
        output_size: int,
        *,
        hidden_size: int,
        n_layers: int,
        vocab_size: int | None = None,
        forecast: ForecastOptions | None = None,
        **options: Any,
    ) -> int:
        """The `n_params` of the model these arguments build (the constructor's, by name, less rng and dtype),
        counted without drawing a weight: a model too big for memory is refused before it is built."""
        f, D = forecast or ForecastOptions(), hidden_size
        step = vocab_size if vocab_size is not None else input_size * f.segment
        adapter, first_in = cls.adapter_weights(step, D, is_lm=vocab_size is not None)
        first = cls.layer_weights(first_in, D, **options)
        layers = first + (n_layers - 1) * cls.layer_weights(D, D, **options)
        head_out = output_size // f.out_segments
        head = D * head_out + head_out + cls.final_weights(D)
        decoder = f.out_segments * first_in if f.decoder == "segments" else 0
        skip = (f.seq_len * input_size + 1) * output_size if f.linear_skip and f.seq_len else 0
        return adapter + layers + head + decoder + skip

    @classmethod
    def adapter_weights(cls, step_size: int, hidden_size: int, is_lm: bool) -> tuple[int, int]:
        """The adapter's weight count and its output width (the first layer's input): an embedding
        (V, D) for a language model, none for a forecast (the first layer reads the step's values)."""
        return (step_size * hidden_size, hidden_size) if is_lm else (0, step_size)

    @classmethod
    def layer_weights(cls, input_size: int, hidden_size: int, **options: Any) -> int:
        """The weights of one layer that reads `input_size` values a step (`init_layer`'s, counted)."""
        raise NotImplementedError

    @classmethod
    def final_weights(cls, hidden_size: int) -> int:
        """Weights between the last layer and the head (none here; Mamba's final RMSNorm)."""
        return 0

    @property
    def is_lm(self) -> bool:
        """Whether this is a language model: token ids in, logits of every step out."""
        return self.vocab_size is not None

    # ---- the input adapter: features as they are, or an embedding of token ids -------------------

    @property
    def step_size(self) -> int:
        """The values one step reads: F features, or S F in segments of S rows (a token id for an LM)."""
        return self.input_size if self.is_lm else self.input_size * self.forecast.segment

    @property
    def adapter_size(self) -> int:
        """The width of the adapter's output, which the first layer reads."""
        return self.hidden_size if self.is_lm else self.step_size

    def init_forecast_parts(self, rng: np.random.Generator) -> Params:
        """The decoder's positions p (M, A) and the skip path's W_skip (L F, O), b_skip (O), if asked for."""
        f, params = self.forecast, {}
        if f.decoder == "segments":
            params["decoder.position"] = init_uniform(
                rng, (f.out_segments, self.adapter_size), self.adapter_size, self.dtype
            )
        if f.linear_skip:
            fan_in = f.seq_len * self.input_size
            params["skip.weight"] = init_uniform(rng, (fan_in, self.output_size), fan_in, self.dtype)
            params["skip.bias"] = init_uniform(rng, (self.output_size,), fan_in, self.dtype)
        return params

    def segments(self, x: np.ndarray) -> np.ndarray:
        """A forecast window x (B, L, F) as the steps the model reads: (B, L / S, S F)."""
        x = x.astype(self.dtype, copy=False)
        return x if self.forecast.segment == 1 else to_segments(x, self.forecast.segment)

    def init_adapter(
        self, rng: np.random.Generator, input_size: int, hidden_size: int, dtype: np.dtype
    ) -> Params:
        """The adapter's parameters: an embedding (V, D) for a language model, none otherwise."""
        if self.is_lm:
            return {"embed.weight": init_embedding(rng, (input_size, hidden_size), dtype)}
        return {}

    def adapter(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        """x (B, L, F) floats, or a language model's ids (B, L) -> the backbone's input (B, L, .), a cache."""
        if self.is_lm:
            ids = check_ids(x, self.vocab_size)
            return embedding(ids, self.params["embed.weight"]), ids  # (B, L, D)
        return self.segments(x), None  # (B, L / S, S F)

    def adapter_backward(self, du: np.ndarray, cache: Any) -> Params:
        """The adapter's parameter gradients, given dL/d(its output)."""
        if self.is_lm:
            return {"embed.weight": embedding_backward(du, cache, self.vocab_size)}
        return {}

    def init_final(self, rng: np.random.Generator) -> Params:
        """The parameters between the last layer and the head (none here; Mamba's final RMSNorm)."""
        return {}

    # ---- what a subclass supplies -----------------------------------------------------------

    def init_layer(
        self, rng: np.random.Generator, input_size: int, hidden_size: int, dtype: np.dtype
    ) -> Params:
        raise NotImplementedError

    def layer_forward(self, p: Params, x: np.ndarray, state: Any = None) -> tuple[np.ndarray, Any]:
        """x (B, L, F) -> hidden states (B, L, D) and a cache for the backward pass (and `layer_state`).

        `state` is the layer's state before the first step (None: zeros, its `initial_state`).
        """
        raise NotImplementedError

    def layer_backward(self, p: Params, dh: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        """dL/dh (B, L, D) -> dL/dx (B, L, F) and the layer's parameter gradients."""
        raise NotImplementedError

    def layer_initial_state(self, p: Params, batch_size: int) -> Any:
        """The layer's state before any input: here h (B, D) of zeros."""
        return np.zeros((batch_size, self.hidden_size), dtype=self.dtype)

    def layer_state(self, h: np.ndarray, cache: Any) -> Any:
        """The layer's state after the last step of a `layer_forward`: here its last output h (B, D)."""
        return h[:, -1].copy()

    def layer_step(self, p: Params, x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """One time step: x (B, F) and the state -> h (B, D) and the next state."""
        raise NotImplementedError

    # ---- the stack ---------------------------------------------------------------------------

    def layer_params(self, i: int) -> Params:
        prefix = f"layers.{i}."
        return {k[len(prefix) :]: v for k, v in self.params.items() if k.startswith(prefix)}

    def backbone(
        self, u: np.ndarray, state: State | None = None
    ) -> tuple[np.ndarray, list[Any], State | None]:
        """The adapter's output u (B, L, .) -> what the head reads at every step (B, L, D), the caches
        for the backward pass, and, when a `state` is carried in, the state after the last step.

        Here the last layer's states; a model with more than a stack of layers (Mamba) overrides this
        and `backbone_backward` together.
        """
        h, caches, new_state = u, [], []
        for i in range(self.n_layers):
            p = self.layer_params(i)
            if state is None:
                h, cache = self.layer_forward(p, h)  # (B, L, D)
            else:
                h, cache = self.layer_forward(p, h, state[i])  # (B, L, D)
                new_state.append(self.layer_state(h, cache))
            caches.append(cache)
        return h, caches, None if state is None else new_state

    def backbone_backward(
        self, d_out: np.ndarray, caches: list[Any], shape: tuple[int, ...]
    ) -> tuple[Params, np.ndarray]:
        """The gradients of the backbone's parameters, and dL/du of its input, given dL/d(its output) of
        `shape` (B, L, D): d_out is (B, D) when only the last step was read (a forecast), or (B, L, D)."""
        dh = every_step(d_out, shape, self.dtype)  # (B, L, D)
        grads: Params = {}
        for i in reversed(range(self.n_layers)):
            dh, layer_grads = self.layer_backward(self.layer_params(i), dh, caches[i])
            grads.update({f"layers.{i}.{k}": v for k, v in layer_grads.items()})
        return grads, dh

    def backbone_step(self, u: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """One time step of the backbone: u (B, .) -> what the head reads (B, D), and the next state."""
        h, new_state = u, []
        for i in range(self.n_layers):
            h, layer_state = self.layer_step(self.layer_params(i), h, state[i])  # (B, D)
            new_state.append(layer_state)
        return h, new_state

    def forward(self, x: np.ndarray, return_sequence: bool = False) -> tuple[np.ndarray, list[Any]]:
        """x (B, L, F) -> the forecast y (B, O) from the last step, with the caches `backward` needs.

        With `return_sequence`, the forecast from each prefix of the window, (B, L / S, O): step j's
        may depend on rows up to its segment's end only, which is what the causality audit checks.
        Training, prediction and the audit all run this one function; `return_sequence` changes only
        which steps the head reads (with the segment decoder, each prefix is decoded on its own; that
        path has no backward). A language model reads ids x (B, L) and always returns the logits of
        every step (B, L, V).
        """
        f = self.forecast
        if return_sequence and f.decoder == "segments":
            steps = range(x.shape[1] // f.segment)
            y = np.stack([self.decode(x[:, : (j + 1) * f.segment])[0] for j in steps], axis=1)  # (B, N, O)
            caches: list[Any] = []
        else:
            y, caches = self.decode(x, return_sequence)
        if f.linear_skip:
            W, b = self.params["skip.weight"], self.params["skip.bias"]
            x = x.astype(self.dtype, copy=False)
            flat = x.reshape(len(x), -1)  # (B, L F)
            skip = skip_prefixes(x, W, b, f.segment) if return_sequence else linear(flat, W, b)
            y = y + skip  # (B, N, O) or (B, O)
        return y, caches

    def decode(self, x: np.ndarray, return_sequence: bool = False) -> tuple[np.ndarray, list[Any]]:
        """`forward` but the skip path: adapter, backbone (with the segment decoder's steps), head."""
        u, adapter_cache = self.adapter(x)  # (B, N, S F) or (B, L, D)
        if self.forecast.decoder == "segments":
            u = decoder_inputs(u, self.params["decoder.position"])  # (B M, N + 1, A)
        h, caches, _ = self.backbone(u)  # (B, N, D) or (B M, N + 1, D)
        read = h if return_sequence or self.is_lm else h[:, -1]  # (B, N, D) or (B, D) or (B M, D)
        mask = None
        if self.training and self.forecast.dropout:
            mask = dropout_mask(read.shape, self.forecast.dropout, self.dropout_rng, self.dtype)
            read = read * mask
        y = linear(read, self.params["head.weight"], self.params["head.bias"])  # (B, N, O) or (B, O)
        y = y.reshape(len(x), *y.shape[1:-1], -1)  # the segment decoder's (B M, O / M) -> (B, O)
        return y, [adapter_cache, *caches, (read, h.shape, mask, x)]

    def sequence(self, x: np.ndarray) -> np.ndarray:
        """x (B, L, F) -> what the head reads at every step (B, L / S, D): the backbone of `forward`."""
        return self.backbone(self.adapter(x)[0])[0]

    def backward(self, dy: np.ndarray, caches: list[Any]) -> Params:
        """dL/dy (B, O), or (B, N, O) after forward(x, return_sequence=True) -> every parameter's gradient."""
        read, shape, mask, x = caches[-1]
        grads: Params = {}
        if self.forecast.linear_skip:
            if dy.ndim != 2:
                raise ValueError("the skip path of each prefix (return_sequence) has no backward")
            _, grads["skip.weight"], grads["skip.bias"] = linear_backward(
                dy, x.reshape(len(x), -1), self.params["skip.weight"], need_dx=False
            )
        d_read, grads["head.weight"], grads["head.bias"] = linear_backward(
            dy.reshape(*read.shape[:-1], -1), read, self.params["head.weight"]
        )
        if mask is not None:
            d_read = d_read * mask
        backbone_grads, du = self.backbone_backward(d_read, caches[1:-1], shape)
        grads.update(backbone_grads)
        if self.forecast.decoder == "segments":
            du, grads["decoder.position"] = decoder_inputs_backward(du, len(x))
        grads.update(self.adapter_backward(du, caches[0]))
        return grads

    def predict(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Forecasts for every window, in batches to bound memory: (N, L, F) -> (N, O)."""
        if len(x) == 0:
            return np.zeros((0, self.output_size), dtype=self.dtype)
        return np.concatenate([self.forward(x[i : i + batch_size])[0] for i in range(0, len(x), batch_size)])

    # ---- the recurrent state: chunks and single steps -------------------------------------------

    def initial_state(self, batch_size: int) -> State:
        """The state before any input (zeros), one entry per layer, for `forward_state` and `step`."""
        return [self.layer_initial_state(self.layer_params(i), batch_size) for i in range(self.n_layers)]

    def forward_state(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """x (B, L, F), or ids (B, L), and the state before it -> the head at every step (B, L, O), and
        the state after it. The scans of `forward`, started from `state`: running a sequence in chunks,
        each from the state the one before left, gives the outputs of one forward over all of it."""
        u, _ = self.adapter(x)  # (B, L, .)
        h, _, new_state = self.backbone(u, state)  # (B, L, D)
        return linear(h, self.params["head.weight"], self.params["head.bias"]), new_state  # (B, L, O)

    def step(self, x_t: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """One time step, as the recurrence: x_t (B, F), or ids (B,), and the state -> y_t (B, O), the
        next state. Stepping through a sequence gives forward(x, return_sequence=True) step by step."""
        u = self.adapter(np.asarray(x_t)[:, None])[0][:, 0]  # (B, .)
        h, new_state = self.backbone_step(u, state)  # (B, D)
        return linear(h, self.params["head.weight"], self.params["head.bias"]), new_state  # (B, O)

    def step_function(self) -> StepFunction:
        """`step` for a run of steps on weights that do not change meanwhile (a generation), where a model
        may prepare its weights once (Mamba folds them); by default `step` itself."""
        return self.step

    @property
    def n_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))


def every_step(d_out: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A gradient of every step (B, L, D): d_out itself, or zeros but d_out (B, D) at the last step."""
    if d_out.ndim == len(shape):
        return d_out
    dh = np.zeros(shape, dtype=dtype)
    dh[:, -1] = d_out
    return dh
