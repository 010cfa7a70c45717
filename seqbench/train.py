"""The training loop, backend-neutral: epochs of shuffled batches, validation, best weights.

It talks to a model only through the `Learner` interface, so NumPy and Torch
models (and later tasks) share it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from seqbench.data.windows import WindowSet
from seqbench.optim import scheduled_lr
from seqbench.spec import TrainSpec


class Learner(Protocol):
    n_params: int

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float: ...
    def predict(self, x: np.ndarray) -> np.ndarray: ...
    def snapshot(self) -> dict[str, np.ndarray]: ...
    def restore(self, snapshot: dict[str, np.ndarray]) -> None: ...
    def set_lr(self, lr: float) -> None: ...


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float
    lr: float
    seconds: float


@dataclass
class FitResult:
    status: str = "completed"  # completed | diverged
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = float("inf")
    train_seconds: float = 0.0
    samples_seen: int = 0

    @property
    def epochs_run(self) -> int:
        return len(self.history)


def mse(learner: Learner, windows: WindowSet) -> float:
    """Mean squared error over every window of a split (no dropped last batch)."""
    diff = learner.predict(windows.x) - windows.y
    return float(np.mean(diff * diff))


def fit(
    learner: Learner,
    train: WindowSet,
    val: WindowSet,
    spec: TrainSpec,
    rng: np.random.Generator,
    on_epoch: Callable[[EpochRecord, bool], None] | None = None,
) -> FitResult:
    """Train for `spec.epochs` (or until early stopping), keeping the best weights by val loss.

    Each epoch starts by setting the learner's learning rate from `spec.schedule` and
    `spec.warmup_epochs` (see `scheduled_lr`); the history records it. On return the learner
    holds the best weights. A non-finite training loss stops the run with status 'diverged'
    (the best weights so far are kept).
    """
    result = FitResult()
    best = learner.snapshot()
    stale = 0
    for epoch in range(1, spec.epochs + 1):
        lr = scheduled_lr(spec.lr, epoch, spec.epochs, spec.schedule, spec.warmup_epochs)
        learner.set_lr(lr)
        start = time.perf_counter()
        order = rng.permutation(len(train.x)) if spec.shuffle else np.arange(len(train.x))
        losses = []
        for i in range(0, len(order), spec.batch_size):
            batch = order[i : i + spec.batch_size]
            loss = learner.train_step(train.x[batch], train.y[batch])
            losses.append(loss * len(batch))
            if not np.isfinite(loss):
                result.status = "diverged"
                break
        seconds = time.perf_counter() - start
        result.train_seconds += seconds
        result.samples_seen += len(order)
        train_loss = float(np.sum(losses) / len(order))
        val_loss = mse(learner, val) if result.status == "completed" else float("nan")
        record = EpochRecord(epoch, train_loss, val_loss, lr, seconds)
        result.history.append(record)
        improved = np.isfinite(val_loss) and val_loss < result.best_val_loss - spec.min_delta
        if improved:
            result.best_val_loss, result.best_epoch, stale = val_loss, epoch, 0
            best = learner.snapshot()
        else:
            stale += 1
        if on_epoch:
            on_epoch(record, improved)
        if result.status != "completed" or (spec.patience and stale >= spec.patience):
            break
    learner.restore(best)
    return result
