"""Keep freed memory in the process instead of returning it to the OS after every array.

glibc serves allocations above its mmap threshold (128 KiB at first) with fresh pages
from the kernel and unmaps them on free, so every large temporary array pays page faults
on first touch. A training step makes hundreds of such temporaries; raising the
threshold (and the trim threshold) lets them reuse warm memory. Measured on the guide's
workload (benchmarks/numpy_speed.py): minGRU steps about 3x faster, GRU about 1.4x.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed mmap threshold on 64-bit


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; False where that is unavailable."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt, Windows)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, 2 * THRESHOLD))


# A forward pass over many long windows makes temporaries (a Mamba's (b, T, N, E) scan chunks, a
# minGRU's gates) far larger than the CPU's caches; the same windows in passes of at most this many
# window steps measured 2-5x faster to predict at L 1024 (270 windows: Torch Mamba 12.4 s in one
# pass, 5.9 s in passes of 32; NumPy Mamba 94 s and 17 s; NumPy minGRU 6.8 s and 2.3 s).
STEPS_PER_PASS = 32 * 1024


def windows_per_pass(eval_batch_size: int, steps: int) -> int:
    """Windows per forward pass when predicting windows of `steps` steps: train.eval_batch_size, or
    fewer where that many would exceed STEPS_PER_PASS window steps (at least one window)."""
    return max(1, min(eval_batch_size, STEPS_PER_PASS // max(steps, 1)))
