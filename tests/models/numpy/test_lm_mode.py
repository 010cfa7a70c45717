"""Language-model mode (vocab_size) and the recurrent state API of every NumPy model.

forward(x) is the reference: stepping token by token, or running chunks with the state carried,
must give its outputs; an LM's gradients are exact; and each LM learns a repeating byte pattern.
"""

import numpy as np
import pytest

from seqbench.checks.gradcheck import GRADCHECK_CONFIGS, GRADCHECK_OPTIONS, GRADCHECK_VOCAB, check_model
from seqbench.models.numpy.layers import cross_entropy_loss
from seqbench.models.optim import Adam, clip_grad_norm
from seqbench.models.registry import model_class, model_names

MODELS = model_names()
OPTIONS = {"mamba": {"state_size": 3, "expand": 2, "conv_kernel": 3, "dt_rank": 2}}
V, L, CHUNKS = 11, 17, (5, 7, 5)


def make(name, lm=True, n_layers=2, hidden=6, dtype=np.float64, seed=0, noise=0.3, **options):
    """A model (weights plus noise, so no gradient sits at a special point): an LM over V tokens, or a
    forecast model of 2 features and 3 outputs."""
    rng = np.random.default_rng(seed)
    model = model_class(name, "numpy")(
        2,
        V if lm else 3,
        hidden_size=hidden,
        n_layers=n_layers,
        rng=rng,
        dtype=dtype,
        vocab_size=V if lm else None,
        **{**OPTIONS.get(name, {}), **options},
    )
    for p in model.params.values():
        p += rng.normal(0, noise, size=p.shape).astype(dtype)
    return model


def inputs(lm, batch=3, length=L, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, size=(batch, length)) if lm else rng.normal(size=(batch, length, 2))


def stepped(model, x, step=None):
    """The outputs of `step` (or the given step function) over every time step of x, from the initial
    state: (B, L, O)."""
    step = step or model.step
    state = model.initial_state(len(x))
    outputs = []
    for t in range(x.shape[1]):
        y_t, state = step(x[:, t], state)  # (B, O)
        outputs.append(y_t)
    return np.stack(outputs, axis=1)


def chunked(model, x, chunks=CHUNKS):
    """The outputs of `forward_state` over consecutive chunks of x, the state carried: (B, L, O)."""
    state, outputs, start = model.initial_state(len(x)), [], 0
    for size in chunks:
        y, state = model.forward_state(x[:, start : start + size], state)  # (B, size, O)
        outputs.append(y)
        start += size
    assert start == x.shape[1]
    return np.concatenate(outputs, axis=1)


# ---- construction ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_an_lm_embeds_ids_and_reads_every_step(name):
    model = make(name)
    params = model.params
    assert model.is_lm and model.vocab_size == V and model.input_size == V and model.output_size == V
    assert params["embed.weight"].shape == (V, 6)
    assert "embed.bias" not in params
    assert next(iter(params)) == "embed.weight"  # drawn first, as Mamba's linear embedding is
    first = {"mingru": "layers.0.W_z", "gru": "layers.0.W_x", "mamba": "layers.0.in_proj.weight"}[name]
    assert params[first].shape[0] == 6  # the first layer reads the embedding (D), not V features
    x = inputs(True)
    logits, caches = model.forward(x)
    assert logits.shape == (3, L, V) and logits.dtype == np.float64
    np.testing.assert_array_equal(model.forward(x, return_sequence=True)[0], logits)
    grads = model.backward(np.ones_like(logits), caches)
    assert set(grads) == set(params)
    assert all(grads[k].shape == v.shape for k, v in params.items())


@pytest.mark.parametrize("name", MODELS)
def test_n_features_is_ignored_and_the_weights_follow_the_seed(name):
    cls = model_class(name, "numpy")
    a = cls(2, V, hidden_size=4, rng=np.random.default_rng(3), vocab_size=V, **OPTIONS.get(name, {}))
    b = cls(99, V, hidden_size=4, rng=np.random.default_rng(3), vocab_size=V, **OPTIONS.get(name, {}))
    assert list(a.params) == list(b.params)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert a.params["embed.weight"].dtype == np.float32


@pytest.mark.parametrize("name", MODELS)
def test_an_lm_must_predict_its_vocabulary(name):
    with pytest.raises(ValueError, match="output_size must be vocab_size"):
        model_class(name, "numpy")(2, 3, hidden_size=4, vocab_size=V, **OPTIONS.get(name, {}))


@pytest.mark.parametrize("name", MODELS)
def test_ids_must_be_integers_in_the_vocabulary(name):
    model = make(name, n_layers=1)
    for bad, match in (
        (np.full((2, 3), V), r"0 \.\. 10"),
        (np.full((2, 3), -1), r"0 \.\. 10"),
        (np.zeros((2, 3)), "integers"),
    ):
        with pytest.raises(ValueError, match=match):
            model.forward(bad)
        with pytest.raises(ValueError, match=match):
            model.step(bad[:, 0], model.initial_state(2))


