"""NumPy training throughput: seqbench's models against the original guide's own NumPy GRU.

What is timed is one training epoch: for each batch, forward + backward + optimiser step.
For seqbench that is `NumpyLearner.train_step` (MSE, global-norm clipping at 1.0, Adam),
on a learner built from a spec exactly as `seqbench train` builds it. For the guide it is
its own `train_epoch()` (BPTT through its "MinGRU", which is really a GRU, then plain SGD),
loaded at run time from seed_guide_numpy.py, never copied into the project.

The workload is the guide's: windows of 20 steps of 1 feature, batch 32, hidden size 128,
3,456 windows (108 batches) per epoch, from a fixed-seed random normal series. Mamba runs
2 layers with state size 16; the others 1 layer. BLAS threads are fixed (default 1) before
NumPy is imported. Each contender trains one warm-up epoch; then, for `--rounds` rounds,
every contender trains one timed epoch in turn (round-robin, so drifts in machine speed hit
all of them alike), and the median is reported.

    python benchmarks/numpy_speed.py                 # full run, writes benchmarks/results/numpy_speed.md
    python benchmarks/numpy_speed.py --quick --output /tmp/speed.md   # a few seconds' smoke run
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

from common import (  # benchmarks/common.py: scripts run from this folder
    REPO,
    THREAD_VARIABLES,
    cpu_model,
    find_shared,
    set_threads,
)

REFERENCE_FILE = Path("reference") / "seed_guide_numpy.py"  # in the workplace's read-only shared/ folder


def find_reference() -> Path:
    """The guide's code in the shared/ folder (see common.find_shared)."""
    return find_shared(REFERENCE_FILE)


DEFAULT_REFERENCE = find_reference()
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "numpy_speed.md"

# the original guide's workload
SEQ_LEN, N_FEATURES, BATCH_SIZE, HIDDEN_SIZE, WINDOWS = 20, 1, 32, 128, 3456
QUICK_WINDOWS = 64
GUIDE_LR = 0.01  # the guide's SGD learning rate
MODEL_SETTINGS: dict[str, dict[str, Any]] = {"mamba": {"n_layers": 2, "state_size": 16}}  # others: defaults
# float32 samples/s of each model over the guide GRU's: what the NumPy backend is meant to reach
TARGETS = {"mingru": 10.0, "gru": 2.0, "mamba": 0.1}
# by default float64 is measured (for reference) only where it is cheap, i.e. not for these
NO_DEFAULT_FLOAT64 = {"mamba"}


@dataclass
class Contender:
    label: str  # model name, or "guide gru"
    dtype: str
    params: int
    run_epoch: Callable[[], float]  # trains one epoch; returns its mean loss
    samples: int  # windows per epoch
    rates: list[float] = field(default_factory=list)  # samples/s of each timed epoch
    last_loss: float = float("nan")

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs per contender (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_WINDOWS} windows, 1 round, float32: a smoke run"
    )
    parser.add_argument(
        "--dtypes",
        default=None,
        help="seqbench dtypes, comma-separated (default: float32, plus float64 except for mamba)",
    )
    parser.add_argument("--models", default=None, help="comma-separated models (default: the registry)")
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE, help="seed_guide_numpy.py")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="Markdown results file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 1
    if args.rounds < 1 or args.threads < 1:
        parser.error("--rounds and --threads must be at least 1")
    return args


