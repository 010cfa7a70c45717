"""A stack of recurrent layers with a linear head: the shape every NumPy model shares.

A model maps a window x (B, L, F) to a forecast y (B, O): the backbone (the layers)
turns the sequence into hidden states (B, L, D), and the head reads the last one.
There is one forward pass, `forward`, which training, prediction and the causality
audit all run; `forward(x, return_sequence=True)` has the head read every step
instead (the forecast from each prefix of the window), and `sequence(x)` is the
backbone's output. A subclass supplies one recurrent layer (its init, forward and
backward); this class stacks `n_layers` of them and owns the parameters, by name, in
`self.params` (names match the Torch twins, so weights convert both ways).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqbench.models.numpy.layers import init_uniform, linear, linear_backward

Params = dict[str, np.ndarray]


class RecurrentStack:
    """`n_layers` recurrent layers, then a linear head on the last time step."""

    options: tuple[str, ...] = ()  # spec keys (model.*) the constructor takes beyond the common ones

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int = 128,
        n_layers: int = 1,
        rng: np.random.Generator | None = None,
        dtype: type | np.dtype = np.float32,
    ) -> None:
        rng = rng if rng is not None else np.random.default_rng(0)
        self.dtype = np.dtype(dtype)
        self.input_size, self.output_size = input_size, output_size
        self.hidden_size, self.n_layers = hidden_size, n_layers
        self.params: Params = {}
        for i in range(n_layers):
            layer_in = input_size if i == 0 else hidden_size
            for key, value in self.init_layer(rng, layer_in, hidden_size, self.dtype).items():
                self.params[f"layers.{i}.{key}"] = value
        self.params["head.weight"] = init_uniform(rng, (hidden_size, output_size), hidden_size, self.dtype)
        self.params["head.bias"] = init_uniform(rng, (output_size,), hidden_size, self.dtype)

    # ---- what a subclass supplies -----------------------------------------------------------

    def init_layer(
        self, rng: np.random.Generator, input_size: int, hidden_size: int, dtype: np.dtype
    ) -> Params:
        raise NotImplementedError

    def layer_forward(self, p: Params, x: np.ndarray) -> tuple[np.ndarray, Any]:
        """x (B, L, F) -> hidden states (B, L, D) and a cache for the backward pass."""
        raise NotImplementedError

    def layer_backward(self, p: Params, dh: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        """dL/dh (B, L, D) -> dL/dx (B, L, F) and the layer's parameter gradients."""
        raise NotImplementedError

    # ---- the stack ---------------------------------------------------------------------------

    def layer_params(self, i: int) -> Params:
        prefix = f"layers.{i}."
        return {k[len(prefix) :]: v for k, v in self.params.items() if k.startswith(prefix)}

    def backbone(self, x: np.ndarray) -> tuple[np.ndarray, list[Any]]:
        """x (B, L, F) -> what the head reads at every step (B, L, D), with the caches for the backward pass.

        Here the last layer's states; a model with more than a stack of layers (Mamba) overrides this
        and `backbone_backward` together.
        """
        h = x.astype(self.dtype, copy=False)
        caches = []
        for i in range(self.n_layers):
            h, cache = self.layer_forward(self.layer_params(i), h)  # (B, L, D)
            caches.append(cache)
        return h, caches

    def backbone_backward(self, d_out: np.ndarray, caches: list[Any], shape: tuple[int, ...]) -> Params:
        """The gradients of the backbone's parameters, given dL/d(its output) of `shape` (B, L, D):
        d_out is (B, D) when only the last step was read (a forecast), or (B, L, D)."""
        dh = every_step(d_out, shape, self.dtype)  # (B, L, D)
        grads: Params = {}
        for i in reversed(range(self.n_layers)):
            dh, layer_grads = self.layer_backward(self.layer_params(i), dh, caches[i])
            grads.update({f"layers.{i}.{k}": v for k, v in layer_grads.items()})
        return grads

    def forward(self, x: np.ndarray, return_sequence: bool = False) -> tuple[np.ndarray, list[Any]]:
        """x (B, L, F) -> the forecast y (B, O) from the last step, with the caches `backward` needs.

        With `return_sequence`, the forecast the head makes at every step, (B, L, O): step t's may
        depend on inputs 0..t only, which is what the causality audit checks. Training, prediction
        and the audit all run this one function; `return_sequence` changes only which steps the head reads.
        """
        h, caches = self.backbone(x)  # (B, L, D)
        read = h if return_sequence else h[:, -1]  # (B, L, D) or (B, D)
        y = linear(read, self.params["head.weight"], self.params["head.bias"])  # (B, L, O) or (B, O)
        return y, [*caches, (read, h.shape)]

    def sequence(self, x: np.ndarray) -> np.ndarray:
        """x (B, L, F) -> what the head reads at every step (B, L, D): the backbone of `forward`."""
        return self.backbone(x)[0]

    def backward(self, dy: np.ndarray, caches: list[Any]) -> Params:
        """dL/dy (B, O), or (B, L, O) after forward(x, return_sequence=True) -> every parameter's gradient."""
        read, shape = caches[-1]
        grads: Params = {}
        d_read, grads["head.weight"], grads["head.bias"] = linear_backward(
            dy, read, self.params["head.weight"]
        )
        grads.update(self.backbone_backward(d_read, caches[:-1], shape))
        return grads

    def predict(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Forecasts for every window, in batches to bound memory: (N, L, F) -> (N, O)."""
        if len(x) == 0:
            return np.zeros((0, self.output_size), dtype=self.dtype)
        return np.concatenate([self.forward(x[i : i + batch_size])[0] for i in range(0, len(x), batch_size)])

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
