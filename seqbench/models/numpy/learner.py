"""Binds a NumPy model to its optimiser: one training step, prediction, saving."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from seqbench.io import atomic_path
from seqbench.models.numpy import layers
from seqbench.models.numpy.base import RecurrentStack
from seqbench.models.numpy.memory import keep_freed_memory, windows_per_pass
from seqbench.models.optim import Optimizer, clip_grad_norm
from seqbench.models.weights_file import check_weights, open_weights


class NumpyRecurrent:
    """The recurrent mode of a NumPy model (an LM's evaluation and generation), outputs in float64."""

    def __init__(self, model: RecurrentStack) -> None:
        self.model = model

    def decoder(self) -> NumpyRecurrent:
        """What a generation runs on (reads the prompt, then steps): this model itself."""
        return self

    def initial_state(self, batch_size: int) -> Any:
        return self.model.initial_state(batch_size)

    def forward_state(self, x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """x (B, L) -> outputs at every step (B, L, O), float64, and the state after step L."""
        y, state = self.model.forward_state(x, state)
        return np.asarray(y, dtype=np.float64), state

    def step(self, x_t: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """One step: x_t (B,) -> outputs (B, O), float64, and the next state."""
        y, state = self.model.step(x_t, state)
        return np.asarray(y, dtype=np.float64), state

    def step_function(self) -> Callable[[np.ndarray, Any], tuple[np.ndarray, Any]]:
        """`step` for a run of steps on unchanging weights (a generation): the model's step function."""
        step = self.model.step_function()

        def run(x_t: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
            y, state = step(x_t, state)
            return np.asarray(y, dtype=np.float64), state

        return run


class NumpyLearner(NumpyRecurrent):
    """The training-loop interface (see seqbench.training.loop.Learner) for a NumPy model."""

    weights_file = "model.npz"

    def __init__(
        self,
        model: RecurrentStack,
        optimizer: Optimizer,
        grad_clip: float | None,
        predict_batch: int = 1024,
        loss: str = "mse",
    ) -> None:
        super().__init__(model)
        self.optimizer, self.grad_clip = optimizer, grad_clip
        self.predict_batch = predict_batch  # windows per forward pass in predict (memory only)
        self.loss = loss  # a forecast's (mse, mae, mse+mae) or cross_entropy (next-byte logits of an LM)
        keep_freed_memory()  # large temporaries reuse warm pages (see memory.py)

    @property
    def n_params(self) -> int:
        return self.model.n_params

    def set_lr(self, lr: float) -> None:
        self.optimizer.lr = lr

    def train_step(self, x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> float:
        """One optimiser step on a batch; returns its loss (train.loss, or nats per byte) before the step."""
        self.model.training = True  # dropout on, for this step only
        try:
            out, caches = self.model.forward(x)
        finally:
            self.model.training = False
        if self.loss == "cross_entropy":
            loss, dy = layers.cross_entropy_loss(out, y)  # out (B, L, V) logits, y (B, L) byte ids
        else:
            w = None if weight is None else weight.astype(out.dtype, copy=False)
            loss, dy = layers.forecast_loss(self.loss, out, y.astype(out.dtype, copy=False), w)
        if not np.isfinite(loss):
            return loss
        grad = self.optimizer.flatten(self.model.backward(dy, caches))
        clip_grad_norm(grad, self.grad_clip)
        self.optimizer.step_flat(grad)
        return loss

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Forecasts for every window, the last partial batch included: (N, L, F) -> (N, O), float64.

        At most `predict_batch` windows a pass, fewer for long windows (`windows_per_pass`)."""
        batch = windows_per_pass(self.predict_batch, x.shape[1] if x.ndim > 1 else 1)
        return self.model.predict(x, batch).astype(np.float64)

    def snapshot(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.model.params.items()}

    def restore(self, snapshot: dict[str, np.ndarray]) -> None:
        for k, v in snapshot.items():
            self.model.params[k][...] = v

    def state_dict(self) -> dict[str, np.ndarray]:
        """Weights (`params/NAME`) and optimiser state (`optim/...`, step count included), copied."""
        state = {f"params/{k}": v.copy() for k, v in self.model.params.items()}
        state.update({f"optim/{k}": np.array(v) for k, v in self.optimizer.state_dict().items()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """The inverse of `state_dict`; a missing or misshapen weight is a ValueError naming it."""
        params = {k.removeprefix("params/"): v for k, v in state.items() if k.startswith("params/")}
        check_weights(self.model.params, params)
        self.restore(params)
        self.optimizer.load_state_dict(
            {k.removeprefix("optim/"): v for k, v in state.items() if k.startswith("optim/")}
        )

    def save(self, path: Path) -> None:
        """Weights as .npz (plain arrays, loadable with allow_pickle=False)."""
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **self.model.params)

    def load(self, path: Path) -> None:
        """Weights saved by `save`, each read once its name and shape are the model's; never unpickles
        (a damaged or crafted file is a WeightsFileError, a misfit a ValueError)."""
        weights = open_weights(path)
        check_weights(self.model.params, weights)
        self.restore(weights.arrays())