def test_a_forecast_model_is_unchanged_without_vocab_size():
    model = make("mamba", lm=False)
    assert not model.is_lm and model.vocab_size is None
    assert model.params["embed.weight"].shape == (2, 6) and "embed.bias" in model.params
    assert make("mingru", lm=False).params["layers.0.W_z"].shape == (2, 6)
    assert "embed.weight" not in make("gru", lm=False).params


# ---- the state API: step and forward_state give forward's outputs ---------------------------------


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("lm", [True, False], ids=["lm", "forecast"])
@pytest.mark.parametrize("n_layers", [1, 2])
def test_stepping_token_by_token_gives_forward(name, lm, n_layers):
    model = make(name, lm=lm, n_layers=n_layers)
    x = inputs(lm)
    expected = model.forward(x, return_sequence=True)[0]  # (B, L, O)
    got = stepped(model, x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * np.abs(expected).max())
    assert np.abs(got - expected).max() < 1e-12 * max(1.0, np.abs(expected).max())


@pytest.mark.parametrize("name", [*MODELS, "mamba-zoh"])
@pytest.mark.parametrize("lm", [True, False], ids=["lm", "forecast"])
def test_the_step_function_of_a_generation_gives_forward_and_leaves_states_alone(name, lm):
    """`step_function` (Mamba: its weights folded once) is `step`, in fewer operations."""
    options = {"discretization": "zoh"} if name == "mamba-zoh" else {}
    model = make(name.removesuffix("-zoh"), lm=lm, **options)
    x = inputs(lm)
    expected = model.forward(x, return_sequence=True)[0]  # (B, L, O)
    step = model.step_function()
    np.testing.assert_allclose(stepped(model, x, step), expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    _, state = model.forward_state(x[:, :5], model.initial_state(3))
    frozen = [np.copy(a) for a in _leaves(state)]
    y1, _ = step(x[:, 5], state)
    y2, _ = step(x[:, 5], state)
    np.testing.assert_array_equal(y1, y2)
    assert all(np.array_equal(a, b) for a, b in zip(_leaves(state), frozen, strict=True))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("lm", [True, False], ids=["lm", "forecast"])
@pytest.mark.parametrize("chunks", [CHUNKS, (1, 16), (17,), (2, 1, 1, 13)])
def test_chunks_with_the_state_carried_give_one_long_forward(name, lm, chunks):
    model = make(name, lm=lm)
    x = inputs(lm)
    expected = model.forward(x, return_sequence=True)[0]
    got = chunked(model, x, chunks)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * max(1.0, np.abs(expected).max()))


@pytest.mark.parametrize("name", MODELS)
def test_forward_state_and_step_leave_the_state_they_are_given_alone(name):
    model = make(name)
    x = inputs(True)
    state = model.initial_state(3)
    _, after = model.forward_state(x[:, :5], state)
    frozen = [np.copy(a) for a in _leaves(after)]
    y1, _ = model.step(x[:, 5], after)
    model.forward_state(x[:, 5:9], after)
    y2, _ = model.step(x[:, 5], after)
    np.testing.assert_array_equal(y1, y2)
    assert all(np.array_equal(a, b) for a, b in zip(_leaves(after), frozen, strict=True))
    assert all(not np.any(a) for a in _leaves(state))  # the initial state is still zeros


def _leaves(state):
    for entry in state:
        yield from entry if isinstance(entry, tuple) else (entry,)


@pytest.mark.parametrize("name", MODELS)
def test_the_state_has_the_documented_shapes(name):
    model = make(name, n_layers=2)
    state = model.initial_state(4)
    assert len(state) == 2
    if name == "mamba":
        K, ED, N = 3, 12, 3
        for conv, ssm in state:
            assert conv.shape == (4, K - 1, ED) and ssm.shape == (4, ED, N)
    else:
        assert all(h.shape == (4, 6) for h in state)
    assert all(a.dtype == np.float64 and not np.any(a) for a in _leaves(state))
    _, after = model.forward_state(inputs(True, batch=4), state)
    assert [a.shape for a in _leaves(after)] == [a.shape for a in _leaves(state)]


