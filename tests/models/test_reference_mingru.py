"""minGRU's `variant: log_space` (appendix B.3) against minGRU-pytorch on the same weights, in
float64; its gradients against finite differences; and NumPy/Torch parity of the variant."""

import numpy as np
import pytest

from seqbench.checks.gradcheck import GRADCHECK_CONFIGS, check_model
from seqbench.checks.parity import forward_backward, rel_diff
from seqbench.convert import ConversionError, from_mingru_pytorch, load_mingru_pytorch, to_mingru_pytorch
from seqbench.models.registry import model_class

torch = pytest.importorskip("torch")
reference = pytest.importorskip("minGRU_pytorch.minGRU")

TOLERANCE = 1e-6
D = 6


def pair(backend, expansion, seed=0):
    """minGRU-pytorch's layer (float64, noisy weights) and a one-layer seqbench minGRU with its weights
    (to_hidden_and_gate.weight (2 ED, D): the candidate's rows, then the gate's)."""
    torch.manual_seed(seed)
    ref = reference.minGRU(D, expansion_factor=expansion).double()
    with torch.no_grad():
        for p in ref.parameters():
            p += 0.3 * torch.randn_like(p)
    model = model_class("mingru", backend)(
        D, 2, hidden_size=D, n_layers=1, rng=np.random.default_rng(0), dtype=np.float64,
        variant="log_space", expansion=expansion,
    )  # fmt: skip
    load_mingru_pytorch(model, ref.state_dict())  # one layer's state dict, no prefix
    return ref, model


def head(model):
    if hasattr(model, "params"):
        return torch.from_numpy(model.params["head.weight"]), torch.from_numpy(model.params["head.bias"])
    return model.head.weight.detach(), model.head.bias.detach()


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("expansion", [1.0, 1.5])
@pytest.mark.parametrize("seq_len", [2, 9])
def test_outputs_and_gradients_equal_mingru_pytorchs(backend, expansion, seq_len):
    ref, model = pair(backend, expansion)
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(3, seq_len, D)), rng.normal(size=(3, 2))
    W, b = head(model)
    y_ref = ref(torch.from_numpy(x))[:, -1] @ W + b  # minGRU-pytorch's layer, seqbench's head
    (y_ref * torch.from_numpy(w)).sum().backward()
    y, grads = forward_backward(model, x, w)
    assert rel_diff(y, y_ref.detach().numpy()) < TOLERANCE
    theirs = from_mingru_pytorch({k: p.grad for k, p in ref.named_parameters()}, model)  # in our layout
    worst = max((rel_diff(grads[k], v), k) for k, v in theirs.items() if k.startswith("layers."))
    assert worst[0] < TOLERANCE, worst


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("expansion", [1.0, 1.5])
def test_steps_and_a_carried_state_equal_mingru_pytorchs(backend, expansion):
    ref, model = pair(backend, expansion)
    x = np.random.default_rng(2).normal(size=(3, 7, D))
    with torch.no_grad():
        _, h = ref(torch.from_numpy(x[:, :4]), return_next_prev_hidden=True)  # (B, 1, ED)
        rest = ref(torch.from_numpy(x[:, 4:]), prev_hidden=h)  # (B, 3, D)
        one, _ = ref(torch.from_numpy(x[:, 4:5]), prev_hidden=h, return_next_prev_hidden=True)  # sequential
    W, b = head(model)
    state = model.initial_state(3)
    cast = (lambda v: v) if backend == "numpy" else torch.from_numpy
    _, state = model.forward_state(cast(x[:, :4]), state)
    assert rel_diff(np.asarray(state[0]), h[:, 0].numpy()) < TOLERANCE
    y, _ = model.forward_state(cast(x[:, 4:]), state)
    assert rel_diff(np.asarray(y), (rest @ W + b).numpy()) < TOLERANCE
    y1, _ = model.step(cast(x[:, 4]), state)
    assert rel_diff(np.asarray(y1), (one[:, 0] @ W + b).numpy()) < TOLERANCE


@pytest.mark.parametrize("expansion", [1.0, 1.5])
def test_log_space_gradients_match_finite_differences(expansion):
    for config in GRADCHECK_CONFIGS:
        options = {"variant": "log_space", "expansion": expansion}
        for r in check_model("mingru", max_entries=None, model_options=options, **config):
            assert r.max_rel_error < 1e-6, (r.name, r.max_rel_error)


