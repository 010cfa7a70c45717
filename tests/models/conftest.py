"""Fixtures shared by the NumPy and Torch model tests (no torch import: the suite runs without it)."""

import numpy as np
import pytest

from seqbench.data.windows import WindowSet


@pytest.fixture
def memory_task():
    """Windows of white noise whose target is twice the mean of all but the last input.

    The last value (persistence) carries no information about it: a model must remember.
    """

    def make(n: int, seq_len: int = 8, seed: int = 0) -> WindowSet:
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, seq_len, 1))
        y = 2 * x[:, :-1].mean(axis=1)  # (n, 1)
        return WindowSet(x, y, np.arange(n))

    return make
