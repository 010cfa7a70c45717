"""The training loop: learning-rate schedule, early stopping, best weights, divergence."""

import numpy as np
import pytest

from seqbench.data.windows import WindowSet
from seqbench.models.numpy.learner import NumpyLearner
from seqbench.models.optim import SGD, Adam, scheduled_lr
from seqbench.models.registry import model_class
from seqbench.spec import TrainSpec
from seqbench.training.loop import Checkpoint, fit, mse


class ScriptedLearner:
    """One weight w that each training step sets to the next value of a script.

    It predicts w for every window, so with targets of 0 the validation loss is w^2;
    the training loss is w^2 too (nan when the script says nan).
    """

    n_params = 1
    loss = "mse"

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

    def state_dict(self):
        return {"w": self.w.copy(), "steps": np.array(self.steps)}

    def load_state_dict(self, state):
        self.w[...] = state["w"]
        self.steps = int(state["steps"])


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


def test_a_non_finite_validation_loss_is_divergence_too():
    learner, result = fit_scripted([2.0, 1.0, np.inf, 0.5])
    assert result.status == "diverged" and result.epochs_run == 3 and learner.w[0] == 1.0


def stop_after(n_calls):
    """A should_stop that says stop from its (n_calls + 1)-th call on."""
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > n_calls

    return should_stop


def test_should_stop_interrupts_before_the_next_batch_and_drops_the_unfinished_epoch():
    learner = ScriptedLearner([3.0, 2.0, 1.0, 0.5, 0.4])
    spec = TrainSpec(epochs=5, batch_size=4, patience=0)  # 2 batches per epoch
    result = fit(learner, zeros(), zeros(), spec, np.random.default_rng(0), should_stop=stop_after(3))
    assert result.status == "interrupted"
    assert learner.steps == 3  # epoch 1 (2 batches), then one batch of epoch 2
    assert result.epochs_run == 1 and result.best_epoch == 1
    assert learner.w[0] == 2.0  # the best (only finished) epoch's weights, not the half-trained ones


def test_checkpoints_are_taken_at_the_start_and_after_every_finished_epoch():
    checkpoints = []
    learner = ScriptedLearner([3.0, 2.0, 1.0])
    spec = TrainSpec(epochs=3, batch_size=8, patience=0)
    fit(learner, zeros(), zeros(), spec, np.random.default_rng(0), on_checkpoint=checkpoints.append)
    assert [c.epoch for c in checkpoints] == [0, 1, 2, 3]
    assert [float(c.learner_state["w"][0]) for c in checkpoints] == [0.0, 3.0, 2.0, 1.0]
    assert checkpoints[2].progress.best_epoch == 2 and checkpoints[2].progress.history[-1].epoch == 2


def interrupted_then_resumed(make_learner, train, val, spec, stop_calls):
    """Fit until should_stop fires, then resume a fresh learner from the last checkpoint."""
    checkpoints: list[Checkpoint] = []
    first = fit(
        make_learner(), train, val, spec, np.random.default_rng(7),
        should_stop=stop_after(stop_calls), on_checkpoint=checkpoints.append,
    )  # fmt: skip
    assert first.status == "interrupted"
    learner = make_learner()
    result = fit(learner, train, val, spec, np.random.default_rng(7), resume=checkpoints[-1])
    return learner, result


def test_resuming_an_early_stopped_schedule_gives_the_same_run():
    """Patience count, best epoch and the stop itself carry over a resume."""
    script = [3.0, 2.0, 2.5, 2.6, 2.7, 1.0, 0.5]
    spec = TrainSpec(epochs=7, batch_size=8, patience=3)
    straight_learner = ScriptedLearner(script)
    straight = fit(straight_learner, zeros(), zeros(), spec, np.random.default_rng(7))
    for stop_calls in range(5):  # interrupted in epoch 1, 2, 3, 4 or 5
        learner, resumed = interrupted_then_resumed(
            lambda: ScriptedLearner(script), zeros(), zeros(), spec, stop_calls
        )
        assert resumed.epochs_run == straight.epochs_run == 5 and resumed.best_epoch == 2
        assert [r.val_loss for r in resumed.history] == [r.val_loss for r in straight.history]
        assert learner.w[0] == straight_learner.w[0] == 2.0


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_real_model_interrupted_and_resumed_ends_bit_for_bit_where_an_uninterrupted_one_does(optimizer):
    rng = np.random.default_rng(0)
    train = WindowSet(rng.normal(size=(40, 5, 2)), rng.normal(size=(40, 1)), np.arange(40))
    val = WindowSet(rng.normal(size=(16, 5, 2)), rng.normal(size=(16, 1)), np.arange(16))
    spec = TrainSpec(epochs=4, batch_size=8, optimizer=optimizer, patience=0, schedule="cosine", lr=0.01)

    def make_learner():
        from seqbench.models.optim import make_optimizer

        model = model_class("gru", "numpy")(2, 1, hidden_size=4, rng=np.random.default_rng(0))
        opt = make_optimizer(optimizer, model.params, spec.lr, momentum=0.9)
        return NumpyLearner(model, opt, grad_clip=1.0)

    straight_learner = make_learner()
    straight = fit(straight_learner, train, val, spec, np.random.default_rng(7))
    learner, resumed = interrupted_then_resumed(make_learner, train, val, spec, stop_calls=12)  # in epoch 3
    assert [(r.train_loss, r.val_loss, r.lr) for r in resumed.history] == [
        (r.train_loss, r.val_loss, r.lr) for r in straight.history
    ]
    assert resumed.best_epoch == straight.best_epoch and resumed.samples_seen == straight.samples_seen
    for name, value in straight_learner.state_dict().items():
        np.testing.assert_array_equal(learner.state_dict()[name], value, err_msg=name)


@pytest.mark.parametrize(
    ("script", "min_delta"),
    [([3.0, 1.0, 2.0, 0.5, 0.5], 0.0), ([1.0, 0.999, 0.998, 0.5], 0.01), ([2.0, 1.0, 1.0, 1.0], 0.0)],
)
def test_the_loss_curve_marks_the_epoch_whose_weights_fit_keeps(script, min_delta):
    from seqbench.artifacts.plots import best_epoch
    from seqbench.run.experiment import history_frame

    _, result = fit_scripted(script, min_delta=min_delta)
    assert best_epoch(history_frame(result), min_delta) == (result.best_epoch, result.best_val_loss)
