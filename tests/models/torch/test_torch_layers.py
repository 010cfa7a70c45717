"""The Torch building blocks: hand-written backward passes against autograd, and plain references."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.nn import functional as F  # noqa: E402

from seqbench.models.registry import model_class  # noqa: E402
from seqbench.models.torch import layers, mingru  # noqa: E402
from seqbench.models.torch.gru import _GRULayer  # noqa: E402
from seqbench.models.torch.layers import causal_conv1d, linear, rms_norm, selective_scan  # noqa: E402
from seqbench.models.torch.mingru import _MinGRUScan  # noqa: E402


def f64(*shape, low=None, high=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    if low is not None:
        return (low + (high - low) * torch.rand(*shape, generator=g, dtype=torch.float64)).requires_grad_()
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()


def naive_selective_scan(u, delta, A, B, C, D, z=None, delta_softplus=False, discretization="delta_b"):
    """The paper's recurrence with plain autograd, one step at a time (the reference)."""
    if delta_softplus:
        delta = F.softplus(delta)
    h = u.new_zeros(u.shape[0], u.shape[2], A.shape[1])  # (b, E, N)
    ys = []
    for t in range(u.shape[1]):
        dA = delta[:, t, :, None] * A  # (b, E, N)
        B_bar = torch.expm1(dA) / A if discretization == "zoh" else delta[:, t, :, None]  # / B
        h = torch.exp(dA) * h + B_bar * B[:, t, None, :] * u[:, t, :, None]
        ys.append((h * C[:, t, None, :]).sum(-1) + D * u[:, t])
    y = torch.stack(ys, dim=1)
    return y if z is None else y * F.silu(z)


def scan_inputs(b, L, E, N, seed=0):
    return (
        f64(b, L, E, seed=seed),
        f64(b, L, E, low=0.05, high=1.5, seed=seed + 1),
        (-torch.exp(f64(E, N, seed=seed + 2).detach())).requires_grad_(),
        f64(b, L, N, seed=seed + 3),
        f64(b, L, N, seed=seed + 4),
        f64(E, seed=seed + 5),
    )


@pytest.fixture(params=["recompute", "keep"])
def state_policy(request, monkeypatch):
    """Both ways of the scan's backward: states recomputed per chunk, or kept from forward."""
    monkeypatch.setattr(layers, "KEEP_STATES_MAX", 0 if request.param == "recompute" else 1 << 40)
    return request.param


