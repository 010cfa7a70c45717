"""Test scores do not depend on the batch size: every window is evaluated, whatever the batching.

The same trained weights, evaluated with prediction batches of 1, 7 and 64 windows, give the
same metrics.json scores. Bit for bit is not on offer: BLAS picks its kernels by matrix shape, so
a window's forecast can differ in the last bit between a batch of 1 and one of 64 (measured:
at most 4e-16 in float64, 2e-7 in float32); the scores agree to 1e-12 in float64.
"""

import numpy as np
import pytest

from seqbench.run.experiment import prepare
from seqbench.spec import Spec
from seqbench.tasks.forecast import ForecastTask
from seqbench.training.loop import mse

BATCHES = (1, 7, 64)


def spec_for(price_csv, model, backend, dtype="float64"):
    return Spec.model_validate(
        {
            "name": "bs",
            "dataset": {
                "source": "csv",
                "path": str(price_csv),
                "target": "Close",
                "seq_len": 10,
                "horizon": 2,
                "transform": "log_return",
                "scaler": "standard",
            },
            "model": {"name": model, "backend": backend, "hidden_size": 6, "state_size": 3},
            "train": {"epochs": 1, "dtype": dtype, "batch_size": 16, "patience": 0},
        }
    )


def trained(price_csv, model, backend, dtype="float64"):
    """A briefly trained learner on the price windows (one epoch from the seed's weights)."""
    from seqbench.training.loop import fit

    spec = spec_for(price_csv, model, backend, dtype)
    loaded, windows, learner = prepare(spec, "data")
    result = fit(learner, windows.train, windows.val, spec.train, np.random.default_rng(0))
    return spec, loaded, windows, learner, result


SCORES = ("test", "test_model_space", "val", "baselines", "significance")


def flat(metrics):
    """The scores of a metrics dict as {"test.rmse": value, ...} (numbers only)."""
    out = {}
    for key in SCORES:
        stack = [(key, metrics[key])]
        while stack:
            prefix, value = stack.pop()
            if isinstance(value, dict):
                stack += [(f"{prefix}.{k}", v) for k, v in value.items()]
            else:
                out[prefix] = value
    return out


def evaluate(spec, loaded, windows, learner, result, run_id):
    """metrics.json of `learner` on these windows (the forecast task's evaluate)."""
    task = ForecastTask(spec, "data")
    task.loaded, task.data = loaded, windows
    return task.evaluate(learner, result, run_id)


@pytest.mark.parametrize("model", ["mingru", "gru", "mamba"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_test_metrics_do_not_depend_on_the_prediction_batch_size(price_csv, model, backend):
    if backend == "torch":
        pytest.importorskip("torch")
    spec, loaded, windows, learner, result = trained(price_csv, model, backend)
    n_test = len(windows.test.x)
    assert n_test % 7 and n_test % 64  # the last batch is a partial one for 7 and 64
    metrics = {}
    for batch in BATCHES:
        learner.predict_batch = batch
        assert learner.predict(windows.test.x).shape == (n_test, windows.test.y.shape[1])
        metrics[batch] = evaluate(spec, loaded, windows, learner, result, "run")
        assert metrics[batch]["splits"]["test"]["windows"] == n_test
    for batch in BATCHES[1:]:
        assert flat(metrics[batch]) == pytest.approx(flat(metrics[1]), rel=1e-12, abs=1e-12, nan_ok=True)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_float32_scores_agree_to_float32_rounding(price_csv, backend):
    if backend == "torch":
        pytest.importorskip("torch")
    spec, loaded, windows, learner, result = trained(price_csv, "mingru", backend, "float32")
    scores = []
    for batch in BATCHES:
        learner.predict_batch = batch
        scores.append(evaluate(spec, loaded, windows, learner, result, "run")["test"])
    for other in scores[1:]:
        assert other == pytest.approx(scores[0], rel=1e-5)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("n", [1, 23, 64, 65])
def test_predict_returns_one_row_per_window(price_csv, backend, n):
    """N windows not divisible by the batch size: N rows, the last partial batch included, in order."""
    if backend == "torch":
        pytest.importorskip("torch")
    _, windows, learner = prepare(spec_for(price_csv, "gru", backend), "data")
    x = windows.train.x[:n]
    learner.predict_batch = 1
    one_by_one = learner.predict(x)
    learner.predict_batch = 7
    batched = learner.predict(x)
    assert batched.shape == one_by_one.shape == (n, 2)
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-12, atol=1e-14)
    learner.predict_batch = 1024
    assert learner.predict(x[:0]).shape == (0, 2)


def test_validation_loss_uses_every_window(price_csv):
    """train.mse (the validation loss) is the mean over every window, not over whole batches."""
    _, windows, learner = prepare(spec_for(price_csv, "mingru", "numpy"), "data")
    learner.predict_batch = 7
    diff = learner.predict(windows.val.x) - windows.val.y
    assert len(diff) == len(windows.val.x)
    assert mse(learner, windows.val) == pytest.approx(float(np.mean(diff**2)), rel=1e-15)
