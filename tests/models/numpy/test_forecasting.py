"""A forecast model's input segments, segment decoder, skip path and dropout (models/numpy/forecasting.py)."""

import numpy as np
import pytest

from seqbench.checks.gradcheck import FORECAST_CONFIGS, GRADCHECK_OPTIONS, check_model
from seqbench.models.numpy.forecasting import ForecastOptions, decoder_inputs, to_segments
from seqbench.models.numpy.learner import NumpyLearner
from seqbench.models.optim import make_optimizer
from seqbench.models.registry import model_class, model_names

MODELS = model_names()


def build(name, forecast, n_features=2, n_outputs=4, hidden=5, seed=0, dtype=np.float64):
    return model_class(name, "numpy")(
        n_features,
        n_outputs,
        hidden_size=hidden,
        n_layers=2,
        rng=np.random.default_rng(seed),
        dtype=dtype,
        forecast=forecast,
        **GRADCHECK_OPTIONS.get(name, {}),
    )


def test_segments_are_consecutive_rows_of_every_feature():
    x = np.arange(2 * 6 * 3).reshape(2, 6, 3)  # (B, L, F)
    seg = to_segments(x, 2)  # (B, 3, 6)
    assert seg.shape == (2, 3, 6)
    assert np.array_equal(seg[1, 2], np.concatenate([x[1, 4], x[1, 5]]))  # rows 4 and 5, features in order


def test_decoder_inputs_are_each_window_then_one_position():
    u = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(float)  # (B, N, A)
    position = -np.arange(5 * 4).reshape(5, 4).astype(float)  # (M, A)
    dec = decoder_inputs(u, position)  # (B M, N + 1, A)
    assert dec.shape == (10, 4, 4)
    assert np.array_equal(dec[7, :3], u[1]) and np.array_equal(dec[7, 3], position[2])  # b 1, m 2


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("config", FORECAST_CONFIGS, ids=["decoder+skip", "segments"])
def test_gradients_match_finite_differences(name, config):
    config = dict(config)
    forecast = config.pop("forecast")
    results = check_model(
        name, hidden_size=4, model_options={**GRADCHECK_OPTIONS.get(name, {}), "forecast": forecast}, **config
    )
    assert {"decoder.position", "skip.weight"} <= {r.name for r in results} or forecast.decoder == "last"
    assert max(r.max_rel_error for r in results) < 1e-6


@pytest.mark.parametrize("name", MODELS)
def test_the_first_layer_reads_a_segment_of_every_feature(name):
    model = build(name, ForecastOptions(segment=3, seq_len=6, horizon=2))
    first = "embed.weight" if name == "mamba" else next(k for k in model.params if k.startswith("layers.0."))
    assert model.params[first].shape[0] == 2 * 3  # F S values per step
    with pytest.raises(ValueError, match="segments of 3"):
        model.forward(np.zeros((1, 7, 2)))


@pytest.mark.parametrize("name", MODELS)
def test_a_step_sees_the_rows_up_to_its_segments_end_only(name):
    options = ForecastOptions(segment=3, decoder="segments", linear_skip=True, seq_len=9, horizon=6)
    model = build(name, options)
    x = np.random.default_rng(1).normal(size=(2, 9, 2))
    base = model.forward(x, return_sequence=True)[0]  # (B, 3, O)
    assert base.shape == (2, 3, 4)
    np.testing.assert_allclose(base[:, -1], model.forward(x)[0], atol=1e-12)
    later = x.copy()
    later[:, 4:] += 1.0  # rows 4.. change: segment 0 (rows 0-2) must not, segment 1 (rows 3-5) may
    moved = np.abs(model.forward(later, return_sequence=True)[0] - base)
    assert moved[:, 0].max() == 0.0 and moved[:, 1:].min() > 0


@pytest.mark.parametrize("name", MODELS)
def test_defaults_are_the_model_as_it_was(name):
    plain, default = build(name, None), build(name, ForecastOptions())
    assert list(plain.params) == list(default.params)
    x = np.random.default_rng(2).normal(size=(3, 6, 2))
    assert np.array_equal(plain.forward(x)[0], default.forward(x)[0])


def test_dropout_acts_in_a_training_step_only():
    model = build("mingru", ForecastOptions(dropout=0.5))
    x = np.random.default_rng(3).normal(size=(64, 6, 2))
    first = model.forward(x)[0]
    assert np.array_equal(first, model.forward(x)[0])  # evaluation: deterministic, no dropout
    learner = NumpyLearner(model, make_optimizer("sgd", model.params, 0.0), None)
    seen = []
    original = model.decode

    def spy(*args, **kwargs):
        y, caches = original(*args, **kwargs)
        seen.append(caches[-1][2])  # the dropout mask
        return y, caches

    model.decode = spy
    learner.train_step(x, np.zeros((64, 4)))
    mask = seen[0]
    assert mask is not None and set(np.unique(mask)) == {0.0, 2.0}  # dropped, or scaled by 1 / (1 - p)
    assert 0.3 < (mask == 0).mean() < 0.7
    assert not model.training and np.array_equal(model.forward(x)[0], first)  # lr 0: weights unchanged


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"segment": 4, "seq_len": 6}, "does not divide"),
        ({"decoder": "segments", "segment": 2, "seq_len": 6, "horizon": 3}, "horizon"),
        ({"linear_skip": True}, "seq_len"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_options_that_cannot_work_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        ForecastOptions(**options)


def test_a_language_model_takes_none_of_them():
    with pytest.raises(ValueError, match="forecast model"):
        model_class("gru", "numpy")(7, 7, hidden_size=4, vocab_size=7, forecast=ForecastOptions(dropout=0.1))


@pytest.mark.parametrize("name", MODELS)
def test_chrono_gates_keep_state_for_up_to_the_steps_the_model_reads(name):
    steps = 16
    model = build(name, ForecastOptions(gate_init="chrono", seq_len=steps), hidden=64)
    if name == "mingru":
        kept = 1 - 1 / (1 + np.exp(-model.params["layers.0.b_z"]))  # 1 - z at a zero input
    elif name == "gru":
        b = model.params["layers.0.b_x"] + model.params["layers.0.b_h"]
        kept = 1 / (1 + np.exp(-b[64:128]))  # z, the fraction of h kept
    else:
        dt = np.log1p(np.exp(model.params["layers.0.dt_proj.bias"]))  # softplus
        kept = np.exp(-dt)  # A_bar of the slowest state (A = -1)
    memory = 1 / (1 - kept)  # steps until a unit forgets (1 / its per-step loss)
    assert memory.min() >= 1.5 and memory.max() <= steps + 1
    assert np.ptp(memory) > steps / 3  # spread over the range, not one time scale
    default = build(name, ForecastOptions(seq_len=steps), hidden=64)
    assert default.params.keys() == model.params.keys()
