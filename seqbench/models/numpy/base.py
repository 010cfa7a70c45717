"""A stack of recurrent layers with a linear head: the shape every NumPy model shares.

A model maps a window x (B, L, F) to a forecast y (B, O): the layers turn the
sequence into hidden states (B, L, D), and the head reads the last one. A
subclass supplies one recurrent layer (its init, forward and backward); this
class stacks `n_layers` of them and owns the parameters, by name, in
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

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list[Any]]:
        """x (B, L, F) -> y (B, O), with the caches the backward pass needs."""
        h = x.astype(self.dtype, copy=False)
        caches = []
        for i in range(self.n_layers):
            h, cache = self.layer_forward(self.layer_params(i), h)  # (B, L, D)
            caches.append(cache)
        last = h[:, -1]  # (B, D)
        y = linear(last, self.params["head.weight"], self.params["head.bias"])  # (B, O)
        caches.append((last, h.shape))
        return y, caches

    def sequence(self, x: np.ndarray) -> np.ndarray:
        """x (B, L, F) -> the last layer's states at every step (B, L, D); the head reads step L-1.

        For the causality audit (seqbench.audit): state t may depend on inputs 0..t only.
        """
        h = x.astype(self.dtype, copy=False)
        for i in range(self.n_layers):
            h, _ = self.layer_forward(self.layer_params(i), h)  # (B, L, D)
        return h

    def backward(self, dy: np.ndarray, caches: list[Any]) -> Params:
        """dL/dy (B, O) -> the gradient of every parameter, by name."""
        last, h_shape = caches[-1]
        grads: Params = {}
        d_last, grads["head.weight"], grads["head.bias"] = linear_backward(
            dy, last, self.params["head.weight"]
        )
        dh = np.zeros(h_shape, dtype=self.dtype)  # (B, L, D)
        dh[:, -1] = d_last
        for i in reversed(range(self.n_layers)):
            dh, layer_grads = self.layer_backward(self.layer_params(i), dh, caches[i])
            grads.update({f"layers.{i}.{k}": v for k, v in layer_grads.items()})
        return grads

    def predict(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Forecasts for every window, in batches to bound memory: (N, L, F) -> (N, O)."""
        if len(x) == 0:
            return np.zeros((0, self.output_size), dtype=self.dtype)
        return np.concatenate([self.forward(x[i : i + batch_size])[0] for i in range(0, len(x), batch_size)])

    @property
    def n_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))
