"""ETTh1 on the long-horizon protocol: experiments/etth1_{96,192,336,720}.yaml, next to the papers.

Each spec trains through seqbench's own `run_experiment` from the offline copy of ETTh1
(row-count splits 8640 / 2880 / 2880, z-score on train, input 96, all 7 channels); the table
holds each run's scaled MSE / MAE over every channel and step of every test window, its
baselines' (persistence, seasonal persistence, ridge) and its wall time on this machine, beside
the published input-96 rows of arXiv 2403.11144 ("Is Mamba Effective for Time Series
Forecasting?"), marked as quoted.

    python benchmarks/ett.py                          # all four horizons: benchmarks/results/ett.md
    python benchmarks/ett.py --horizons 96 --seeds 3  # the 96 target, the mean of 3 seeds
    python benchmarks/ett.py --quick --output /tmp/ett.md   # smoke run, < 1 min
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
import time
from pathlib import Path

from common import (  # benchmarks/common.py: scripts run from this folder
    REPO,
    THREAD_VARIABLES,
    cpu_model,
    find_shared,
    set_threads,
)

HORIZONS = (96, 192, 336, 720)
# arXiv 2403.11144, input length 96: (MSE, MAE) at horizon 96, and averaged over the four horizons
QUOTED_96 = {
    "S-Mamba": (0.386, 0.405),
    "iTransformer": (0.386, 0.405),
    "RLinear": (0.386, 0.395),
    "DLinear": (0.386, 0.400),
    "PatchTST": (0.414, 0.419),
    "TimesNet": (0.384, 0.402),
    "FEDformer": (0.376, 0.419),
}
QUOTED_AVERAGE = {"S-Mamba": (0.455, 0.450), "RLinear": (0.446, 0.434), "FEDformer": (0.440, 0.460)}
FORECASTERS = ("model", "persistence", "seasonal", "linear")


def find_data() -> Path:
    """ETTh1.csv in the shared/ folder (see common.find_shared)."""
    return find_shared(Path("data") / "ETTh1.csv")


def run_horizon(horizon: int, seed: int, data: Path, results: Path, overrides: list[str]) -> dict:
    """Train one spec; its metrics.json `scaled` block and wall time."""
    from seqbench.experiment import run_experiment
    from seqbench.spec import load_spec

    spec = load_spec(REPO / "experiments" / f"etth1_{horizon}.yaml", [f"dataset.path={data}", *overrides])
    spec.seed = seed
    start = time.perf_counter()
    result = run_experiment(spec, results)
    seconds = time.perf_counter() - start
    if result.status != "completed":
        raise SystemExit(f"etth1_{horizon} seed {seed}: {result.status}: {result.message}")
    return {"scaled": result.metrics["scaled"], "windows": result.metrics["test_windows"], "seconds": seconds}


def mean_scores(runs: list[dict], name: str) -> tuple[float, float]:
    import numpy as np

    return (
        float(np.mean([r["scaled"][name]["mse"] for r in runs])),
        float(np.mean([r["scaled"][name]["mae"] for r in runs])),
    )


def table(measured: dict[int, list[dict]], model: str, quick: bool, threads: int) -> str:
    """The markdown page: seqbench's rows (measured) beside the papers' (quoted)."""
    import numpy as np

    lines = ["# ETTh1, input 96 (scaled MSE / MAE, all 7 channels, every test window)", ""]
    if quick:
        lines += ["Quick smoke run (cut short): not a result.", ""]
    lines += [
        f"{dt.date.today()}; {cpu_model()}, {os.cpu_count()} CPUs, {threads} BLAS thread(s) "
        f"({', '.join(THREAD_VARIABLES)}), Python {platform.python_version()}. "
        f"seqbench model: {model}; seeds per horizon: {len(next(iter(measured.values())))}.",
        "",
        "| forecaster | source | " + " | ".join(f"h={h} MSE / MAE" for h in measured) + " | wall s |",
        "|---|---|" + "---|" * len(measured) + "---|",
    ]
    for name in FORECASTERS:
        cells = [" / ".join(f"{v:.3f}" for v in mean_scores(measured[h], name)) for h in measured]
        wall = sum(np.mean([r["seconds"] for r in runs]) for runs in measured.values())
        label = model if name == "model" else name
        lines.append(
            f"| {label} | measured | "
            + " | ".join(cells)
            + (f" | {wall:.0f} |" if name == "model" else " | |")
        )
    for name, (mse, mae) in QUOTED_96.items():
        cells = [f"{mse:.3f} / {mae:.3f}" if h == 96 else "" for h in measured]
        lines.append(f"| {name} | quoted (arXiv 2403.11144) | " + " | ".join(cells) + " | |")
    lines += [
        "",
        "Averages over the four horizons, quoted: "
        + "; ".join(f"{name} {mse:.3f} / {mae:.3f}" for name, (mse, mae) in QUOTED_AVERAGE.items()),
    ]
    if set(measured) == set(HORIZONS):
        mse, mae = (float(np.mean([mean_scores(measured[h], "model")[i] for h in HORIZONS])) for i in (0, 1))
        lines[-1] += f"; seqbench {model}, measured: {mse:.3f} / {mae:.3f}"
    windows = {h: measured[h][0]["windows"] for h in measured}
    lines += ["", "Test windows: " + ", ".join(f"h={h}: {n:,}" for h, n in windows.items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizons", type=int, nargs="+", default=list(HORIZONS), choices=HORIZONS)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="KEY=VALUE for every spec"
    )
    parser.add_argument("--quick", action="store_true", help="horizon 96, one epoch of a tiny model")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "ett.md")
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads (default 2)")
    args = parser.parse_args()
    set_threads(args.threads)
    data = find_data()
    if not data.is_file():
        raise SystemExit(f"ETTh1 is not at {data}: set SEQBENCH_SHARED or run `seqbench download ETTh1`")
    overrides = list(args.overrides)
    horizons = args.horizons
    if args.quick:
        horizons, overrides = (
            [96],
            [*overrides, "train.epochs=1", "model.hidden_size=4", "train.batch_size=4096"],
        )
    with tempfile.TemporaryDirectory() as results:
        measured = {
            h: [run_horizon(h, seed, data, Path(results), overrides) for seed in range(args.seeds)]
            for h in horizons
        }
    from seqbench.spec import load_spec

    model = load_spec(REPO / "experiments" / "etth1_96.yaml", overrides).model.name
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".tmp")
    tmp.write_text(table(measured, model, args.quick, args.threads))
    tmp.replace(args.output)
    print(args.output)


if __name__ == "__main__":
    main()
