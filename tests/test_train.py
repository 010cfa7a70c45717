"""The training loop: learning-rate schedule, early stopping, best weights, divergence."""

import numpy as np
import pytest

from seqbench.data.windows import WindowSet
from seqbench.models.numpy.learner import NumpyLearner
from seqbench.models.registry import model_class
from seqbench.optim import SGD, Adam, scheduled_lr
from seqbench.spec import TrainSpec
from seqbench.train import fit, mse


class ScriptedLearner:
    """One weight w that each training step sets to the next value of a script.

    It predicts w for every window, so with targets of 0 the validation loss is w^2;
    the training loss is w^2 too (nan when the script says nan).
    """

    n_params = 1

    def __init__(self, script):
        self.script = list(script)
        self.w = np.zeros(1)
        self.steps = 0
        self.lrs = []

    def train_step(self, x, y):
        self.w[...] = self.script[self.steps]
        self.steps += 1
        return float(self.w[0] ** 2)

    def predict(self, x):
        return np.full((len(x), 1), self.w[0])

    def snapshot(self):
        return {"w": self.w.copy()}

    def restore(self, snapshot):
        self.w[...] = snapshot["w"]

    def set_lr(self, lr):
        self.lrs.append(lr)


def zeros(n=8, seq_len=3):
    return WindowSet(np.zeros((n, seq_len, 1)), np.zeros((n, 1)), np.arange(n))


def fit_scripted(script, **train):
    """One batch per epoch, so epoch k trains on script[k - 1]."""
    learner = ScriptedLearner(script)
    spec = TrainSpec(**{"epochs": len(script), "batch_size": 8, "patience": 0, **train})
    return learner, fit(learner, zeros(), zeros(), spec, np.random.default_rng(0))


def test_schedule_sets_the_lr_each_epoch_and_records_it():
    learner, result = fit_scripted([1.0] * 6, lr=0.3, schedule="cosine", warmup_epochs=2)
    expected = [scheduled_lr(0.3, k, 6, "cosine", 2) for k in range(1, 7)]
    assert learner.lrs == pytest.approx(expected)
    assert [r.lr for r in result.history] == pytest.approx(expected)


def test_constant_schedule_records_the_base_lr():
    _, result = fit_scripted([1.0] * 3, lr=0.02)
    assert [r.lr for r in result.history] == [0.02] * 3


def test_early_stopping_restores_the_best_weights():
    learner, result = fit_scripted([3.0, 2.0, 1.0, 1.5, 2.0, 2.5, 3.0, 0.5], patience=3)
    assert result.status == "completed"
    assert result.best_epoch == 3 and result.best_val_loss == pytest.approx(1.0)
    assert result.epochs_run == 6  # epochs 4, 5, 6 did not improve; epoch 8's 0.5 is never seen
    assert learner.w[0] == 1.0


def test_min_delta_ignores_tiny_improvements():
    _, result = fit_scripted([1.0, 0.999, 0.998], min_delta=0.01)
    assert result.best_epoch == 1


def test_without_patience_all_epochs_run_and_the_best_is_kept():
    learner, result = fit_scripted([3.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    assert result.epochs_run == 6 and result.best_epoch == 2 and learner.w[0] == 1.0


def test_a_nan_loss_stops_with_status_diverged_and_keeps_the_best_weights():
    learner, result = fit_scripted([2.0, 1.0, 1.5, np.nan, 0.1, 0.1])
    assert result.status == "diverged"
    assert result.epochs_run == 4 and result.best_epoch == 2
    assert np.isnan(result.history[-1].val_loss)
    assert learner.w[0] == 1.0


def test_a_real_model_whose_lr_grows_too_large_diverges_and_keeps_its_best_weights():
    """A warm-up far longer than the run raises SGD's lr by 0.1 per epoch until minGRU blows up."""
    rng = np.random.default_rng(0)
    train = WindowSet(rng.normal(size=(64, 5, 1)), rng.normal(size=(64, 1)), np.arange(64))
    val = WindowSet(rng.normal(size=(32, 5, 1)), train.y[:32], np.arange(32))
    model = model_class("mingru", "numpy")(1, 1, hidden_size=4, rng=np.random.default_rng(0))
    learner = NumpyLearner(model, SGD(model.params, lr=1.0), grad_clip=None)
    spec = TrainSpec(
        epochs=30, batch_size=16, optimizer="sgd", momentum=0.0, grad_clip=None, patience=0,
        lr=0.1 * 101, warmup_epochs=100,
    )  # fmt: skip
    with np.errstate(all="ignore"):
        result = fit(learner, train, val, spec, np.random.default_rng(0))
    assert result.status == "diverged"
    assert 1 <= result.best_epoch < result.epochs_run < 30
    assert not np.isfinite(result.history[-1].train_loss)
    assert all(np.isfinite(v).all() for v in learner.snapshot().values())
    assert mse(learner, val) == pytest.approx(result.best_val_loss)


def test_the_numpy_learner_trains_at_the_scheduled_lr():
    rng = np.random.default_rng(0)
    data = WindowSet(rng.normal(size=(32, 4, 1)), rng.normal(size=(32, 1)), np.arange(32))
    model = model_class("gru", "numpy")(1, 1, hidden_size=4, rng=np.random.default_rng(0))
    learner = NumpyLearner(model, Adam(model.params, lr=1.0), grad_clip=1.0)
    spec = TrainSpec(epochs=4, lr=0.01, schedule="cosine", warmup_epochs=1)
    result = fit(learner, data, data, spec, np.random.default_rng(0))
    assert learner.optimizer.lr == pytest.approx(result.history[-1].lr)
    assert learner.optimizer.lr == pytest.approx(scheduled_lr(0.01, 4, 4, "cosine", 1))
