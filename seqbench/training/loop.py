"""The training loop, backend-neutral: epochs of shuffled batches, validation, best weights.

It talks to a model only through the `Learner` interface, so NumPy and Torch
models (and later tasks) share it. Everything the loop needs to continue where it
left off is a `Checkpoint`: the learner's state (weights and optimiser, as plain
arrays), the best weights so far, the progress (history, best epoch, patience
count) and the state of the generator that orders the batches. `fit` hands one to
`on_checkpoint` at the start and after every finished epoch, and continues from
one given as `resume`; a run interrupted and resumed is the same run, number for
number, as one that was never interrupted.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from seqbench.data.windows import WindowSet
from seqbench.models.numpy.layers import forecast_loss
from seqbench.models.optim import scheduled_lr
from seqbench.spec import TrainSpec

Arrays = dict[str, np.ndarray]


class Learner(Protocol):
    n_params: int
    loss: str  # a forecast's train.loss (mse, mae, mse+mae), or an LM's cross_entropy

    def train_step(self, x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> float: ...
    def predict(self, x: np.ndarray) -> np.ndarray: ...
    def snapshot(self) -> Arrays: ...
    def restore(self, snapshot: Arrays) -> None: ...
    def set_lr(self, lr: float) -> None: ...

    # checkpoints: weights and optimiser state as named NumPy arrays (no pickle), whatever the backend
    def state_dict(self) -> Arrays: ...
    def load_state_dict(self, state: Arrays) -> None: ...


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float
    lr: float
    seconds: float  # the epoch's training batches and its validation
    val_seconds: float = 0.0  # of which the validation


@dataclass
class FitResult:
    status: str = "completed"  # completed | diverged | interrupted
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = float("inf")
    stale: int = 0  # epochs since the last improvement (early stopping)
    train_seconds: float = 0.0  # the finished epochs': training batches and validation
    val_seconds: float = 0.0  # of which validation
    samples_seen: int = 0
    weights_given: bool = False  # weights from elsewhere (seqbench convert): scored without training

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    @property
    def trained(self) -> bool:
        """Whether the weights are a result: at least one finished epoch, or weights given."""
        return self.epochs_run > 0 or self.weights_given


@dataclass
class Checkpoint:
    """The state after `progress.epochs_run` finished epochs: enough to continue exactly."""

    progress: FitResult
    learner_state: Arrays  # Learner.state_dict(): weights and optimiser state
    best_weights: Arrays  # Learner.snapshot() of the best epoch so far
    rng_state: dict[str, Any]  # the batch-order generator's bit_generator.state

    @property
    def epoch(self) -> int:
        return self.progress.epochs_run


BatchHook = Callable[[int, int, int, float], None]  # (epoch, batch, n_batches, mean train loss so far)


class TrainData(Protocol):
    """A task's training data as the loop sees it: an epoch's sample ids, and a batch of them.

    A forecast's WindowSet is one (the ids are window positions); an LM's windows of bytes
    are another (the ids are random offsets into the text).
    """

    def __len__(self) -> int: ...  # samples per epoch
    def epoch_ids(self, rng: np.random.Generator, shuffle: bool) -> np.ndarray: ...
    def batch(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class Validation(Protocol):
    """A task's held-out data: `loss(learner)` is the validation loss early stopping reads."""

    def loss(self, learner: Learner) -> float: ...


def mse(learner: Learner, windows: WindowSet) -> float:
    """Mean squared error over every window of a split (no dropped last batch), weighted if it has weights."""
    diff = learner.predict(windows.x) - windows.y
    squared = diff * diff if windows.weight is None else windows.weight * diff * diff
    return float(np.mean(squared))


def _epoch_ids(train: WindowSet | TrainData, rng: np.random.Generator, shuffle: bool) -> np.ndarray:
    if isinstance(train, WindowSet):
        return rng.permutation(len(train.x)) if shuffle else np.arange(len(train.x))
    return train.epoch_ids(rng, shuffle)


def _batch(train: WindowSet | TrainData, ids: np.ndarray) -> tuple[np.ndarray, ...]:
    """(x, y), or (x, y, weight) for windows with loss weights."""
    if not isinstance(train, WindowSet):
        return train.batch(ids)
    if train.weight is None:
        return train.x[ids], train.y[ids]
    return train.x[ids], train.y[ids], train.weight[ids]