def usage_error(message: str) -> NoReturn:
    """Bad input: one line on stderr, exit 2 (as the seqbench CLI does)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def load_reference(path: Path) -> ModuleType:
    """Import the guide's seed_guide_numpy.py from where it lies (it is not part of seqbench)."""
    spec = importlib.util.spec_from_file_location("seed_guide_numpy", path)
    if spec is None or spec.loader is None or not path.is_file():
        usage_error(f"guide reference not found: {path} (pass --reference PATH)")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def guide_contender(guide: ModuleType, series: Any, seed: int) -> Contender:
    """The guide's GRU ("MinGRU"), on the guide's batches, trained by the guide's train_epoch."""
    import numpy as np

    batches = guide.create_stock_batches(series, SEQ_LEN, BATCH_SIZE)  # [(x (L, 1, B), y (1, B))]
    np.random.seed(seed)  # the guide draws its weights from NumPy's global generator
    gru = guide.MinGRU(N_FEATURES, HIDDEN_SIZE, 1)
    params = sum(getattr(gru, k).size for k in ("W_z", "W_r", "W_h", "W_y", "b_z", "b_r", "b_h", "b_y"))

    def run_epoch() -> float:
        return guide.train_epoch(gru, batches, lr=GUIDE_LR)

    return Contender("guide gru", "float64", params, run_epoch, len(batches) * BATCH_SIZE)


def seqbench_contender(name: str, dtype: str, series: Any, seed: int) -> Contender:
    """A seqbench model built as `seqbench train` builds it, stepped by NumpyLearner.train_step."""
    import numpy as np

    from seqbench.spec import Spec
    from seqbench.training.learners import build_learner

    spec = Spec.model_validate(
        {
            "seed": seed,
            "dataset": {"source": "synthetic", "name": "sine", "seq_len": SEQ_LEN},  # only the shapes matter
            "model": {"name": name, "hidden_size": HIDDEN_SIZE, **MODEL_SETTINGS.get(name, {})},
            "train": {"batch_size": BATCH_SIZE, "dtype": dtype},
        }
    )
    learner = build_learner(spec, N_FEATURES, 1)
    windows = np.lib.stride_tricks.sliding_window_view(series[:-1, 0], SEQ_LEN)  # (N, L)
    x = np.ascontiguousarray(windows[..., None])  # (N, L, 1)
    y = series[SEQ_LEN:]  # (N, 1): the value after each window
    n = len(x) // BATCH_SIZE * BATCH_SIZE  # whole batches, as the guide's batching
    batches = [(x[i : i + BATCH_SIZE], y[i : i + BATCH_SIZE]) for i in range(0, n, BATCH_SIZE)]

    def run_epoch() -> float:
        return float(np.mean([learner.train_step(xb, yb) for xb, yb in batches]))

    return Contender(name, dtype, learner.n_params, run_epoch, n)


def measure(contenders: list[Contender], rounds: int, log: Callable[[str], None]) -> None:
    """One warm-up epoch each, then `rounds` rounds of one timed epoch per contender."""
    for c in contenders:
        c.last_loss = c.run_epoch()
    for r in range(1, rounds + 1):
        for c in contenders:
            start = time.perf_counter()
            c.last_loss = c.run_epoch()
            seconds = time.perf_counter() - start
            c.rates.append(c.samples / seconds)
            rate = c.samples / seconds
            log(f"round {r}/{rounds}  {c.label:10s} {c.dtype}  {seconds:7.3f} s  {rate:9.0f} samples/s")


def verdict(c: Contender, guide_rate: float) -> tuple[str, str, str]:
    """(ratio, target, pass) for a row; targets apply to the float32 runs of TARGETS' models."""
    ratio = c.median / guide_rate
    target = TARGETS.get(c.label) if c.dtype == "float32" else None
    if target is None:
        return f"{ratio:.2f}x", "", ""
    return f"{ratio:.2f}x", f">= {target:g}x", "pass" if ratio >= target else "FAIL"


def rows(contenders: list[Contender], guide: Contender) -> list[list[str]]:
    out = []
    for c in contenders:
        ratio, target, ok = verdict(c, guide.median)
        rates = f"{min(c.rates):,.0f} - {max(c.rates):,.0f}"
        label = c.label if math.isfinite(c.last_loss) else f"{c.label} (loss not finite!)"
        out.append([label, c.dtype, f"{c.params:,}", f"{c.median:,.0f}", rates, ratio, target, ok])
    return out


HEADER = ["model", "dtype", "params", "samples/s (median)", "range", "vs guide GRU", "target", "result"]


