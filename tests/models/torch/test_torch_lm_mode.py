"""Language-model mode (vocab_size) and the recurrent state API of every Torch model.

As on NumPy, forward(x) is the reference: stepping token by token, or running chunks with the
state carried, gives its outputs, without autograd. Parity with NumPy is in test_parity.py.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from seqbench.models.numpy.layers import cross_entropy_loss as numpy_cross_entropy  # noqa: E402
from seqbench.models.registry import model_class, model_names  # noqa: E402
from seqbench.models.torch.layers import cross_entropy_loss  # noqa: E402

MODELS = model_names()
OPTIONS = {"mamba": {"state_size": 3, "expand": 2, "conv_kernel": 3, "dt_rank": 2}}
V, L = 11, 17


def make(name, lm=True, n_layers=2, hidden=6, dtype=np.float64, seed=0, noise=0.3):
    """A Torch model from a NumPy one with noisy weights: an LM over V tokens, or 2 features -> 3 outputs."""
    rng = np.random.default_rng(seed)
    twin = model_class(name, "numpy")(
        2,
        V if lm else 3,
        hidden_size=hidden,
        n_layers=n_layers,
        rng=rng,
        dtype=dtype,
        vocab_size=V if lm else None,
        **OPTIONS.get(name, {}),
    )
    for p in twin.params.values():
        p += rng.normal(0, noise, size=p.shape).astype(dtype)
    return model_class(name, "torch").from_numpy(twin)


def inputs(lm, batch=3, length=L, seed=1, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    if lm:
        return torch.randint(0, V, (batch, length), generator=gen)
    return torch.randn(batch, length, 2, generator=gen, dtype=dtype)


def stepped(model, x):
    state = model.initial_state(len(x))
    outputs = []
    for t in range(x.shape[1]):
        y_t, state = model.step(x[:, t], state)  # (B, O)
        outputs.append(y_t)
    return torch.stack(outputs, dim=1)


def chunked(model, x, chunks):
    state, outputs, start = model.initial_state(len(x)), [], 0
    for size in chunks:
        y, state = model.forward_state(x[:, start : start + size], state)  # (B, size, O)
        outputs.append(y)
        start += size
    assert start == x.shape[1]
    return torch.cat(outputs, dim=1)


def leaves(state):
    for entry in state:
        yield from entry if isinstance(entry, tuple) else (entry,)


@pytest.mark.parametrize("name", MODELS)
def test_an_lm_embeds_ids_and_reads_every_step(name):
    model = make(name)
    assert model.is_lm and model.vocab_size == V and model.input_size == V and model.output_size == V
    state = model.state_dict()
    assert tuple(state["embed.weight"].shape) == (V, 6) and "embed.bias" not in state
    x = inputs(True)
    logits = model(x)
    assert logits.shape == (3, L, V) and logits.dtype == torch.float64
    torch.testing.assert_close(model(x, return_sequence=True), logits, rtol=0, atol=0)
    cross_entropy_loss(logits, x).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("lm", [True, False], ids=["lm", "forecast"])
@pytest.mark.parametrize("n_layers", [1, 2])
def test_stepping_token_by_token_gives_forward(name, lm, n_layers):
    model = make(name, lm=lm, n_layers=n_layers)
    x = inputs(lm)
    with torch.no_grad():
        expected = model(x, return_sequence=True)  # (B, L, O)
    got = stepped(model, x)
    assert got.shape == expected.shape and got.dtype == torch.float64
    assert (got - expected).abs().max().item() < 1e-12 * max(1.0, expected.abs().max().item())


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("lm", [True, False], ids=["lm", "forecast"])
@pytest.mark.parametrize("chunks", [(5, 7, 5), (1, 16), (17,), (2, 1, 1, 13)])
def test_chunks_with_the_state_carried_give_one_long_forward(name, lm, chunks):
    model = make(name, lm=lm)
    x = inputs(lm)
    with torch.no_grad():
        expected = model(x, return_sequence=True)
    got = chunked(model, x, chunks)
    assert (got - expected).abs().max().item() < 1e-12 * max(1.0, expected.abs().max().item())


@pytest.mark.parametrize("name", MODELS)
def test_the_state_api_runs_without_autograd_and_keeps_its_inputs(name):
    model = make(name)
    x = inputs(True)
    state = model.initial_state(3)
    y, after = model.forward_state(x[:, :5], state)
    assert not y.requires_grad and not any(a.requires_grad for a in leaves(after))
    frozen = [a.clone() for a in leaves(after)]
    y1, nxt = model.step(x[:, 5], after)
    assert not y1.requires_grad and not any(a.requires_grad for a in leaves(nxt))
    model.forward_state(x[:, 5:9], after)
    y2, _ = model.step(x[:, 5], after)
    torch.testing.assert_close(y1, y2, rtol=0, atol=0)
    assert all(torch.equal(a, b) for a, b in zip(leaves(after), frozen, strict=True))
    assert all(not a.any() for a in leaves(state))


@pytest.mark.parametrize("name", MODELS)
def test_the_state_has_the_numpy_layout(name):
    model = make(name)
    state = model.initial_state(4)
    assert len(state) == 2
    if name == "mamba":
        assert all(tuple(c.shape) == (4, 2, 12) and tuple(h.shape) == (4, 12, 3) for c, h in state)
    else:
        assert all(tuple(h.shape) == (4, 6) for h in state)
    assert all(a.dtype == torch.float64 for a in leaves(state))


@pytest.mark.parametrize("name", MODELS)
def test_float32_lm_steps_close_to_its_forward(name):
    model = make(name, dtype=np.float32)
    x = inputs(True)
    with torch.no_grad():
        expected = model(x)
    assert expected.dtype == torch.float32
    torch.testing.assert_close(stepped(model, x), expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(chunked(model, x, (5, 7, 5)), expected, rtol=1e-4, atol=1e-5)


def test_cross_entropy_loss_matches_numpy():
    rng = np.random.default_rng(3)
    logits, targets = rng.normal(size=(3, 5, V)) * 2, rng.integers(0, V, size=(3, 5))
    loss = cross_entropy_loss(torch.from_numpy(logits), torch.from_numpy(targets))
    assert loss.item() == pytest.approx(numpy_cross_entropy(logits, targets)[0], rel=1e-13)


def test_an_lm_must_predict_its_vocabulary():
    with pytest.raises(ValueError, match="output_size must be vocab_size"):
        model_class("gru", "torch")(2, 3, hidden_size=4, vocab_size=V)


@pytest.mark.parametrize("lm", [True, False], ids=["lm", "forecast"])
def test_mamba_zoh_steps_and_chunks_give_forward_too(lm, monkeypatch):
    """The default (delta_b) runs through every test above; the exact ZOH here, on the same paths."""
    monkeypatch.setitem(OPTIONS, "mamba", {**OPTIONS["mamba"], "discretization": "zoh"})
    test_stepping_token_by_token_gives_forward("mamba", lm, 2)
    test_chunks_with_the_state_carried_give_one_long_forward("mamba", lm, (5, 7, 5))