def window_loss(learner: Learner, windows: WindowSet) -> float:
    """The learner's training loss (train.loss: mse, mae or mse+mae) over every window of a split."""
    if learner.loss == "mse":
        return mse(learner, windows)
    return forecast_loss(learner.loss, learner.predict(windows.x), windows.y, windows.weight)[0]


def validation_loss(learner: Learner, val: WindowSet | Validation) -> float:
    """A forecast's training loss over every validation window, or the task's own validation loss."""
    return window_loss(learner, val) if isinstance(val, WindowSet) else val.loss(learner)


def fit(
    learner: Learner,
    train: WindowSet | TrainData,
    val: WindowSet | Validation,
    spec: TrainSpec,
    rng: np.random.Generator,
    on_epoch: Callable[[EpochRecord, bool], None] | None = None,
    *,
    on_batch: BatchHook | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    resume: Checkpoint | None = None,
) -> FitResult:
    """Train for `spec.epochs` (or until early stopping), keeping the best weights by val loss.

    Each epoch starts by setting the learner's learning rate from `spec.schedule` and
    `spec.warmup_epochs` (see `scheduled_lr`); the history records it. On return the learner
    holds the best weights. A non-finite training or validation loss stops the run with
    status 'diverged'; `should_stop()` returning True (checked before every batch) stops it
    with status 'interrupted', dropping the unfinished epoch. Either way the best weights so
    far are kept, and `on_checkpoint` has seen the last finished epoch.
    """
    if resume is None:
        result, best = FitResult(), learner.snapshot()
    else:
        result, best = copy.deepcopy(resume.progress), copy.deepcopy(resume.best_weights)
        learner.load_state_dict(resume.learner_state)
        rng.bit_generator.state = resume.rng_state

    def checkpoint() -> None:
        if on_checkpoint is not None:
            state = Checkpoint(copy.deepcopy(result), learner.state_dict(), best, rng.bit_generator.state)
            on_checkpoint(state)

    if resume is None:
        checkpoint()  # so that a run stopped in its first epoch can be resumed too
    n_batches = -(-(len(train.x) if isinstance(train, WindowSet) else len(train)) // spec.batch_size)
    for epoch in range(result.epochs_run + 1, spec.epochs + 1):
        if spec.patience and result.stale >= spec.patience:
            break
        lr = scheduled_lr(spec.lr, epoch, spec.epochs, spec.schedule, spec.warmup_epochs)
        learner.set_lr(lr)
        start = time.perf_counter()
        order = _epoch_ids(train, rng, spec.shuffle)
        losses, seen, total = [], 0, 0.0
        for i in range(0, len(order), spec.batch_size):
            if should_stop is not None and should_stop():
                result.status = "interrupted"
                break
            batch = order[i : i + spec.batch_size]
            loss = learner.train_step(*_batch(train, batch))
            losses.append(loss * len(batch))
            if not np.isfinite(loss):
                result.status = "diverged"
                break
            if on_batch is not None:
                seen, total = seen + len(batch), total + losses[-1]
                on_batch(epoch, len(losses), n_batches, total / seen)
        if result.status == "interrupted":
            break  # the unfinished epoch is dropped: a resume repeats it from its start
        train_loss = float(np.sum(losses) / len(order))
        val_start = time.perf_counter()
        val_loss = validation_loss(learner, val) if result.status == "completed" else float("nan")
        if not np.isfinite(val_loss):
            result.status = "diverged"
        end = time.perf_counter()
        seconds, val_seconds = end - start, end - val_start
        result.train_seconds += seconds
        result.val_seconds += val_seconds
        result.samples_seen += len(order)
        record = EpochRecord(epoch, train_loss, val_loss, lr, seconds, val_seconds)
        result.history.append(record)
        improved = bool(np.isfinite(val_loss) and val_loss < result.best_val_loss - spec.min_delta)
        if improved:
            result.best_val_loss, result.best_epoch, result.stale = val_loss, epoch, 0
            best = learner.snapshot()
        else:
            result.stale += 1
        if on_epoch:
            on_epoch(record, improved)
        if result.status != "completed":
            break
        checkpoint()
    learner.restore(best)
    return result
