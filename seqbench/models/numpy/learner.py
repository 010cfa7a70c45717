"""Binds a NumPy model to its optimiser: one training step, prediction, saving."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqbench.io import atomic_path
from seqbench.models.numpy.base import RecurrentStack
from seqbench.models.numpy.layers import mse_loss
from seqbench.optim import Optimizer, clip_grad_norm


class NumpyLearner:
    """The training-loop interface (see seqbench.train.Learner) for a NumPy model."""

    weights_file = "model.npz"

    def __init__(self, model: RecurrentStack, optimizer: Optimizer, grad_clip: float | None) -> None:
        self.model, self.optimizer, self.grad_clip = model, optimizer, grad_clip

    @property
    def n_params(self) -> int:
        return self.model.n_params

    def set_lr(self, lr: float) -> None:
        self.optimizer.lr = lr

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One optimiser step on a batch; returns the batch's MSE before the step."""
        out, caches = self.model.forward(x)
        loss, dy = mse_loss(out, y.astype(out.dtype, copy=False))
        if not np.isfinite(loss):
            return loss
        grads = self.model.backward(dy, caches)
        clip_grad_norm(grads, self.grad_clip)
        self.optimizer.step(grads)
        return loss

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x).astype(np.float64)

    def snapshot(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.model.params.items()}

    def restore(self, snapshot: dict[str, np.ndarray]) -> None:
        for k, v in snapshot.items():
            self.model.params[k][...] = v

    def save(self, path: Path) -> None:
        """Weights as .npz (plain arrays, loadable with allow_pickle=False)."""
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **self.model.params)

    def load(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as saved:
            self.restore({k: saved[k] for k in saved.files})
