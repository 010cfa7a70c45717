"""Torch backend speed and memory against the implementations people use today, on CPU.

Contenders, each on the same random batch in one process, round-robin, medians of rounds:
- mamba (seqbench, `discretization: delta_b`, mambapy's) vs mambapy's Mamba (pscan=True): batch 32,
  d_model 64, 2 layers, state 16, expand 2, conv 4, dt rank ceil(64 / 16) = 4;
- mingru (seqbench, `variant: log_space`, expansion 1) vs minGRU-pytorch's minGRU(128) (expansion 1):
  hidden 128; and mingru-paper, seqbench's default minGRU (section 3.1: biases, h~ = x W_h + b_h,
  the same recurrence), against the same peer;
- gru (seqbench) vs torch.nn.GRU: hidden 128;
so that each pair computes the same function (SETTINGS; the table's "setting" column; the paper
variant is the paper's minGRU beside the peer's appendix B.3 one). seqbench's
models add their forecast head (and Mamba its embedding and final norm), which the peers lack.
each at L in {64, 256, 1024}: a training step (forward, backward, AdamW) and inference
(forward under no_grad). Peak memory is VmHWM from /proc/self/status, measured in a fresh
process per case after a few training steps; "extra" subtracts the VmHWM reached before
the first step (imports, model, data). A last table puts seqbench's Torch and NumPy
backends side by side on the original guide's workload (L 20, 1 feature, hidden 128).

Loop overhead (LOOP_CASES, LOOP_TASKS): what `seqbench train` adds to the training step. Runs
(`run_experiment`, the path `seqbench train` takes) of Torch Mamba (the mamba pair's model: d_model
64, 2 layers, state 16, expand 2, conv 4, delta_b) and of NumPy minGRU (hidden 128), L 1024, batch
32, `--loop-batches` batches an epoch, 2 epochs: a byte-level LM on a generated 1 MB text, and a
forecast (one step ahead, read from the last step, as the speed table's models) of a synthetic sine
of one feature cut into exactly `--loop-batches` batches of training windows and 2 batches each of
validation and test windows. Each against its pure step: `train_step` of a learner built from the
same spec (the same model, head and loss) on one fixed batch, timed in the same process,
round-robin with the runs, medians. The run's training time per batch comes from its metrics.json
`samples_per_second` (the training batches alone); "loop's own" is that less the seconds spent
inside the run's own `train_step` calls, per batch (what the loop adds, free of the machine's load
between the run and the pure step); its `val_seconds` per epoch stand beside it.
Target: the run's training per batch at most 1.2x the pure step.

Usage: python benchmarks/torch_speed.py [--threads 1] [--rounds 5] [--lengths 64,256,1024]
       python benchmarks/torch_speed.py --only-loop [--loop-length 1024] (the loop-overhead table alone)
Needs the `bench` extra: pip install -c constraints.txt -e ".[torch,bench]"
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAIRS = {  # seqbench contender (a model, or model-variant) -> its peer
    "mamba": "mambapy",
    "mingru": "minGRU-pytorch",
    "mingru-paper": "minGRU-pytorch",
    "gru": "torch.nn.GRU",
}
SETTINGS = {  # seqbench's options that make each model the peer's function (or the paper's variant)
    "mamba": {"discretization": "delta_b"},
    "mingru": {"variant": "log_space", "expansion": 1.0},
    "mingru-paper": {"variant": "paper"},
    "gru": {},
}
BATCH = 32
LOOP_CASES = {  # the loop-overhead runs: model spec section by name
    "mamba (torch)": {"name": "mamba", "backend": "torch", "hidden_size": 64, "n_layers": 2, "state_size": 16,
                      "expand": 2, "conv_kernel": 4, **SETTINGS["mamba"]},
    "mingru (numpy)": {"name": "mingru", "backend": "numpy", "hidden_size": 128, "n_layers": 1},
}  # fmt: skip
LOOP_TASKS = ("lm", "forecast")  # each case runs as each task
LOOP_EVAL_BATCHES = 2  # a forecast run's validation and test windows, in batches
LOOP_TARGET = 1.2  # the run's training time per batch over the pure step, at most
TARGETS = {  # judged on the row at the longest L: (what, passed(row)); speed-up = the peer's time / ours
    "mamba": ("train >= 5x faster, peak memory <= 1/3",
              lambda r: r["train_speedup"] >= 5 and r["memory_ratio"] <= 1 / 3),
    "mingru": ("train >= 2x faster", lambda r: r["train_speedup"] >= 2),
    "mingru-paper": ("train >= 2.5x faster", lambda r: r["train_speedup"] >= 2.5),
    "gru": ("train and inference at least as fast (>= 1x each)",
            lambda r: r["train_speedup"] >= 1 and r["infer_speedup"] >= 1),
}  # fmt: skip


def model_name(contender: str) -> str:
    """The seqbench model of a contender: mingru-paper -> mingru."""
    return contender.split("-")[0]


def set_threads(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


@dataclass
class Case:
    """One contender at one sequence length: a model, its input, and its loss."""

    name: str
    model: object
    x: object
    loss: Callable[[object], object]


def build(contender: str, L: int, seed: int = 0) -> Case:
    """The contender's model and a random batch; seqbench's models forecast from the last step."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if contender == "mambapy":
        from mambapy.mamba import Mamba, MambaConfig

        model = Mamba(MambaConfig(d_model=64, n_layers=2, d_state=16, expand_factor=2, d_conv=4, pscan=True))
        x = torch.randn(BATCH, L, 64)
        return Case(contender, model, x, lambda out: out[:, -1].pow(2).mean())
    if contender == "minGRU-pytorch":
        from minGRU_pytorch import minGRU

        model = minGRU(128)
        x = torch.randn(BATCH, L, 128)
        return Case(contender, model, x, lambda out: out[:, -1].pow(2).mean())
    if contender == "torch.nn.GRU":
        model = torch.nn.GRU(128, 128, batch_first=True)
        x = torch.randn(BATCH, L, 128)
        return Case(contender, model, x, lambda out: out[0][:, -1].pow(2).mean())
    from seqbench.models.registry import model_class

    hidden, features, options = (
        (64, 64, {"state_size": 16, "expand": 2, "conv_kernel": 4, **SETTINGS[contender]})
        if contender == "mamba"
        else (128, 128, SETTINGS[contender])
    )
    layers = 2 if contender == "mamba" else 1
    model = model_class(model_name(contender), "torch")(
        features, 1, hidden_size=hidden, n_layers=layers, rng=rng, dtype=np.float32, **options
    )
    x = torch.randn(BATCH, L, features)
    return Case(contender, model, x, lambda out: out.pow(2).mean())


