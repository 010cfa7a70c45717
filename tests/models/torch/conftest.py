"""Fixtures for the Torch backend tests (this file must not import torch: the suite runs without it)."""

import numpy as np
import pytest

from seqbench.data.windows import WindowSet


@pytest.fixture
def memory_task():
    """The NumPy tests' memory task (tests/models/numpy/conftest.py): white-noise windows whose
    target is twice the mean of all but the last input, so persistence is useless."""

    def make(n: int, seq_len: int = 8, seed: int = 0) -> WindowSet:
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, seq_len, 1))
        y = 2 * x[:, :-1].mean(axis=1)  # (n, 1)
        return WindowSet(x, y, np.arange(n))

    return make