def test_a_mamba_convolution_of_one_tap_carries_an_empty_window():
    model = make("mamba", conv_kernel=1)
    x = inputs(True)
    expected = model.forward(x)[0]
    np.testing.assert_allclose(chunked(model, x), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(stepped(model, x), expected, rtol=0, atol=1e-12)
    assert model.initial_state(3)[0][0].shape == (3, 0, 12)


# ---- gradients ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("config", [*GRADCHECK_CONFIGS, {"batch": 2, "seq_len": 9, "n_layers": 1}])
def test_lm_gradients_match_finite_differences(name, config):
    results = check_model(
        name,
        hidden_size=4,
        max_entries=None,
        model_options=GRADCHECK_OPTIONS.get(name),
        vocab_size=GRADCHECK_VOCAB,
        **config,
    )
    assert "embed.weight" in {r.name for r in results} and all(r.lm for r in results)
    worst = max(results, key=lambda r: r.max_rel_error)
    assert worst.max_rel_error < 1e-6, worst


@pytest.mark.parametrize("name", MODELS)
def test_the_loss_gradient_through_the_model_matches_finite_differences(name):
    """cross_entropy_loss's gradient, back through the model, against differences of the loss itself."""
    model = make(name, n_layers=1)
    rng = np.random.default_rng(2)
    x, targets = rng.integers(0, V, size=(2, 6)), rng.integers(0, V, size=(2, 6))
    logits, caches = model.forward(x)
    _, dlogits = cross_entropy_loss(logits, targets)
    grads = model.backward(dlogits, caches)
    for pname in ("embed.weight", "head.weight"):
        flat = model.params[pname].reshape(-1)
        for j in range(0, flat.size, 7):
            old = flat[j]
            values = []
            for step in (1e-5, -1e-5):
                flat[j] = old + step
                values.append(cross_entropy_loss(model.forward(x)[0], targets)[0])
            flat[j] = old
            numeric = (values[0] - values[1]) / 2e-5
            assert abs(grads[pname].reshape(-1)[j] - numeric) < 1e-8 + 1e-6 * abs(numeric)


# ---- learning -------------------------------------------------------------------------------------

PATTERN = np.frombuffer(b"hello", dtype=np.uint8).astype(np.int64)  # period 5; after 'l', 'l' or 'o'


def pattern_batch(rng, batch, length):
    """Byte windows of the repeating pattern at random phases: ids (B, length + 1)."""
    start = rng.integers(0, len(PATTERN), size=(batch, 1))
    return PATTERN[(start + np.arange(length + 1)) % len(PATTERN)]


def unigram_entropy(ids):
    counts = np.bincount(ids.reshape(-1))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


@pytest.mark.parametrize("name", MODELS)
def test_each_lm_learns_a_repeating_byte_pattern(name):
    """300 Adam steps on 256 byte values: the loss falls from about log(256) = 5.5 nats to far below the
    pattern's unigram entropy (1.33 nats); then greedy generation with `step` continues the pattern."""
    options = {"state_size": 4} if name == "mamba" else {}
    model = model_class(name, "numpy")(
        256, 256, hidden_size=16, rng=np.random.default_rng(0), vocab_size=256, **options
    )
    optimizer = Adam(model.params, lr=1e-2)
    rng = np.random.default_rng(1)
    losses = []
    for _ in range(300):
        ids = pattern_batch(rng, 8, 24)
        logits, caches = model.forward(ids[:, :-1])
        loss, dlogits = cross_entropy_loss(logits, ids[:, 1:])
        grad = optimizer.flatten(model.backward(dlogits, caches))
        clip_grad_norm(grad, 1.0)
        optimizer.step_flat(grad)
        losses.append(loss)
    assert losses[0] > 0.9 * np.log(256)
    held_out = pattern_batch(np.random.default_rng(2), 16, 24)
    final, _ = cross_entropy_loss(model.forward(held_out[:, :-1])[0], held_out[:, 1:])
    assert final < 0.1 * unigram_entropy(held_out)

    prompt = PATTERN[None, [2, 3, 4, 0, 1]]  # "lohel"
    logits, state = model.forward_state(prompt, model.initial_state(1))
    token, generated = logits[:, -1].argmax(axis=-1), []
    for _ in range(10):
        generated.append(int(token[0]))
        logits, state = model.step(token, state)
        token = logits.argmax(axis=-1)
    assert bytes(generated) == b"llohellohe"


@pytest.mark.parametrize("lm", [True, False], ids=["lm", "forecast"])
def test_mamba_zoh_steps_and_chunks_give_forward_too(lm, monkeypatch):
    """The default (delta_b) runs through every test above; the exact ZOH here, on the same paths."""
    monkeypatch.setitem(OPTIONS, "mamba", {**OPTIONS["mamba"], "discretization": "zoh"})
    test_stepping_token_by_token_gives_forward("mamba", lm, 2)
    test_chunks_with_the_state_carried_give_one_long_forward("mamba", lm, CHUNKS)


def test_mamba_discretizations_differ_and_unknown_ones_are_refused():
    x = inputs(False)
    delta_b = make("mamba", lm=False).forward(x)[0]
    zoh = make("mamba", lm=False, discretization="zoh").forward(x)[0]
    assert np.abs(delta_b - zoh).max() > 1e-3
    with pytest.raises(ValueError, match="discretization"):
        make("mamba", discretization="bilinear")