def setting(model: str) -> str:
    """The row's seqbench options, e.g. `discretization: delta_b` ('default' when none)."""
    return (
        ", ".join(f"{k}: {v:g}" if isinstance(v, float) else f"{k}: {v}" for k, v in SETTINGS[model].items())
        or "default"
    )


def train_step_fn(case: Case) -> Callable[[], None]:
    import torch

    opt = torch.optim.AdamW(case.model.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        case.loss(case.model(case.x)).backward()
        opt.step()

    return step


def infer_fn(case: Case) -> Callable[[], None]:
    import torch

    def infer() -> None:
        with torch.inference_mode():  # as seqbench predicts; every contender alike
            case.model(case.x)

    return infer


def timed(fn: Callable[[], None], repeats: int) -> float:
    """Seconds per call, the mean of `repeats` calls."""
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def vm_hwm_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure_memory(contender: str, L: int, threads: int) -> dict:
    """Run in a fresh process: peak resident memory of a few training steps."""
    import torch

    torch.set_num_threads(threads)
    case = build(contender, L)
    before = vm_hwm_mb()
    step = train_step_fn(case)
    for _ in range(2):
        step()
    peak = vm_hwm_mb()
    return {"peak_mb": peak, "extra_mb": peak - before}


def memory_in_fresh_process(contender: str, L: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--memory-case", contender, str(L), "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ})
    return json.loads(out.stdout.strip().splitlines()[-1])


