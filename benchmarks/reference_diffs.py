"""How far seqbench's models are from the reference implementations, on the same weights, float64.

For each model and setting: seqbench's forecast y (B, O) of a random batch, and every layer
gradient of sum(y * w), against the reference's blocks between seqbench's own embedding, final
norm and head (which the references have no counterpart for), with weights converted by
`seqbench.convert` (torch.nn.GRU: weight_ih = W_x^T, weight_hh = W_h^T). Reported: the largest
relative difference max |a - b| / max(|a|, |b|) of the outputs and over the layer gradients.
mambapy rounds A = -exp(A_log) and D to float32; the weights here are float32 numbers where that
bites (A_log, D), as in tests/models/test_reference_mamba.py.

Usage: python benchmarks/reference_diffs.py [--output benchmarks/results/reference_diffs.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
B, L, D = 3, 9, 6


def params(model: Any) -> dict[str, Any]:
    import torch

    if hasattr(model, "params"):
        return {k: torch.from_numpy(np.array(v)) for k, v in model.params.items()}
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def noisy(module: Any, seed: int, rounded: tuple[str, ...] = ()) -> Any:
    import torch

    torch.manual_seed(seed)
    module = module.double()
    with torch.no_grad():
        for name, p in module.named_parameters():
            p += 0.3 * torch.randn_like(p)
            if name.endswith(rounded):
                p.copy_(p.float().double())
    return module


def mamba_case(backend: str, discretization: str) -> tuple:
    import mambapy.mamba as mambapy
    import torch

    from seqbench.convert import from_mambapy, load_mambapy
    from seqbench.models.registry import model_class

    config = mambapy.MambaConfig(d_model=D, n_layers=2, d_state=3, expand_factor=2, d_conv=3, dt_rank=2)
    ref = noisy(mambapy.Mamba(config), 0, ("A_log", ".D"))
    state = {k: v.detach().clone() for k, v in ref.state_dict().items()}
    for k in state:  # A_log with exp(A_log) = mambapy's float32 exp(A_log)
        if k.endswith("A_log"):
            state[k] = torch.log(torch.exp(state[k].float()).double())
    model = model_class("mamba", backend)(
        2, 2, hidden_size=D, n_layers=2, rng=np.random.default_rng(0), dtype=np.float64,
        state_size=3, expand=2, conv_kernel=3, dt_rank=2, discretization=discretization,
    )  # fmt: skip
    load_mambapy(model, state)
    p = params(model)

    def reference(x: Any) -> Any:
        h = ref(x @ p["embed.weight"] + p["embed.bias"])  # (B, L, D)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-5) * p["norm_f.weight"]
        return h[:, -1] @ p["head.weight"] + p["head.bias"]  # (B, O)

    return model, ref, reference, lambda grads: from_mambapy(grads, model), 2


def mingru_case(backend: str, expansion: float) -> tuple:
    import torch
    from minGRU_pytorch import minGRU as MinGRULayer

    from seqbench.convert import from_mingru_pytorch, load_mingru_pytorch
    from seqbench.models.registry import model_class

    ref = noisy(torch.nn.ModuleList(MinGRULayer(D, expansion) for _ in range(2)), 0)
    model = model_class("mingru", backend)(
        D, 2, hidden_size=D, n_layers=2, rng=np.random.default_rng(0), dtype=np.float64,
        variant="log_space", expansion=expansion,
    )  # fmt: skip
    load_mingru_pytorch(model, {f"layers.{k}": v for k, v in ref.state_dict().items()})
    p = params(model)

    def reference(x: Any) -> Any:
        for layer in ref:
            x = layer(x)  # (B, L, D)
        return x[:, -1] @ p["head.weight"] + p["head.bias"]

    convert = lambda grads: from_mingru_pytorch({f"layers.{k}": v for k, v in grads.items()}, model)  # noqa: E731
    return model, ref, reference, convert, D


def gru_case(backend: str) -> tuple:
    import torch

    from seqbench.models.registry import model_class

    ref = noisy(torch.nn.GRU(3, D, num_layers=2, batch_first=True), 0)
    model = model_class("gru", backend)(
        3, 2, hidden_size=D, n_layers=2, rng=np.random.default_rng(0), dtype=np.float64
    )
    names = {
        "weight_ih": ("W_x", True),
        "weight_hh": ("W_h", True),
        "bias_ih": ("b_x", False),
        "bias_hh": ("b_h", False),
    }

    def convert(tensors: dict[str, Any]) -> dict[str, np.ndarray]:
        out = {}
        for k, v in tensors.items():
            kind, layer = k.rsplit("_l", 1)
            ours_name, transpose = names[kind]
            v = v.detach().numpy()
            out[f"layers.{layer}.{ours_name}"] = v.T if transpose else v
        return out

    weights = convert(dict(ref.named_parameters()))
    if backend == "numpy":
        for k, v in weights.items():
            model.params[k][...] = v
    else:
        from seqbench.models.torch.base import load_numpy

        load_numpy(model, {**{k: v.detach().numpy() for k, v in model.state_dict().items()}, **weights})
    p = params(model)

    def reference(x: Any) -> Any:
        return ref(x)[0][:, -1] @ p["head.weight"] + p["head.bias"]

    return model, ref, reference, convert, 3


def measure(case: tuple) -> tuple[float, float]:
    import torch

    from seqbench.checks.parity import forward_backward, rel_diff

    model, ref, reference, convert, n_features = case
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(B, L, n_features)), rng.normal(size=(B, 2))
    y, grads = forward_backward(model, x, w)
    y_ref = reference(torch.from_numpy(x))
    (y_ref * torch.from_numpy(w)).sum().backward()
    theirs = convert({k: p.grad for k, p in ref.named_parameters()})
    grad_diff = max(rel_diff(grads[k], v) for k, v in theirs.items() if k.startswith("layers."))
    return rel_diff(y, y_ref.detach().numpy()), grad_diff


ROWS = [
    ("mamba", "discretization: delta_b", "mambapy", lambda b: mamba_case(b, "delta_b")),
    ("mamba", "discretization: zoh", "mambapy", lambda b: mamba_case(b, "zoh")),
    ("mingru", "variant: log_space, expansion: 1", "minGRU-pytorch", lambda b: mingru_case(b, 1.0)),
    ("mingru", "variant: log_space, expansion: 1.5", "minGRU-pytorch", lambda b: mingru_case(b, 1.5)),
    ("gru", "default", "torch.nn.GRU", gru_case),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=HERE / "results" / "reference_diffs.md")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    import torch

    torch.set_num_threads(1)
    lines = [
        "# seqbench against the reference implementations (float64, same weights)",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; torch {torch.__version__}; "
        f"batch {B}, L {L}, hidden {D}, 2 layers; command: python benchmarks/reference_diffs.py",
        "- max relative difference max|a - b| / max(|a|, |b|): of the forecasts, and the worst over every "
        "layer parameter's gradient",
        "",
        "| model | setting | reference | backend | outputs | gradients |",
        "|---|---|---|---|---:|---:|",
    ]
    for model, setting, peer, case in ROWS:
        for backend in ("numpy", "torch"):
            out, grad = measure(case(backend))
            lines.append(f"| {model} | {setting} | {peer} | {backend} | {out:.1e} | {grad:.1e} |")
    text = "\n".join(lines) + "\n"
    print(text)
    from seqbench.io import atomic_write_text

    atomic_write_text(args.output, text)
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