@pytest.mark.parametrize(("L", "chunk"), [(1, 4), (5, 1), (7, 3), (8, 4)])
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("disc", ["delta_b", "zoh"])
def test_selective_scan_gradcheck(L, chunk, fused, disc, state_policy):
    u, delta, A, B, C, D = scan_inputs(2, L, 3, 2)
    z = f64(2, L, 3, seed=9) if fused else None

    def f(u, delta, A, B, C, D, *z):
        z = z[0] if z else None
        options = {"delta_softplus": fused, "chunk": chunk, "discretization": disc}
        return selective_scan(u, delta, A, B, C, D, z=z, **options)

    assert torch.autograd.gradcheck(f, (u, delta, A, B, C, D, *([z] if fused else [])), atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize(("L", "chunk"), [(1, 4), (37, 4), (37, 16), (20, 64)])
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("disc", ["delta_b", "zoh"])
def test_selective_scan_matches_the_naive_recurrence(L, chunk, fused, disc, state_policy):
    u, delta, A, B, C, D = scan_inputs(3, L, 5, 4, seed=3)
    z = f64(3, L, 5, seed=20) if fused else None
    inputs = [u, delta, A, B, C, D] + ([z] if fused else [])
    w = torch.randn(3, L, 5, dtype=torch.float64)
    ours = selective_scan(u, delta, A, B, C, D, z=z, delta_softplus=fused, chunk=chunk, discretization=disc)
    grads = torch.autograd.grad((ours * w).sum(), inputs)
    ref = naive_selective_scan(u, delta, A, B, C, D, z=z, delta_softplus=fused, discretization=disc)
    ref_grads = torch.autograd.grad((ref * w).sum(), inputs)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("policy", ["recompute", "keep"])
@pytest.mark.parametrize("disc", ["delta_b", "zoh"])
def test_selective_scan_keeps_no_full_state_tensor_for_backward(policy, disc, monkeypatch):
    """Above KEEP_STATES_MAX nothing of size (b, L, E, N) is saved: states are recomputed per chunk."""
    b, L, E, N, chunk = 2, 64, 8, 4, 4
    monkeypatch.setattr(layers, "KEEP_STATES_MAX", 0 if policy == "recompute" else b * L * E * N)
    u, delta, A, B, C, D = (t.float() for t in scan_inputs(b, L, E, N))
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        z = u.detach().clone()
        selective_scan(u, delta, A, B, C, D, z=z, delta_softplus=True, chunk=chunk, discretization=disc)
    inputs = 3 * b * L * E + 2 * b * L * N + E * N + E  # u, delta, z, B, C, A, D
    states = b * L * E * N
    if policy == "recompute":  # the inputs and the state before each chunk
        assert sum(saved) <= inputs + states // chunk
    else:  # small enough: every chunk's A_bar, B u and states as well, and zoh's (A_bar - 1) / A
        assert sum(saved) >= inputs + (4 if disc == "zoh" else 3) * states


@pytest.mark.parametrize("L", [1, 2, 9])
def test_mingru_scan_gradcheck_and_reference(L):
    kh = f64(3, L, 8, seed=L)
    assert torch.autograd.gradcheck(_MinGRUScan.apply, (kh,), atol=1e-8, rtol=1e-6)
    k, h_tilde = kh.chunk(2, dim=-1)
    z, h, ref = torch.sigmoid(k), torch.zeros(3, 4, dtype=torch.float64), []
    for t in range(L):  # h_t = (1 - z_t) h_{t-1} + z_t h~_t
        h = (1 - z[:, t]) * h + z[:, t] * h_tilde[:, t]
        ref.append(h)
    torch.testing.assert_close(_MinGRUScan.apply(kh), torch.stack(ref, dim=1), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("L", [1, 2, 9])
def test_mingru_scan_with_positive_candidates_gradcheck(L):
    """Appendix B.3's h~ = g(a) inside the Function: its gradients against finite differences."""
    kh = f64(3, L, 8, seed=L)
    assert torch.autograd.gradcheck(lambda v: _MinGRUScan.apply(v, True), (kh,), atol=1e-8, rtol=1e-6)


def test_g_and_its_derivative_are_the_two_branches():
    a = torch.cat(
        [
            5 * torch.randn(1000, dtype=torch.float64),
            torch.tensor([0.0, -0.0, 1e-300, -1e-300, -1e-9, 800, -800]),
        ]
    )
    a.requires_grad_()
    ref = torch.where(a >= 0, a + 0.5, a.sigmoid())  # a + 1/2 for a >= 0, sigmoid(a) below
    torch.testing.assert_close(mingru.g(a.detach()), ref.detach(), rtol=0, atol=0)
    sigma = a.detach().sigmoid()
    ref_grad = torch.where(a.detach() >= 0, 1.0, sigma * (1 - sigma))
    torch.testing.assert_close(mingru.g_grad(a.detach()), ref_grad, rtol=1e-15, atol=1e-17)


def log_space_states(layer, x, h0=None):
    """minGRU-pytorch's algorithm (appendix B.3.1) with plain autograd, the reference: log h by
    Heinsen's scan, log h_t = a*_t + logcumsumexp(log z h~ - a*)_t, a* = cumsum log(1 - z)."""
    k, a = x @ layer.W_z, x @ layer.W_h  # (B, L, ED) each
    log_coeffs = -F.softplus(k)  # log(1 - z)
    log_values = -F.softplus(-k) + torch.where(a >= 0, (F.relu(a) + 0.5).log(), -F.softplus(-a))  # log z h~
    if h0 is not None:  # h0 as the step before
        log_values = torch.cat([h0.log()[:, None], log_values], dim=1)
        log_coeffs = F.pad(log_coeffs, (0, 0, 1, 0))
    a_star = log_coeffs.cumsum(dim=1)
    h = (a_star + (log_values - a_star).logcumsumexp(dim=1)).exp()
    return h if h0 is None else h[:, 1:]


@torch.no_grad()
def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())  # relative to the largest entry


@pytest.mark.parametrize("L", [1, 1024, 4096])
@pytest.mark.parametrize("scale", [1.0, 10.0, 40.0])  # 40: |k| up to about 100, z at 0 and 1 in float64
def test_mingru_log_space_layer_equals_the_log_space_scan(L, scale):
    """The linear loop computes minGRU-pytorch's function: states, a carried state and gradients to 1e-6."""
    options = {"variant": "log_space", "expansion": 1.5}
    rng = np.random.default_rng(L)
    layer = model_class("mingru", "torch")(3, 1, hidden_size=4, rng=rng, dtype=np.float64, **options).layers[
        0
    ]
    gen = torch.Generator().manual_seed(L)
    x = scale * torch.randn(2, L, 3, dtype=torch.float64, generator=gen)
    h, ref = layer.states(x), log_space_states(layer, x)  # (B, L, ED)
    z = torch.sigmoid(x @ layer.W_z)
    assert scale < 40 or L == 1 or (z.min() < 1e-30 and z.max() == 1.0)  # saturated both ways
    assert rel(h.detach(), ref.detach()) < 1e-6
    w = torch.randn(h.shape, dtype=torch.float64, generator=gen)
    grads = torch.autograd.grad((layer.out(h) * w[..., :4]).sum() + (h * w).sum(), list(layer.parameters()))
    ref_grads = torch.autograd.grad(
        (layer.out(ref) * w[..., :4]).sum() + (ref * w).sum(), list(layer.parameters())
    )
    for got, want in zip(grads, ref_grads, strict=True):
        assert rel(got, want) < 1e-6
    h0 = torch.rand(2, 6, dtype=torch.float64, generator=gen) + 0.1  # a state is positive
    with torch.no_grad():
        y, last = layer.forward_state(x, h0)
        ref = log_space_states(layer, x, h0)
    assert rel(y, layer.out(ref)) < 1e-6 and rel(last, ref[:, -1]) < 1e-6


@pytest.mark.parametrize("L", [1, 6])
def test_gru_layer_gradcheck(L):
    D, Fin = 3, 2
    x = f64(L, 2, Fin, seed=1)
    args = (x, f64(Fin, 3 * D, seed=2), f64(3 * D, seed=3), f64(D, 3 * D, seed=4), f64(3 * D, seed=5))
    assert torch.autograd.gradcheck(_GRULayer.apply, args, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize(("L", "n_layers"), [(1, 1), (9, 2)])
def test_gru_equals_torch_nn_gru_with_converted_weights(L, n_layers):
    """weight_ih_l{i} = W_x.T, weight_hh_l{i} = W_h.T, bias_ih_l{i} = b_x, bias_hh_l{i} = b_h."""
    ours = model_class("gru", "torch")(
        3, 1, hidden_size=5, n_layers=n_layers, rng=np.random.default_rng(0), dtype=np.float64
    )
    ref = torch.nn.GRU(3, 5, num_layers=n_layers, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        for i, layer in enumerate(ours.layers):
            getattr(ref, f"weight_ih_l{i}").copy_(layer.W_x.T)
            getattr(ref, f"weight_hh_l{i}").copy_(layer.W_h.T)
            getattr(ref, f"bias_ih_l{i}").copy_(layer.b_x)
            getattr(ref, f"bias_hh_l{i}").copy_(layer.b_h)
    x = torch.randn(4, L, 3, dtype=torch.float64)
    h = x
    for layer in ours.layers:
        h = layer(h)  # (B, L, D)
    h_ref = ref(x)[0]
    torch.testing.assert_close(h, h_ref, rtol=1e-12, atol=1e-13)
    w = torch.randn_like(h)
    (h * w).sum().backward()
    (h_ref * w).sum().backward()
    for i, layer in enumerate(ours.layers):
        torch.testing.assert_close(
            layer.W_x.grad, getattr(ref, f"weight_ih_l{i}").grad.T, rtol=1e-10, atol=1e-12
        )
        torch.testing.assert_close(
            layer.W_h.grad, getattr(ref, f"weight_hh_l{i}").grad.T, rtol=1e-10, atol=1e-12
        )
        torch.testing.assert_close(layer.b_x.grad, getattr(ref, f"bias_ih_l{i}").grad, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(layer.b_h.grad, getattr(ref, f"bias_hh_l{i}").grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("L", [1, 5, 300])
def test_gru_torch_kernel_and_custom_function_equal_the_cell_step_by_step(L):
    """Without autograd a GRU layer runs torch's kernel; with it, the custom Function. Both are the
    cell (`step`) applied L times, from zeros and from a carried state, and so are the gradients."""
    rng = np.random.default_rng(L)
    layer = model_class("gru", "torch")(3, 1, hidden_size=6, rng=rng, dtype=np.float64).layers[0]
    x = torch.randn(2, L, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(L))
    h0 = torch.randn(2, 6, dtype=torch.float64)

    def cell_by_cell(h):  # plain autograd through the cell: (B, L, D)
        hs = []
        for t in range(L):
            h = layer.step(x[:, t], h)[0]
            hs.append(h)
        return torch.stack(hs, dim=1)

    for start in (layer.initial_state(2), h0):
        ref = cell_by_cell(start).detach()
        out, last = layer.forward_state(x, start)  # torch's kernel
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(last, ref[:, -1], rtol=1e-12, atol=1e-13)
    ref = cell_by_cell(layer.initial_state(2))
    with torch.no_grad():
        torch.testing.assert_close(layer(x), ref.detach(), rtol=1e-12, atol=1e-13)
    h = layer(x)  # the custom Function
    torch.testing.assert_close(h.detach(), ref.detach(), rtol=1e-12, atol=1e-13)
    w = torch.randn_like(h)
    grads = torch.autograd.grad((h * w).sum(), list(layer.parameters()))
    ref_grads = torch.autograd.grad((ref * w).sum(), list(layer.parameters()))
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_causal_conv1d_equals_a_grouped_conv1d_and_is_causal():
    x, weight, bias = f64(2, 7, 3), f64(3, 4, seed=1), f64(3, seed=2)
    ref = F.conv1d(x.transpose(1, 2), weight.unsqueeze(1), bias, padding=3, groups=3)[..., :7].transpose(1, 2)
    torch.testing.assert_close(causal_conv1d(x, weight, bias), ref, rtol=1e-12, atol=1e-14)
    changed = x.detach().clone()
    changed[:, -1] += 1.0
    torch.testing.assert_close(
        causal_conv1d(changed, weight, bias)[:, :-1], causal_conv1d(x, weight, bias)[:, :-1]
    )


@pytest.mark.parametrize("L", [1, 2, 3, 7])
def test_causal_conv1d_gradients(L):
    """The hand-written backward against finite differences and autograd through the grouped Conv1d,
    sequences shorter than the kernel included."""
    x, weight, bias = f64(2, L, 3), f64(3, 4, seed=1), f64(3, seed=2)
    assert torch.autograd.gradcheck(causal_conv1d, (x, weight, bias), atol=1e-8, rtol=1e-6)
    w = torch.randn(2, L, 3, dtype=torch.float64)
    ref = F.conv1d(x.transpose(1, 2), weight.unsqueeze(1), bias, padding=3, groups=3)[..., :L].transpose(1, 2)
    ref_grads = torch.autograd.grad((ref * w).sum(), (x, weight, bias))
    grads = torch.autograd.grad((causal_conv1d(x, weight, bias) * w).sum(), (x, weight, bias))
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_linear_keeps_the_numpy_layout_and_rms_norm_normalises():
    x, W, b = f64(2, 3, 4), f64(4, 5, seed=1), f64(5, seed=2)
    torch.testing.assert_close(linear(x, W, b), x @ W + b)
    torch.testing.assert_close(linear(x, W), x @ W)
    y = rms_norm(x, torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(2, 3, dtype=torch.float64), rtol=1e-4, atol=1e-4)


def graph_size(output) -> int:
    """The number of autograd nodes behind `output`."""
    seen, todo = set(), [output.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        todo.extend(next_node for next_node, _ in node.next_functions)
    return len(seen)


@pytest.mark.parametrize("name", ["mingru", "gru", "mamba"])
def test_autograd_records_no_node_per_time_step(name):
    """The recurrences are custom Functions: the graph (and the backward pass) has no O(L) part."""
    model = model_class(name, "torch")(1, 1, hidden_size=4, n_layers=2, rng=np.random.default_rng(0))
    sizes = {L: graph_size(model(torch.randn(2, L, 1))) for L in (3, 40)}
    assert sizes[3] == sizes[40]