def speed_table(lengths: list[int], rounds: int, threads: int, models: list[str]) -> list[dict]:
    """Round-robin medians of train-step and inference time per contender and length."""
    import torch

    torch.set_num_threads(threads)
    rows = []
    for L in lengths:
        contenders = list(dict.fromkeys(c for m in models for c in (m, PAIRS[m])))  # a peer once
        cases = {c: build(c, L) for c in contenders}
        fns = {c: (train_step_fn(cases[c]), infer_fn(cases[c])) for c in contenders}
        repeats = max(1, 64 // L * 4) if L < 1024 else 1
        for c in contenders:  # warm-up
            fns[c][0]()
            fns[c][1]()
        times: dict[str, tuple[list[float], list[float]]] = {c: ([], []) for c in contenders}
        for r in range(rounds):
            for c in contenders:
                times[c][0].append(timed(fns[c][0], repeats))
                times[c][1].append(timed(fns[c][1], 3 * repeats))  # inference: ~1/3 of a step, 3 calls
            print(f"L={L} round {r + 1}/{rounds}", file=sys.stderr, flush=True)
        for m in models:
            peer = PAIRS[m]
            ours_mem, peer_mem = (memory_in_fresh_process(c, L, threads) for c in (m, peer))
            ours_t, peer_t = statistics.median(times[m][0]), statistics.median(times[peer][0])
            ours_i, peer_i = statistics.median(times[m][1]), statistics.median(times[peer][1])
            rows.append(
                {
                    "model": m,
                    "setting": setting(m),
                    "peer": peer,
                    "L": L,
                    "train_ms": ours_t * 1e3,
                    "peer_train_ms": peer_t * 1e3,
                    "train_speedup": peer_t / ours_t,
                    "infer_ms": ours_i * 1e3,
                    "peer_infer_ms": peer_i * 1e3,
                    "infer_speedup": peer_i / ours_i,
                    "us_per_token": ours_t / (BATCH * L) * 1e6,
                    "extra_mb": ours_mem["extra_mb"],
                    "peer_extra_mb": peer_mem["extra_mb"],
                    "peak_mb": ours_mem["peak_mb"],
                    "peer_peak_mb": peer_mem["peak_mb"],
                    "memory_ratio": ours_mem["extra_mb"] / max(peer_mem["extra_mb"], 1e-9),
                }
            )
    return rows


def backend_table(rounds: int, threads: int, models: list[str]) -> list[dict]:
    """seqbench Torch vs NumPy on the guide's workload: training samples per second."""
    import numpy as np

    from seqbench.spec import Spec
    from seqbench.training.learners import build_learner

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3456, 20, 1)).astype(np.float32)
    y = rng.normal(size=(3456, 1)).astype(np.float32)
    learners = {}
    for m in models:
        for backend in ("numpy", "torch"):
            spec = Spec.model_validate(
                {
                    "dataset": {"source": "synthetic", "name": "sine"},
                    "model": {
                        "name": model_name(m),
                        "backend": backend,
                        "hidden_size": 128,
                        "n_layers": 2 if m == "mamba" else 1,
                        "state_size": 16,
                        **SETTINGS[m],
                    },
                    "train": {"threads": threads} if backend == "torch" else {},
                }
            )
            learners[(m, backend)] = build_learner(spec, 1, 1)

    def epoch(learner: object) -> float:
        start = time.perf_counter()
        for i in range(0, len(x), 32):
            learner.train_step(x[i : i + 32], y[i : i + 32])
        return len(x) / (time.perf_counter() - start)

    for learner in learners.values():
        learner.train_step(x[:32], y[:32])
    rates: dict[tuple[str, str], list[float]] = {k: [] for k in learners}
    for _ in range(rounds):
        for key, learner in learners.items():
            rates[key].append(epoch(learner))
    rows = []
    for m in models:
        numpy_rate, torch_rate = (statistics.median(rates[(m, b)]) for b in ("numpy", "torch"))
        rows.append(
            {
                "model": m,
                "setting": setting(m),
                "numpy_samples_s": numpy_rate,
                "torch_samples_s": torch_rate,
                "torch_vs_numpy": torch_rate / numpy_rate,
            }
        )
    return rows


