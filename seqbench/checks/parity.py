"""A seqbench model against another implementation of it, on the same weights: the forecast and
every gradient of sum(y * w) on either backend (`forward_backward`), and how far two arrays are
apart (`rel_diff`). The reference tests and benchmarks/reference_diffs.py measure with these.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def rel_diff(a: Any, b: Any) -> float:
    """max |a - b| / max(max |a|, max |b|): the relative difference of two arrays."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), 1e-12)


def forward_backward(model: Any, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A seqbench model's forecast y (B, O) of x (B, L, F), and every gradient of sum(y * w), as NumPy
    arrays; a NumPy model's own backward pass, a Torch model's autograd (torch imported only then)."""
    if hasattr(model, "params"):
        y, caches = model.forward(x)
        return y, model.backward(w, caches)
    import torch

    y = model(torch.from_numpy(x))
    (y * torch.from_numpy(w)).sum().backward()
    return y.detach().numpy(), {k: p.grad.numpy() for k, p in model.named_parameters()}
