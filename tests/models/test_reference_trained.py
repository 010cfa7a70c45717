"""Reference-trained forecasters converted into seqbench forecast what they forecast, to 1e-6.

Each reference forecaster is built from the peer's blocks as seqbench's model is structured:
Mamba: a linear embedding, mambapy's `Mamba` blocks, an RMSNorm (seqbench's norm_f) and a linear
head on the last step; minGRU: a stack of minGRU-pytorch layers on the features (seqbench's minGRU
has no embedding, so the features' width is the hidden size) and a linear head on the last step.
Each is trained a few dozen Adam steps in float64 on a tiny task, then every weight goes through
`seqbench.convert.files.convert_in` (what `seqbench convert FILE --config SPEC` runs): the peer's
blocks by its names, the embedding and head under seqbench's names and (in, out) layout.
"""

import functools

import numpy as np
import pytest

from seqbench.checks.parity import rel_diff
from seqbench.convert.files import convert_in
from seqbench.models.registry import model_class

torch = pytest.importorskip("torch")
mambapy = pytest.importorskip("mambapy.mamba")
mingru_pytorch = pytest.importorskip("minGRU_pytorch.minGRU")

TOLERANCE = 1e-6
F, OUT, L, STEPS = 3, 2, 12, 40


class MambaForecaster(torch.nn.Module):
    def __init__(self, d_model: int, n_layers: int) -> None:
        super().__init__()
        config = mambapy.MambaConfig(
            d_model=d_model, n_layers=n_layers, d_state=4, expand_factor=2, d_conv=3, pscan=False
        )
        self.embed = torch.nn.Linear(F, d_model)
        self.mamba = mambapy.Mamba(config)
        self.norm_f = mambapy.RMSNorm(d_model)
        self.head = torch.nn.Linear(d_model, OUT)

    def forward(self, x):
        return self.head(self.norm_f(self.mamba(self.embed(x)))[:, -1])  # (B, OUT)


class MinGRUForecaster(torch.nn.Module):
    def __init__(self, n_layers: int, expansion: float) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(mingru_pytorch.minGRU(F, expansion) for _ in range(n_layers))
        self.head = torch.nn.Linear(F, OUT)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)  # (B, L, F)
        return self.head(x[:, -1])  # (B, OUT)


def task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy sines; the target: the next value of the first two channels."""
    rng = np.random.default_rng(seed)
    t = np.arange(L + 1)[None, :, None] + rng.uniform(0, 6, size=(n, 1, F))
    series = np.sin(t * np.array([0.3, 0.5, 0.9])) + 0.1 * rng.normal(size=(n, L + 1, F))
    return series[:, :L], series[:, L, :OUT]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one thread is fastest, and keeps a busy machine from oversubscribing."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train(ref: torch.nn.Module) -> torch.nn.Module:
    """A few dozen full-batch Adam steps in float64."""
    ref = ref.double()
    x, y = (torch.from_numpy(a) for a in task(64, 0))
    optimizer = torch.optim.Adam(ref.parameters(), lr=1e-2)
    first = None
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = (ref(x) - y).pow(2).mean()
        loss.backward()
        optimizer.step()
        first = first if first is not None else loss.item()
    assert loss.item() < first  # it learned something: the weights are not the initial ones
    return ref


def seqbench_forecasts(model_name, backend, state, **options):
    model = model_class(model_name, backend)(F, OUT, dtype=np.float64, **options)
    params, absent = convert_in(state, model, "mambapy" if model_name == "mamba" else "mingru_pytorch")
    assert absent == []
    if backend == "numpy":
        model.params.update(params)
        return model.predict(task(16, 1)[0])
    from seqbench.models.torch.base import load_numpy

    load_numpy(model, params)
    with torch.no_grad():
        return model(torch.from_numpy(task(16, 1)[0])).numpy()


def own(ref: torch.nn.Module, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """seqbench's own weights (embedding, head) from the reference's nn.Linear: (in, out)."""
    state = {}
    for name in names:
        linear = getattr(ref, name)
        state[f"{name}.weight"] = linear.weight.detach().numpy().T
        state[f"{name}.bias"] = linear.bias.detach().numpy()
    return state


@functools.cache
def trained_mamba() -> MambaForecaster:
    torch.manual_seed(0)
    return train(MambaForecaster(d_model=6, n_layers=2))


@functools.cache
def trained_mingru(expansion: float) -> MinGRUForecaster:
    torch.manual_seed(0)
    return train(MinGRUForecaster(n_layers=2, expansion=expansion))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_mambapy_trained_forecaster_forecasts_the_same_in_seqbench(backend):
    ref = trained_mamba()
    state = {k.removeprefix("mamba."): v.detach().numpy() for k, v in ref.state_dict().items()}
    for k in state:  # mambapy computes with A = -exp(A_log) and D rounded to float32: so does seqbench here
        if k.endswith("A_log"):
            state[k] = np.log(np.exp(state[k].astype(np.float32)).astype(np.float64))
        if k.endswith("mixer.D"):
            state[k] = state[k].astype(np.float32).astype(np.float64)
    state.update(own(ref, ("embed", "head")))
    with torch.no_grad():
        expected = ref(torch.from_numpy(task(16, 1)[0])).numpy()
    options = {"hidden_size": 6, "n_layers": 2, "state_size": 4, "expand": 2, "conv_kernel": 3}
    got = seqbench_forecasts("mamba", backend, state, discretization="delta_b", **options)
    assert rel_diff(got, expected) < TOLERANCE


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("expansion", [1.0, 1.5])
def test_a_mingru_pytorch_trained_forecaster_forecasts_the_same_in_seqbench(backend, expansion):
    ref = trained_mingru(expansion)
    state = {k: v.detach().numpy() for k, v in ref.state_dict().items() if k.startswith("layers.")}
    state.update(own(ref, ("head",)))
    with torch.no_grad():
        expected = ref(torch.from_numpy(task(16, 1)[0])).numpy()
    got = seqbench_forecasts(
        "mingru", backend, state, hidden_size=F, n_layers=2, variant="log_space", expansion=expansion
    )
    assert rel_diff(got, expected) < TOLERANCE