def loop_text(size: int = 1_000_000, seed: int = 0) -> bytes:
    """A text of `size` bytes: words of 2-8 lowercase letters from a 2,000-word vocabulary."""
    import numpy as np

    rng = np.random.default_rng(seed)
    words = [bytes(rng.integers(97, 123, size=rng.integers(2, 9)).tolist()) for _ in range(2000)]
    text = b" ".join(words[i] for i in rng.integers(0, len(words), size=size // 3))
    return text[:size]


def loop_spec(task: str, model: dict, text: Path, L: int, batches: int, threads: int) -> object:
    """A 2-epoch run of `model` at seq_len `L`, `batches` training batches an epoch: an LM on the
    file `text`, or a forecast of a synthetic sine (row counts: exactly `batches` batches of
    training windows, LOOP_EVAL_BATCHES of validation and of test windows)."""
    from seqbench.spec import Spec

    train = {"epochs": 2, "batch_size": BATCH, "threads": threads, "patience": 0, "device": "cpu"}
    if task == "lm":
        dataset = {"source": "text", "path": str(text), "seq_len": L}
        train["batches_per_epoch"] = batches
    else:
        rows = {
            "train": L + batches * BATCH,
            "val": LOOP_EVAL_BATCHES * BATCH,
            "test": LOOP_EVAL_BATCHES * BATCH,
        }
        dataset = {
            "source": "synthetic",
            "name": "sine",
            "length": sum(rows.values()),
            "seq_len": L,
            "split": rows,
        }
    run = {"name": f"loop-{task}", "dataset": dataset, "model": model, "train": train}
    return Spec.model_validate(run)


@contextlib.contextmanager
def steps_timed() -> Iterator[list[float]]:
    """Inside, every learner's `train_step` (either backend) adds its seconds to the list yielded:
    what a run spends in its steps, so that the rest of its training time is the loop's own."""
    from seqbench.models.numpy.learner import NumpyLearner
    from seqbench.models.torch.learner import TorchLearner

    seconds: list[float] = []
    originals = {cls: cls.train_step for cls in (NumpyLearner, TorchLearner)}

    def timing(step: Callable) -> Callable:
        def train_step(self: object, *args: object, **kwargs: object) -> float:
            start = time.perf_counter()
            try:
                return step(self, *args, **kwargs)
            finally:
                seconds.append(time.perf_counter() - start)

        return train_step

    try:
        for cls, step in originals.items():
            cls.train_step = timing(step)  # type: ignore[method-assign]
        yield seconds
    finally:
        for cls, step in originals.items():
            cls.train_step = step  # type: ignore[method-assign]


def loop_table(rounds: int, threads: int, L: int = 1024, batches: int = 4) -> list[dict]:
    """Per LOOP_TASKS and LOOP_CASES: a run's training seconds per batch (metrics.json) and validation
    seconds per epoch, against the pure step of the same model, round-robin, medians of `rounds`."""
    import tempfile

    import numpy as np

    from seqbench.run.experiment import run_experiment
    from seqbench.tasks.lm import VOCAB
    from seqbench.training.learners import build_learner, thread_limit

    rng = np.random.default_rng(0)
    ids = rng.integers(0, VOCAB, size=(BATCH, L + 1))
    batch = {
        "lm": (ids[:, :-1], ids[:, 1:]),  # (B, L) byte ids, and the next byte of each
        "forecast": (rng.normal(size=(BATCH, L, 1)), rng.normal(size=(BATCH, 1))),  # as the windows: float64
    }
    cases = [(task, name) for task in LOOP_TASKS for name in LOOP_CASES]
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "text.txt"
        text.write_bytes(loop_text())
        specs = {
            (task, name): loop_spec(task, LOOP_CASES[name], text, L, batches, threads) for task, name in cases
        }
        learners = {
            (task, name): build_learner(spec, VOCAB, VOCAB, vocab_size=VOCAB, loss="cross_entropy")
            if task == "lm"
            else build_learner(spec, 1, 1)
            for (task, name), spec in specs.items()
        }  # fmt: skip

        def pure_step(case: tuple[str, str]) -> float:
            with thread_limit(threads), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                return timed(lambda: learners[case].train_step(*batch[case[0]]), batches)

        for case in cases:  # warm-up: the first step's allocations
            pure_step(case)
        times: dict[tuple[str, str], dict[str, list[float]]] = {
            case: {"step": [], "run": [], "own": [], "val": [], "all": []} for case in cases
        }
        for r in range(rounds):
            for case in cases:
                times[case]["step"].append(pure_step(case))
                with steps_timed() as steps:
                    m = run_experiment(specs[case], Path(tmp) / "results", Path(tmp) / "data").metrics
                n = m["epochs_run"] * batches
                train_alone = n * BATCH / m["samples_per_second"]
                times[case]["run"].append(train_alone / n)
                times[case]["own"].append((train_alone - sum(steps)) / n)  # the loop's, beside its steps
                times[case]["val"].append(m["val_seconds"] / m["epochs_run"])
                times[case]["all"].append(m["train_seconds"] / n)
            print(f"loop round {r + 1}/{rounds}", file=sys.stderr, flush=True)
    rows = []
    for (task, name), t in times.items():
        step, run, own, val, every = (statistics.median(t[k]) for k in ("step", "run", "own", "val", "all"))
        model = LOOP_CASES[name]
        rows.append(
            {
                "task": task,
                "case": name,
                "setting": ", ".join(f"{k} {v}" for k, v in model.items() if k not in ("name", "backend")),
                "L": L,
                "batches": batches,
                "step_ms": step * 1e3,
                "run_ms": run * 1e3,
                "ratio": run / step,
                "own_ms": own * 1e3,
                "samples_s": BATCH / run,
                "val_s": val,
                "with_val_samples_s": BATCH / every,
                "with_val_ratio": every / step,
            }
        )
    return rows


def loop_markdown(loop: list[dict]) -> list[str]:
    """The loop-overhead table and its target verdict."""
    if not loop:
        return []
    lines = [
        f"## Loop overhead: `seqbench train` against the pure step (batch {BATCH}, runs of 2 epochs)",
        "",
        "| task | case | setting | L | batches / epoch | pure step ms | run's training ms / batch "
        "| run / step | loop's own ms / batch | training samples/s | validation s / epoch "
        "| samples/s with validation | with validation / step |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in loop:
        lines.append(
            f"| {r['task']} | {r['case']} | {r['setting']} | {r['L']} | {r['batches']} | {r['step_ms']:.0f} "
            f"| {r['run_ms']:.0f} | {r['ratio']:.2f}x | {r['own_ms']:.1f} | {r['samples_s']:.1f} "
            f"| {r['val_s']:.2f} | {r['with_val_samples_s']:.1f} | {r['with_val_ratio']:.2f}x |"
        )
    verdicts = [
        f"{r['task']} {r['case']} {r['ratio']:.2f}x {'met' if r['ratio'] <= LOOP_TARGET else 'NOT met'}"
        for r in loop
    ]
    lines += [
        "",
        f"Target: the run's training time per batch at most {LOOP_TARGET}x the pure step: "
        + "; ".join(verdicts),
        "",
    ]
    return lines


def targets_markdown(speed: list[dict]) -> list[str]:
    """Each contender's target judged on its row at the longest L."""
    longest = max(r["L"] for r in speed)
    lines = [f"Targets, at L {longest}:", "", "| model | target | result | |", "|---|---|---|---|"]
    for r in (r for r in speed if r["L"] == longest and r["model"] in TARGETS):
        what, passed = TARGETS[r["model"]]
        result = f"train {r['train_speedup']:.2f}x, inference {r['infer_speedup']:.2f}x"
        result += f", memory {r['memory_ratio']:.2f}" if r["model"] == "mamba" else ""
        lines.append(f"| {r['model']} | {what} | {result} | {'met' if passed(r) else 'NOT met'} |")
    return lines


def markdown(
    speed: list[dict], backends: list[dict], args: argparse.Namespace, loop: list[dict] | None = None
) -> str:
    import torch

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    load_start = getattr(args, "load_start", math.nan)  # set by main() before the first measurement
    lines = [
        "# Torch backend speed and memory (CPU)",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; cpu: {cpu} ({os.cpu_count()} cores)",
        f"- torch {torch.__version__}; threads {args.threads}; rounds {args.rounds} (medians, round-robin)",
        f"- command: `{' '.join(['python benchmarks/torch_speed.py', *sys.argv[1:]])}`",
        f"- load average (1 min) at start / end: {load_start:.1f} / {os.getloadavg()[0]:.1f} "
        "(other processes share the cores)",
        f"- batch {BATCH}, float32; train = forward + backward + AdamW; memory = VmHWM in a fresh process, "
        "extra = above the VmHWM before the first step",
        "",
    ]
    table = [
        "| model | setting | peer | L | train ms | peer train ms | speed-up | infer ms | peer infer ms "
        "| speed-up | us/token | extra MB | peer extra MB | memory ratio |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in speed:
        cells = [
            r["model"],
            r["setting"],
            r["peer"],
            r["L"],
            f"{r['train_ms']:.1f}",
            f"{r['peer_train_ms']:.1f}",
            f"{r['train_speedup']:.2f}x",
            f"{r['infer_ms']:.1f}",
            f"{r['peer_infer_ms']:.1f}",
            f"{r['infer_speedup']:.2f}x",
            f"{r['us_per_token']:.2f}",
            f"{r['extra_mb']:.0f}",
            f"{r['peer_extra_mb']:.0f}",
            f"{r['memory_ratio']:.2f}",
        ]
        table.append("| " + " | ".join(str(c) for c in cells) + " |")
    if speed:
        lines += [*table, "", *targets_markdown(speed), ""]
    if backends:
        lines += [
            "## seqbench Torch vs NumPy on the guide's workload (L 20, 1 feature, hidden 128, batch 32)",
            "",
            "| model | setting | NumPy samples/s | Torch samples/s | Torch / NumPy |",
            "|---|---|---:|---:|---:|",
        ]
        lines += [
            f"| {r['model']} | {r['setting']} | {r['numpy_samples_s']:,.0f} | {r['torch_samples_s']:,.0f} | "
            f"{r['torch_vs_numpy']:.2f}x |"
            for r in backends
        ]
    if loop:
        lines += ["", *loop_markdown(loop)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lengths", default="64,256,1024")
    parser.add_argument("--models", default=",".join(PAIRS))
    parser.add_argument("--output", type=Path, default=HERE / "results" / "torch_speed.md")
    parser.add_argument("--skip-backends", action="store_true", help="skip the Torch vs NumPy table")
    parser.add_argument("--skip-loop", action="store_true", help="skip the loop-overhead table")
    parser.add_argument("--only-loop", action="store_true", help="the loop-overhead table alone")
    parser.add_argument("--loop-length", type=int, default=1024, help="the loop-overhead runs' seq_len")
    parser.add_argument(
        "--loop-batches", type=int, default=4, help="the loop-overhead runs' batches an epoch"
    )
    parser.add_argument("--memory-case", nargs=2, metavar=("CONTENDER", "L"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    set_threads(args.threads)
    if args.memory_case:
        print(json.dumps(measure_memory(args.memory_case[0], int(args.memory_case[1]), args.threads)))
        return
    sys.path.insert(0, str(HERE.parent))
    models = args.models.split(",")
    lengths = [] if args.only_loop else [int(v) for v in args.lengths.split(",")]
    args.load_start = os.getloadavg()[0]
    speed = speed_table(lengths, args.rounds, args.threads, models)
    backends = (
        [] if args.skip_backends or args.only_loop else backend_table(args.rounds, args.threads, models)
    )
    loop = (
        [] if args.skip_loop else loop_table(args.rounds, args.threads, args.loop_length, args.loop_batches)
    )
    text = markdown(speed, backends, args, loop)
    print(text)
    from seqbench.io import atomic_write_text

    atomic_write_text(args.output, text)
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