@pytest.mark.parametrize("expansion", [1.0, 1.5])
@pytest.mark.parametrize("lm", [False, True])
def test_log_space_parity_numpy_torch(expansion, lm):
    rng = np.random.default_rng(0)
    V = 7
    numpy_model = model_class("mingru", "numpy")(
        2, V if lm else 2, hidden_size=D, n_layers=2, rng=rng, dtype=np.float64,
        vocab_size=V if lm else None, variant="log_space", expansion=expansion,
    )  # fmt: skip
    for p in numpy_model.params.values():
        p += rng.normal(0, 0.3, size=p.shape)
    torch_model = model_class("mingru", "torch").from_numpy(numpy_model)
    x = rng.integers(0, V, size=(3, 9)) if lm else rng.normal(size=(3, 9, 2))
    y, caches = numpy_model.forward(x)
    w = rng.normal(size=y.shape)
    grads = numpy_model.backward(w, caches)
    y_t = torch_model(torch.from_numpy(x))
    (y_t * torch.from_numpy(w)).sum().backward()
    assert rel_diff(y_t.detach().numpy(), y) < TOLERANCE
    worst = max((rel_diff(p.grad.numpy(), grads[k]), k) for k, p in torch_model.named_parameters())
    assert worst[0] < TOLERANCE, worst
    # the state API: chunks with the state carried and steps give the whole forward
    full = numpy_model.forward(x, return_sequence=True)[0]
    state = numpy_model.initial_state(3)
    first, state = numpy_model.forward_state(x[:, :5], state)
    rest, _ = numpy_model.forward_state(x[:, 5:], state)
    assert rel_diff(np.concatenate([first, rest], axis=1), full) < 1e-12
    state_t = torch_model.initial_state(3)
    steps = []
    for t in range(9):
        y_s, state_t = torch_model.step(torch.from_numpy(x[:, t]), state_t)
        steps.append(y_s.detach().numpy())
    assert rel_diff(np.stack(steps, axis=1), full) < 1e-12


def test_paper_variant_is_unchanged_and_expansion_needs_log_space():
    a = model_class("mingru", "numpy")(2, 2, hidden_size=4, rng=np.random.default_rng(0))
    b = model_class("mingru", "numpy")(2, 2, hidden_size=4, rng=np.random.default_rng(0), variant="paper")
    assert list(a.params) == [
        "layers.0.W_z",
        "layers.0.b_z",
        "layers.0.W_h",
        "layers.0.b_h",
        "head.weight",
        "head.bias",
    ]
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    with pytest.raises(ValueError, match="expansion"):
        model_class("mingru", "numpy")(2, 2, hidden_size=4, expansion=2.0)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("expansion", [1.0, 1.5])
def test_a_stack_exports_and_loads_back_into_minGRU_pytorch_layers(backend, expansion):
    torch.manual_seed(0)
    layers = torch.nn.ModuleList(reference.minGRU(D, expansion_factor=expansion) for _ in range(3)).double()
    model = model_class("mingru", backend)(
        D, 2, hidden_size=D, n_layers=3, dtype=np.float64, variant="log_space", expansion=expansion
    )
    load_mingru_pytorch(model, {f"layers.{k}": v for k, v in layers.state_dict().items()})
    x = np.random.default_rng(3).normal(size=(2, 5, D))
    h = torch.from_numpy(x)
    for layer in layers:
        h = layer(h)  # (B, L, D)
    y = model.sequence(x if backend == "numpy" else torch.from_numpy(x))
    assert rel_diff(np.asarray(y.detach() if hasattr(y, "detach") else y), h.detach().numpy()) < TOLERANCE
    exported = {k.removeprefix("layers."): torch.from_numpy(v) for k, v in to_mingru_pytorch(model).items()}
    again = torch.nn.ModuleList(reference.minGRU(D, expansion_factor=expansion) for _ in range(3)).double()
    again.load_state_dict(exported)  # strict: exactly minGRU-pytorch's names and shapes
    for k, v in layers.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v, rtol=0, atol=0)


def test_conversion_errors_name_the_parameter_and_the_variant():
    layer = reference.minGRU(D, expansion_factor=1.5).double()
    model = model_class("mingru", "numpy")(D, 2, hidden_size=D, variant="log_space", expansion=1.5)
    with pytest.raises(ConversionError, match=r"no 'layers\.0\.to_out\.weight'"):
        from_mingru_pytorch({"to_hidden_and_gate.weight": layer.to_hidden_and_gate.weight}, model)
    narrow = model_class("mingru", "numpy")(D, 2, hidden_size=D, variant="log_space")
    with pytest.raises(ConversionError, match=r"'layers\.0\.to_hidden_and_gate\.weight' has shape \(18, 6\); "
                       r"this model needs \(12, 6\)"):  # fmt: skip
        from_mingru_pytorch({"to_hidden_and_gate.weight": layer.to_hidden_and_gate.weight}, narrow)
    stacked = model_class("mingru", "numpy")(
        D, 2, hidden_size=D, n_layers=2, variant="log_space", expansion=1.5
    )
    with pytest.raises(ConversionError, match="n_layers=2"):
        from_mingru_pytorch(layer.state_dict(), stacked)
    with pytest.raises(ConversionError, match=r"no 'layers\.1\.to_hidden_and_gate\.weight'"):
        from_mingru_pytorch({f"layers.0.{k}": v for k, v in layer.state_dict().items()}, stacked)
    paper = model_class("mingru", "numpy")(D, 2, hidden_size=D)
    with pytest.raises(ConversionError, match=r"variant: log_space.*'paper'"):
        from_mingru_pytorch(layer.state_dict(), paper)
    with pytest.raises(ConversionError, match="variant"):
        to_mingru_pytorch(paper)
