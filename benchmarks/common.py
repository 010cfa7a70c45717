"""What the benchmark scripts share: where the workplace's shared/ files are, and what CPU ran them."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def set_threads(n: int) -> None:
    """Fix the BLAS thread count; it only takes effect if NumPy is not imported yet."""
    if "numpy" in sys.modules:
        print("warning: numpy was imported before the thread settings; they may not apply", file=sys.stderr)
    for name in THREAD_VARIABLES:
        os.environ[name] = str(n)


def find_shared(relative: str | Path) -> Path:
    """A file of the read-only shared/ folder: under $SEQBENCH_SHARED, else shared/ in the repository
    or beside it (or beside a folder above it, e.g. a fresh clone inside the work area); the first
    that exists, or the first candidate when none does (for the error message)."""
    places = [Path(os.environ["SEQBENCH_SHARED"])] if os.environ.get("SEQBENCH_SHARED") else []
    places += [folder / "shared" for folder in (REPO, *REPO.parents)]
    candidates = [place / relative for place in places]
    return next((path for path in candidates if path.is_file()), candidates[0])


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
