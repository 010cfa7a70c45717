"""seqbench's Mamba against mambapy (alxndrTL/mamba.py) on the same weights, in float64.

mambapy's blocks sit between seqbench's embedding and its final norm and head (which mambapy's
`Mamba` has no counterpart for). mambapy rounds A = -exp(A_log) and D to float32: the weights
here are float32 numbers where that rounding would bite (A_log, D), and seqbench gets A_log =
log(mambapy's float32 exp(A_log)), so both models compute with the same A; gradients of A_log
and D come back from float32 arithmetic there, which the 1e-6 tolerance allows (about 1e-7).
"""

import numpy as np
import pytest

from seqbench.checks.parity import forward_backward, rel_diff

torch = pytest.importorskip("torch")
mambapy = pytest.importorskip("mambapy.mamba")

from seqbench.convert import ConversionError, from_mambapy, load_mambapy, to_mambapy  # noqa: E402
from seqbench.models.registry import model_class  # noqa: E402

TOLERANCE = 1e-6
D, N_LAYERS, N, EXPAND, K, R = 6, 2, 3, 2, 3, 2


def reference(seed=0):
    """A float64 mambapy Mamba with noisy weights, A_log and D float32 numbers."""
    torch.manual_seed(seed)
    config = mambapy.MambaConfig(
        d_model=D, n_layers=N_LAYERS, d_state=N, expand_factor=EXPAND, d_conv=K, dt_rank=R
    )
    ref = mambapy.Mamba(config).double()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p += 0.3 * torch.randn_like(p)
            if name.endswith(("A_log", ".D")):
                p.copy_(p.float().double())
    return ref


def seqbench_state(ref):
    """mambapy's state dict with A_log = log(-A) of the float32 A mambapy computes."""
    state = {k: v.detach().clone() for k, v in ref.state_dict().items()}
    for k in state:
        if k.endswith("A_log"):
            state[k] = torch.log(torch.exp(state[k].float()).double())
    return state


def ours(backend, state, discretization="delta_b"):
    model = model_class("mamba", backend)(
        2, 2, hidden_size=D, n_layers=N_LAYERS, rng=np.random.default_rng(0), dtype=np.float64,
        state_size=N, expand=EXPAND, conv_kernel=K, dt_rank=R, discretization=discretization,
    )  # fmt: skip
    load_mambapy(model, state)
    return model


def reference_forward(ref, model_params, x):
    """seqbench's embedding, mambapy's blocks, seqbench's final RMSNorm and head: y (B, O)."""
    p = {k: torch.as_tensor(np.asarray(v)) for k, v in model_params.items()}
    u = x @ p["embed.weight"] + p["embed.bias"]  # (B, L, D)
    h = ref(u)  # (B, L, D)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-5) * p["norm_f.weight"]
    return h[:, -1] @ p["head.weight"] + p["head.bias"]  # (B, O)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("seq_len", [1, 9])
def test_outputs_and_gradients_equal_mambapys(backend, seq_len):
    ref = reference()
    model = ours(backend, seqbench_state(ref))
    params = {k: np.array(v) for k, v in (model.params if backend == "numpy" else {
        k: v.detach().numpy() for k, v in model.state_dict().items()}).items()}  # fmt: skip
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(3, seq_len, 2)), rng.normal(size=(3, 2))
    y_ref = reference_forward(ref, params, torch.from_numpy(x))
    (y_ref * torch.from_numpy(w)).sum().backward()
    y, grads = forward_backward(model, x, w)
    assert rel_diff(y, y_ref.detach().numpy()) < TOLERANCE
    ref_grads = {k: p.grad for k, p in ref.named_parameters()}
    converted = from_mambapy(ref_grads, model)  # their gradients in our layout
    worst = max((rel_diff(grads[k], converted[k]), k) for k in converted if k.startswith("layers."))
    assert worst[0] < TOLERANCE, worst


def test_zoh_is_a_different_function():
    ref = reference()
    state = seqbench_state(ref)
    for k in state:
        if k.endswith("dt_proj.bias"):
            state[k] = state[k] + 2.0  # steps of about 2: where the two discretisations part
    x = np.random.default_rng(1).normal(size=(2, 9, 2))
    a, b = ours("numpy", state).forward(x)[0], ours("numpy", state, "zoh").forward(x)[0]
    assert rel_diff(a, b) > 100 * TOLERANCE


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_export_round_trips_and_loads_into_mambapy(backend):
    ref = reference()
    model = ours(backend, ref.state_dict())
    exported = to_mambapy(model)
    norm_f = exported.pop("norm_f.weight")
    assert norm_f.shape == (D,)
    loaded = mambapy.Mamba(ref.config).double()
    loaded.load_state_dict({k: torch.from_numpy(v) for k, v in exported.items()})
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v, rtol=0, atol=0)


def test_a_missing_or_misshapen_parameter_is_named():
    ref = reference()
    state = dict(ref.state_dict())
    model = ours("numpy", state)
    del state["layers.1.mixer.dt_proj.bias"]
    with pytest.raises(ConversionError, match=r"layers\.1\.mixer\.dt_proj\.bias"):
        from_mambapy(state, model)
    state = {f"backbone.{k}": v for k, v in ref.state_dict().items()}  # mamba_ssm's prefix
    state["backbone.layers.0.mixer.x_proj.weight"] = torch.zeros(R + 2 * N + 1, EXPAND * D)
    named = r"layers\.0\.mixer\.x_proj\.weight' has shape \(9, 12\); this model needs \(8, 12\)"
    with pytest.raises(ConversionError, match=named):
        from_mambapy(state, model)