def markdown(table: list[list[str]], meta: dict[str, str], quick: bool) -> str:
    lines = ["# NumPy training speed", ""]
    if quick:
        lines += ["**Quick smoke run (`--quick`): too short to be a measurement.**", ""]
    lines += [
        "Samples per second of one training epoch (forward + backward + optimiser step) on the",
        "original guide's workload, next to the guide's own NumPy GRU measured in the same run.",
        "Written by `python benchmarks/numpy_speed.py` (see benchmarks/README.md).",
        "",
    ]
    lines += [f"- {key}: {value}" for key, value in meta.items()]
    lines += ["", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table]
    lines += [
        "",
        "Targets (float32, against the guide GRU): "
        + ", ".join(f"{name} >= {t:g}x" for name, t in TARGETS.items())
        + ".",
        "float64 rows are for reference. The guide GRU is float64 with plain SGD (its own `train_epoch`);",
        "seqbench's models use Adam with global-norm clipping, as `seqbench train` does.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    # NumPy (and seqbench, which imports it) only now, after the thread settings
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from seqbench.io import atomic_write_text
    from seqbench.models.registry import model_names

    err = Console(stderr=True)
    guide = load_reference(args.reference)
    names = args.models.split(",") if args.models else model_names()
    unknown = sorted(set(names) - set(model_names()))
    if unknown:
        choices = ", ".join(model_names())
        usage_error(f"unknown model(s) {', '.join(unknown)}; choose from {choices}")
    if args.dtypes is None:  # float32, and float64 where it is cheap
        runs = [(n, "float32") for n in names]
        runs += [] if args.quick else [(n, "float64") for n in names if n not in NO_DEFAULT_FLOAT64]
    else:
        dtypes = args.dtypes.split(",")
        if not set(dtypes) <= {"float32", "float64"}:
            usage_error(f"--dtypes takes float32 and/or float64, got {args.dtypes}")
        runs = [(n, d) for d in dtypes for n in names]
    windows = QUICK_WINDOWS if args.quick else WINDOWS
    series = np.random.default_rng(args.seed).normal(size=(windows + SEQ_LEN, N_FEATURES))  # (T, 1)

    reference = guide_contender(guide, series, args.seed)
    contenders = [reference] + [seqbench_contender(n, d, series, args.seed) for n, d in runs]
    err.print(
        f"{len(contenders)} contenders, {reference.samples} windows per epoch, {args.rounds} rounds, "
        f"{args.threads} thread(s)"
    )
    measure(contenders, args.rounds, lambda line: err.print(line, highlight=False))

    table = rows(contenders, reference)
    meta = {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": f"{cpu_model()} ({os.cpu_count()} logical cores)",
        "numpy": np.__version__,
        "python": platform.python_version(),
        "threads": f"{args.threads} ({', '.join(THREAD_VARIABLES)})",
        "rounds": f"{args.rounds} timed epochs per contender, round-robin after one warm-up epoch; median",
        "workload": (
            f"{reference.samples} windows of {SEQ_LEN} steps x {N_FEATURES} feature per epoch, "
            f"batch {BATCH_SIZE}, hidden {HIDDEN_SIZE}; "
            + "; ".join(
                f"{m}: " + ", ".join(f"{k} {v}" for k, v in settings.items())
                for m, settings in MODEL_SETTINGS.items()
            )
            + "; others: 1 layer"
        ),
        "reference": f"{args.reference.name}: MinGRU (a full GRU) + train_epoch, SGD lr {GUIDE_LR}",
    }
    rich_table = Table(title=f"NumPy training speed ({args.threads} thread(s), median of {args.rounds})")
    for i, column in enumerate(HEADER):
        rich_table.add_column(column, justify="left" if i < 2 else "right")
    for row in table:
        rich_table.add_row(*row)
    Console(width=200 if not sys.stdout.isatty() else None).print(rich_table)
    atomic_write_text(args.output, markdown(table, meta, args.quick))
    err.print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
