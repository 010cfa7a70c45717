"""ETT on the long-horizon protocol: seqbench's models on every file and horizon, baselines and papers beside.

Cells: each ETT file at hand (ETTh1, ETTh2, ETTm1, ETTm2) x horizon (96, 192, 336, 720) x model
(mingru, gru, mamba) x seed (--seeds, default 3), at input 96; and ETTh1 at inputs 336 and 720
(horizon 96 unless --long-horizons says more) as rows of their own. Each run is one spec,
experiments/ett_{model}.yaml as it stands, with `dataset.path`, `dataset.horizon`,
`dataset.seq_len` and `seed` set for the cell (after any --set), trained by seqbench's own
`run_experiment` into a temporary results folder. From its metrics.json the page takes `scaled`
(MSE / MAE in the scaler's units over every channel and step of every test window: the papers'
numbers) for the model and the three baselines (persistence, seasonal persistence, ridge with its
penalty `baseline_settings.linear.alpha` chosen on val), `test_windows`, and the run's wall time
(the whole `run_experiment` call: data, training, baselines, evaluation and its files).

The models' rows are the mean over seeds, +- the sample std (ddof 1); the baselines do not depend
on the model or the seed (one number per file, input and horizon). Beside them, the published
input-96 rows, quoted with their sources (QUOTED_INPUT_96 below), and SegRNN's input-720 row beside
the input-720 cells. The page states the targets (TARGET_* below) and whether each holds, computed
from the cells.

Data: each file is looked for as NAME.csv in --data-dir (when given), in the workplace's shared/data
(common.find_shared) and in the repository's data/ (where `seqbench download ETTm1` puts it); the
page names the files that were missing and skipped.

Resumable: every finished run goes into the .json beside the page (and the page and the picture are
rewritten) at once. A rerun reuses a cell whose spec is unchanged (same seqbench config id: every
key that can change a number) and runs the others; --fresh runs everything again. Ctrl-C stops
after writing what is done.

    python benchmarks/ett.py                     # every cell: benchmarks/results/ett.{md,json,png} (hours)
    python benchmarks/ett.py --files ETTh1 --horizons 96 --inputs 96   # ETTh1 96 -> 96, 3 models x 3 seeds
    python benchmarks/ett.py --data-dir data --files ETTm1            # after `seqbench download ETTm1`
    python benchmarks/ett.py --jobs 2 --threads 1                      # two runs at once, a core each
    python benchmarks/ett.py --quick --output /tmp/ett.md              # smoke run, < 1 min
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from common import (  # benchmarks/common.py: scripts run from this folder
    REPO,
    THREAD_VARIABLES,
    cpu_model,
    find_shared,
    set_threads,
)

FILES = ("ETTh1", "ETTh2", "ETTm1", "ETTm2")
HORIZONS = (96, 192, 336, 720)
MODELS = ("mingru", "gru", "mamba")
INPUT = 96  # the papers' input length (the quoted rows')
LONG_INPUTS = (336, 720)  # rows of their own, on LONG_INPUT_FILE only
INPUTS = (INPUT, *LONG_INPUTS)
LONG_INPUT_FILE = "ETTh1"
BASELINES = ("persistence", "seasonal", "linear")
QUICK = ["train.epochs=1", "model.hidden_size=4", "train.batch_size=4096"]  # one epoch of a tiny model
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "ett.md"
SPEC = "experiments/ett_{model}.yaml"
STORE_VERSION = 1
PICTURE_EVERY = 60.0  # seconds: the picture is redrawn after a run at most this often, and at the end

# targets (scaled MSE / MAE; "below" is strictly lower)
TARGET_ETTH1_96 = (0.365, 0.390)  # ETTh1 96 -> 96 at input 96: the mean over seeds at most this
TARGET_LONG = (720, 0.351, 0.392)  # ETTh1 horizon 96 at input 720: at most SegRNN's input-720 row
TARGET_SECONDS = 180.0  # one run of an ETTh1 96 -> 96 spec (every seed) within this wall time

# ---- quoted rows: each number read in the source named above its dict ---------------------------------
# {model: {file: row}}, a row as the papers print it: MSE, MAE at horizon 96, then 192, 336 and 720, then
# (where the source prints one) the average over the four.

# arXiv 2403.11144 (Z. Wang et al., "Is Mamba Effective for Time Series Forecasting?", v3), Table 3,
# "Full results of S-Mamba and baselines on ETT datasets", lookback 96; its baseline rows are those of
# iTransformer (arXiv 2310.06625). Read in the paper's LaTeX source (tab:results_ETT; a copy is public:
# github.com/yyyx6787/BEPN4DE, README.md at a474e914). Its iTransformer, TimesNet, PatchTST and DLinear
# ETT numbers agree with the table in SegRNN's README (below). Left out of the same table: Crossformer,
# TiDE, FEDformer, Autoformer. As printed, RLinear's ETTm1 average MAE (0.407) is not the mean of its four
# horizons (0.408); every other average is, to rounding.
S_MAMBA_TABLE_3: dict[str, dict[str, tuple[float, ...]]] = {
    "S-Mamba": {
        "ETTh1": (0.386, 0.405, 0.443, 0.437, 0.489, 0.468, 0.502, 0.489, 0.455, 0.450),
        "ETTh2": (0.296, 0.348, 0.376, 0.396, 0.424, 0.431, 0.426, 0.444, 0.381, 0.405),
        "ETTm1": (0.333, 0.368, 0.376, 0.390, 0.408, 0.413, 0.475, 0.448, 0.398, 0.405),
        "ETTm2": (0.179, 0.263, 0.250, 0.309, 0.312, 0.349, 0.411, 0.406, 0.288, 0.332),
    },
    "iTransformer": {
        "ETTh1": (0.386, 0.405, 0.441, 0.436, 0.487, 0.458, 0.503, 0.491, 0.454, 0.447),
        "ETTh2": (0.297, 0.349, 0.380, 0.400, 0.428, 0.432, 0.427, 0.445, 0.383, 0.407),
        "ETTm1": (0.334, 0.368, 0.377, 0.391, 0.426, 0.420, 0.491, 0.459, 0.407, 0.410),
        "ETTm2": (0.180, 0.264, 0.250, 0.309, 0.311, 0.348, 0.412, 0.407, 0.288, 0.332),
    },
    "RLinear": {
        "ETTh1": (0.386, 0.395, 0.437, 0.424, 0.479, 0.446, 0.481, 0.470, 0.446, 0.434),
        "ETTh2": (0.288, 0.338, 0.374, 0.390, 0.415, 0.426, 0.420, 0.440, 0.374, 0.398),
        "ETTm1": (0.355, 0.376, 0.391, 0.392, 0.424, 0.415, 0.487, 0.450, 0.414, 0.407),
        "ETTm2": (0.182, 0.265, 0.246, 0.304, 0.307, 0.342, 0.407, 0.398, 0.286, 0.327),
    },
    "PatchTST": {
        "ETTh1": (0.414, 0.419, 0.460, 0.445, 0.501, 0.466, 0.500, 0.488, 0.469, 0.454),
        "ETTh2": (0.302, 0.348, 0.388, 0.400, 0.426, 0.433, 0.431, 0.446, 0.387, 0.407),
        "ETTm1": (0.329, 0.367, 0.367, 0.385, 0.399, 0.410, 0.454, 0.439, 0.387, 0.400),
        "ETTm2": (0.175, 0.259, 0.241, 0.302, 0.305, 0.343, 0.402, 0.400, 0.281, 0.326),
    },
    "TimesNet": {
        "ETTh1": (0.384, 0.402, 0.436, 0.429, 0.491, 0.469, 0.521, 0.500, 0.458, 0.450),
        "ETTh2": (0.340, 0.374, 0.402, 0.414, 0.452, 0.452, 0.462, 0.468, 0.414, 0.427),
        "ETTm1": (0.338, 0.375, 0.374, 0.387, 0.410, 0.411, 0.478, 0.450, 0.400, 0.406),
        "ETTm2": (0.187, 0.267, 0.249, 0.309, 0.321, 0.351, 0.408, 0.403, 0.291, 0.333),
    },
    "DLinear": {
        "ETTh1": (0.386, 0.400, 0.437, 0.432, 0.481, 0.459, 0.519, 0.516, 0.456, 0.452),
        "ETTh2": (0.333, 0.387, 0.477, 0.476, 0.594, 0.541, 0.831, 0.657, 0.559, 0.515),
        "ETTm1": (0.345, 0.372, 0.380, 0.389, 0.413, 0.413, 0.474, 0.453, 0.403, 0.407),
        "ETTm2": (0.193, 0.292, 0.284, 0.362, 0.369, 0.427, 0.554, 0.522, 0.350, 0.401),
    },
}

# SegRNN (arXiv 2308.11200) at lookback 96: the table "Comparison Results for Lookback L = 96" of its
# README (github.com/lss-1138/SegRNN, added in commit d130248 with a fix of the test loader, MSE loss; its
# other rows are iTransformer's). The paper's own tables use lookback 720. No average per file is given:
# the page shows the mean of the four horizons, marked as computed.
SEGRNN_README_INPUT_96: dict[str, dict[str, tuple[float, ...]]] = {
    "SegRNN": {
        "ETTh1": (0.368, 0.395, 0.408, 0.419, 0.444, 0.440, 0.446, 0.457),
        "ETTh2": (0.278, 0.335, 0.359, 0.389, 0.421, 0.436, 0.432, 0.455),
        "ETTm1": (0.330, 0.369, 0.369, 0.392, 0.399, 0.412, 0.454, 0.443),
        "ETTm2": (0.173, 0.255, 0.237, 0.298, 0.296, 0.336, 0.389, 0.407),
    },
}

# SegRNN at lookback 720: Table II of its IEEE IoT-J version ("the look-back length is fixed at L = 720"),
# the picture in its README (github.com/lss-1138/SegRNN, Figures/Table2.png at commit b306b5a). arXiv v1's
# Table 2 had lower numbers (0.341 / 0.376 at ETTh1 96), from before the test-loader fix. ETTh1 only: the
# longer inputs run on ETTh1.
SEGRNN_TABLE_2_INPUT_720: dict[str, dict[str, tuple[float, ...]]] = {
    "SegRNN": {"ETTh1": (0.351, 0.392, 0.392, 0.414, 0.423, 0.433, 0.466, 0.472)},
}

QUOTED_INPUT_96 = {  # source -> its dict
    "arXiv 2403.11144, Table 3": S_MAMBA_TABLE_3,
    "SegRNN README, L = 96": SEGRNN_README_INPUT_96,
}
QUOTED_LONG = {720: {"SegRNN Table II, L = 720": SEGRNN_TABLE_2_INPUT_720}}  # input -> sources


@dataclass(frozen=True)
class Quoted:
    """One published row: a model on one file, its (MSE, MAE) per horizon and over the four."""

    name: str
    source: str
    scores: dict[int, tuple[float, float]]
    avg: tuple[float, float]
    avg_quoted: bool  # False: the mean of the four quoted horizons


def quoted_rows(file: str, sources: dict[str, dict]) -> list[Quoted]:
    """The rows of `sources` for `file`, in the sources' order."""
    rows = []
    for source, table in sources.items():
        for name, files in table.items():
            if file not in files:
                continue
            pairs = [tuple(files[file][i : i + 2]) for i in range(0, len(files[file]), 2)]
            scores = dict(zip(HORIZONS, pairs[: len(HORIZONS)], strict=True))
            if len(pairs) > len(HORIZONS):
                rows.append(Quoted(name, source, scores, pairs[len(HORIZONS)], True))
                continue
            mean = tuple(sum(scores[h][i] for h in HORIZONS) / len(HORIZONS) for i in (0, 1))
            rows.append(Quoted(name, source, scores, mean, False))
    return rows


# ---- cells and their runs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One run: a spec on one file, input length, horizon and seed."""

    file: str
    input: int
    horizon: int
    model: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.file}/in{self.input}/h{self.horizon}/{self.model}/seed{self.seed}"


def plan(
    files: list[str],
    inputs: list[int],
    horizons: list[int],
    long_horizons: list[int],
    models: list[str],
    seeds: int,
) -> list[Cell]:
    """Every cell asked for, ETTh1 96 -> 96 at input 96 first (most targets are on it)."""
    cells = [
        Cell(file, length, h, model, seed)
        for file in files
        for length in inputs
        if length == INPUT or file == LONG_INPUT_FILE
        for h in (horizons if length == INPUT else long_horizons)
        for model in models
        for seed in range(seeds)
    ]
    return sorted(cells, key=lambda c: (c.file, c.input, c.horizon) != (LONG_INPUT_FILE, INPUT, 96))


def cell_spec(cell: Cell, path: Path, overrides: list[str]) -> Any:
    """The cell's spec: the model's ETT spec, the user's --set, then the cell's own keys."""
    from seqbench.spec import load_spec

    own = [
        f"dataset.path={path}",
        f"dataset.horizon={cell.horizon}",
        f"dataset.seq_len={cell.input}",
        f"seed={cell.seed}",
    ]
    return load_spec(REPO / SPEC.format(model=cell.model), [*overrides, *own])


def spec_id(spec: Any) -> str:
    """seqbench's config id (every key that can change a number, not the seed), the data file by name
    only, so that a copy found elsewhere reuses the cell."""
    from seqbench.spec import config_id

    dataset = spec.dataset.model_copy(update={"path": Path(spec.dataset.path).name})
    return config_id(spec.model_copy(update={"dataset": dataset}))


def run_cell(cell: Cell, spec: Any, results: Path, threads: int) -> dict[str, Any]:
    """Train one spec; the record the page and a rerun read (the run folder is removed)."""
    from seqbench.run.experiment import run_experiment

    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    result = run_experiment(spec, results)
    seconds = time.perf_counter() - start
    record: dict[str, Any] = {
        "file": cell.file,
        "input": cell.input,
        "horizon": cell.horizon,
        "model": cell.model,
        "seed": cell.seed,
        "config_id": spec_id(spec),
        "status": result.status,
        "message": result.message,
        "seconds": seconds,
        "measured": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "threads": threads,
        "load": [load_start, os.getloadavg()[0]],
    }
    if result.status == "completed":
        m = result.metrics
        record.update(
            scaled=m["scaled"],
            linear_alpha=m["baseline_settings"]["linear"]["alpha"],
            season=m["baseline_settings"]["seasonal"]["season"],
            test_windows=m["test_windows"],
        )
    shutil.rmtree(result.run_dir, ignore_errors=True)
    return record


def run_cell_or_failure(cell: Cell, spec: Any, results: Path, threads: int) -> dict[str, Any]:
    """run_cell, or a failed record with seqbench's one-line message."""
    from seqbench.errors import SeqbenchError

    try:
        return run_cell(cell, spec, results, threads)
    except SeqbenchError as exc:
        return {"status": "failed", "message": str(exc), "config_id": spec_id(spec)}


def run_cells(
    cells: list[Cell], specs: dict[str, Any], results: Path, args: argparse.Namespace
) -> Iterator[tuple[Cell, dict[str, Any]]]:
    """Each cell's record as it finishes: one after another, or --jobs at a time in worker processes
    (each with --threads BLAS threads, which they inherit from this process's environment)."""
    if args.jobs == 1:
        for cell in cells:
            yield cell, run_cell_or_failure(cell, specs[cell.key], results, args.threads)
        return
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: BLAS threads set before NumPy
    pool = ProcessPoolExecutor(max_workers=args.jobs, mp_context=context)
    try:
        futures = {pool.submit(run_cell_or_failure, c, specs[c.key], results, args.threads): c for c in cells}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:  # Ctrl-C or a stop: the running cells end as interrupted, the others never start
        pool.shutdown(wait=True, cancel_futures=True)


# ---- what the cells say ----------------------------------------------------------------------------


Pair = tuple[float, float]  # (MSE, MAE)


@dataclass(frozen=True)
class Summary:
    """A model's cell over its completed seeds: means, sample stds (nan for one seed), wall times."""

    n: int
    mse: float
    mse_std: float
    mae: float
    mae_std: float
    seconds: float
    seconds_std: float
    seconds_max: float

    @property
    def pair(self) -> Pair:
        return self.mse, self.mae


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std (ddof 1; nan for fewer than two values)."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return mean, std


def mean_pair(pairs: list[Pair | None]) -> Pair | None:
    """The mean (MSE, MAE) of `pairs`; None if any is missing."""
    present = [p for p in pairs if p is not None]
    if not pairs or len(present) < len(pairs):
        return None
    return sum(p[0] for p in present) / len(present), sum(p[1] for p in present) / len(present)


def below(a: Pair, b: Pair) -> bool:
    """Both MSE and MAE of `a` strictly below `b`'s."""
    return a[0] < b[0] and a[1] < b[1]


class Results:
    """The completed records of the cells asked for, looked up by file, input, horizon and model."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = [r for r in records if r.get("status") == "completed"]

    def runs(self, file: str, length: int, horizon: int, model: str | None = None) -> list[dict[str, Any]]:
        return [
            r
            for r in self.records
            if (r["file"], r["input"], r["horizon"]) == (file, length, horizon)
            and model in (None, r["model"])
        ]

    def model(self, file: str, length: int, horizon: int, model: str) -> Summary | None:
        runs = self.runs(file, length, horizon, model)
        if not runs:
            return None
        (mse, mse_std), (mae, mae_std) = (
            mean_std([r["scaled"]["model"][k] for r in runs]) for k in ("mse", "mae")
        )
        seconds, seconds_std = mean_std([r["seconds"] for r in runs])
        return Summary(
            len(runs), mse, mse_std, mae, mae_std, seconds, seconds_std, max(r["seconds"] for r in runs)
        )

    def model_pair(self, file: str, length: int, horizon: int, model: str) -> Pair | None:
        summary = self.model(file, length, horizon, model)
        return None if summary is None else summary.pair

    def model_average(self, file: str, length: int, model: str) -> Pair | None:
        """The mean over the four horizons of the seeds' means; None unless all four are measured."""
        return mean_pair([self.model_pair(file, length, h, model) for h in HORIZONS])

    def baseline(self, file: str, length: int, horizon: int, name: str) -> Pair | None:
        """A baseline's (MSE, MAE): the same in every run of the cell (the mean, should they differ)."""
        runs = self.runs(file, length, horizon)
        return mean_pair([(r["scaled"][name]["mse"], r["scaled"][name]["mae"]) for r in runs])

    def baseline_average(self, file: str, length: int, name: str) -> Pair | None:
        return mean_pair([self.baseline(file, length, h, name) for h in HORIZONS])

    def first(self, file: str, length: int, horizon: int, key: str) -> Any:
        """`key` of the cell's first run (the same in every run: linear_alpha, test_windows)."""
        runs = self.runs(file, length, horizon)
        return runs[0][key] if runs else None


def fmt(pair: Pair | None) -> str:
    return "-" if pair is None else f"{pair[0]:.3f} / {pair[1]:.3f}"


def fmt_summary(s: Summary | None) -> str:
    if s is None:
        return "-"
    if s.n < 2:
        return fmt(s.pair)
    return f"{s.mse:.3f} ± {s.mse_std:.3f} / {s.mae:.3f} ± {s.mae_std:.3f}"


def fmt_seconds(s: Summary | None) -> str:
    if s is None:
        return "-"
    return f"{s.seconds:.0f}" if s.n < 2 else f"{s.seconds:.0f} ± {s.seconds_std:.0f}"


Verdict = tuple[str, str, bool | None]  # target, what was reached, passed (None: not measured)


def etth1_verdicts(results: Results, model: str) -> list[Verdict]:
    """The targets on ETTh1 at horizon 96, for one model."""
    s = results.model(LONG_INPUT_FILE, INPUT, 96, model)
    seeds = "" if s is None else f" ({s.n} seed(s))"
    mse_max, mae_max = TARGET_ETTH1_96
    out: list[Verdict] = [
        (
            f"ETTh1 96 -> 96, input 96, {model}: mean MSE <= {mse_max:.3f} and MAE <= {mae_max:.3f}",
            "not measured" if s is None else fmt(s.pair) + seeds,
            None if s is None else s.mse <= mse_max and s.mae <= mae_max,
        )
    ]
    seasonal = results.baseline(LONG_INPUT_FILE, INPUT, 96, "seasonal")
    linear = results.baseline(LONG_INPUT_FILE, INPUT, 96, "linear")
    measured = s is not None and seasonal is not None and linear is not None
    out.append(
        (
            f"ETTh1 96 -> 96, input 96, {model}: MSE and MAE below seasonal persistence and linear",
            f"{fmt(s.pair)} vs seasonal {fmt(seasonal)}, linear {fmt(linear)}"
            if measured
            else "not measured",
            below(s.pair, seasonal) and below(s.pair, linear) if measured else None,
        )
    )
    out.append(
        (
            f"ETTh1 96 -> 96, input 96, {model}: one run (wall time) within {TARGET_SECONDS:.0f} s",
            "not measured" if s is None else f"{s.seconds_max:.0f} s, the longest of {s.n} run(s)",
            None if s is None else s.seconds_max <= TARGET_SECONDS,
        )
    )
    length, mse_max, mae_max = TARGET_LONG
    s = results.model(LONG_INPUT_FILE, length, 96, model)
    out.append(
        (
            f"ETTh1 horizon 96, input {length}, {model}: mean MSE <= {mse_max:.3f} and MAE <= {mae_max:.3f}",
            "not measured" if s is None else f"{fmt(s.pair)} ({s.n} seed(s))",
            None if s is None else s.mse <= mse_max and s.mae <= mae_max,
        )
    )
    return out


def file_verdicts(results: Results, file: str, model: str) -> list[Verdict]:
    """The targets on one file at input 96 over the four horizons, for one model."""
    rows = quoted_rows(file, QUOTED_INPUT_96)
    best_mse, best_mae = min(rows, key=lambda q: q.avg[0]), min(rows, key=lambda q: q.avg[1])
    avg = results.model_average(file, INPUT, model)
    out: list[Verdict] = [
        (
            f"{file}, input 96, {model}: 4-horizon average MSE and MAE below every quoted input-96 row "
            f"(best: MSE {best_mse.avg[0]:.3f} {best_mse.name}, MAE {best_mae.avg[1]:.3f} {best_mae.name})",
            "not measured (all four horizons needed)" if avg is None else fmt(avg),
            None if avg is None else avg[0] < best_mse.avg[0] and avg[1] < best_mae.avg[1],
        )
    ]
    target = f"{file}, input 96, {model}: MSE and MAE below the linear baseline at every horizon"
    pairs = {
        h: (results.model_pair(file, INPUT, h, model), results.baseline(file, INPUT, h, "linear"))
        for h in HORIZONS
    }
    if any(m is None or b is None for m, b in pairs.values()):
        return [*out, (target, "not measured (all four horizons needed)", None)]
    above = [h for h, (m, b) in pairs.items() if not below(m, b)]
    reached = "below at all four" if not above else "not below at h=" + ", ".join(map(str, above))
    return [*out, (target, reached, not above)]


def verdicts(results: Results, files: list[str], models: list[str]) -> list[Verdict]:
    """Every target: those on ETTh1 per model, then per file at hand and model."""
    out = [v for model in models for v in etth1_verdicts(results, model)]
    return out + [v for file in files for model in models for v in file_verdicts(results, file, model)]


# ---- the page, the store and the picture -----------------------------------------------------------


def file_section(results: Results, file: str, models: list[str], horizons: list[int]) -> list[str]:
    """One file at input 96: the models, the baselines and the quoted rows; then alpha, windows, wall time."""
    header = [f"h={h} MSE / MAE" for h in horizons] + ["4-horizon avg"]
    lines = [
        f"## {file}, input 96",
        "",
        "| forecaster | source | " + " | ".join(header) + " |",
        "|---|---|" + "---|" * len(header),
    ]
    for model in models:
        summaries = [results.model(file, INPUT, h, model) for h in horizons]
        n = max((s.n for s in summaries if s is not None), default=0)
        cells = [fmt_summary(s) for s in summaries] + [fmt(results.model_average(file, INPUT, model))]
        lines.append(f"| seqbench {model} | measured, mean of {n} seed(s) | " + " | ".join(cells) + " |")
    for name in BASELINES:
        pairs = [results.baseline(file, INPUT, h, name) for h in horizons]
        avg = fmt(results.baseline_average(file, INPUT, name))
        lines.append(f"| {name} | measured | " + " | ".join(fmt(p) for p in pairs) + f" | {avg} |")
    for q in quoted_rows(file, QUOTED_INPUT_96):
        avg = fmt(q.avg) + ("" if q.avg_quoted else " (mean of the four)")
        lines.append(
            f"| {q.name} | quoted: {q.source} | "
            + " | ".join(fmt(q.scores.get(h)) for h in horizons)
            + f" | {avg} |"
        )
    alphas = [results.first(file, INPUT, h, "linear_alpha") for h in horizons]
    windows = [results.first(file, INPUT, h, "test_windows") for h in horizons]
    lines += [
        "",
        "linear: ridge on the flattened (RevIN, channel-independent) input window, its penalty alpha "
        "chosen on val: "
        + ", ".join(f"h={h}: {'-' if a is None else f'{a:g}'}" for h, a in zip(horizons, alphas, strict=True))
        + ". Test windows: "
        + ", ".join(
            f"h={h}: {'-' if w is None else f'{w:,}'}" for h, w in zip(horizons, windows, strict=True)
        )
        + ".",
        "",
        "Wall time per run (s), mean ± std over seeds:",
        "",
        "| model | " + " | ".join(f"h={h}" for h in horizons) + " |",
        "|---|" + "---:|" * len(horizons),
    ]
    for model in models:
        lines.append(
            f"| {model} | "
            + " | ".join(fmt_seconds(results.model(file, INPUT, h, model)) for h in horizons)
            + " |"
        )
    return [*lines, ""]


def long_section(results: Results, models: list[str], inputs: list[int], horizons: list[int]) -> list[str]:
    """ETTh1 at the longer inputs: the models, the linear baseline at that input, the quoted rows."""
    header = [f"h={h} MSE / MAE" for h in horizons]
    lines = [
        f"## {LONG_INPUT_FILE}, longer inputs",
        "",
        "Persistence and seasonal persistence do not depend on the input length (the table above has them).",
        "",
        "| forecaster | input | source | " + " | ".join(header) + " | wall s per run |",
        "|---|---:|---|" + "---|" * len(header) + "---|",
    ]
    for length in inputs:
        for model in models:
            summaries = [results.model(LONG_INPUT_FILE, length, h, model) for h in horizons]
            n = max((s.n for s in summaries if s is not None), default=0)
            walls = " / ".join(fmt_seconds(s) for s in summaries)
            lines.append(
                f"| seqbench {model} | {length} | measured, mean of {n} seed(s) | "
                + " | ".join(fmt_summary(s) for s in summaries)
                + f" | {walls} |"
            )
        pairs = [results.baseline(LONG_INPUT_FILE, length, h, "linear") for h in horizons]
        alphas = [results.first(LONG_INPUT_FILE, length, h, "linear_alpha") for h in horizons]
        alpha = ", ".join("-" if a is None else f"{a:g}" for a in alphas)
        lines.append(
            f"| linear (alpha {alpha}) | {length} | measured | " + " | ".join(fmt(p) for p in pairs) + " | |"
        )
        for q in quoted_rows(LONG_INPUT_FILE, QUOTED_LONG.get(length, {})):
            lines.append(
                f"| {q.name} | {length} | quoted: {q.source} | "
                + " | ".join(fmt(q.scores.get(h)) for h in horizons)
                + " | |"
            )
    return [*lines, ""]


def markdown(results: Results, meta: dict[str, Any], args: argparse.Namespace) -> str:
    files, models = meta["files"], args.models
    lines = ["# ETT on the long-horizon protocol: seqbench, baselines and the papers (scaled MSE / MAE)", ""]
    if args.quick:
        lines += ["**Quick smoke run (`--quick`): one epoch of a tiny model, not a result.**", ""]
    done, total = meta["done"], meta["total"]
    if done < total:
        lines += [f"**Partial: {done} of {total} runs done.** The same command goes on from here.", ""]
    lines += [
        "Scaled MSE / MAE (the scaler's units, every channel and step of every test window, as the papers "
        "quote them) of seqbench's models and of three baselines, measured here by "
        "`python benchmarks/ett.py` "
        "(the method is in its docstring), beside published rows quoted with their source. "
        "Measured models: mean ± sample std over seeds.",
        "",
    ]
    lines += [f"- {key}: {value}" for key, value in meta["shown"].items()]
    lines += ["", "## Targets", "", "| target | reached | result |", "|---|---|---|"]
    for target, reached, ok in verdicts(results, files, models):
        lines.append(f"| {target} | {reached} | {'-' if ok is None else 'pass' if ok else 'FAIL'} |")
    lines.append("")
    for file in files:
        lines += file_section(results, file, models, args.horizons)
    long_inputs = [length for length in args.inputs if length != INPUT]
    if LONG_INPUT_FILE in files and long_inputs:
        lines += long_section(results, models, long_inputs, args.long_horizons)
    if meta["failed"]:
        lines += ["## Runs that did not complete", ""]
        lines += [f"- {key}: {message}" for key, message in meta["failed"].items()]
        lines.append("")
    lines += [
        "Sources of the quoted rows: arXiv 2403.11144 v3, Table 3 (S-Mamba and its baselines, input 96); "
        "SegRNN's README table for lookback 96 (github.com/lss-1138/SegRNN); SegRNN's Table II (IEEE IoT-J "
        "version, lookback 720). Where each was read is in the comments of benchmarks/ett.py.",
        "",
        "The picture leaves persistence out (its MSE is far above the rest).",
        "",
        f"![MSE per horizon: models, baselines, best quoted row]({args.output.with_suffix('.png').name})",
        "",
    ]
    return "\n".join(lines)


def plot(results: Results, files: list[str], models: list[str], path: Path) -> None:
    """MSE per horizon, one panel per file at hand: the models (mean, std bars), seasonal persistence,
    the linear baseline and the best quoted input-96 row at each horizon; on ETTh1 also the longer inputs."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from seqbench.io import atomic_write_with

    cols = min(len(files), 2)
    rows = math.ceil(len(files) / cols)
    fig = Figure(figsize=(6.5 * cols, 4.5 * rows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, file in zip(axes, files, strict=False):
        for i, model in enumerate(models):
            points = [(h, results.model(file, INPUT, h, model)) for h in HORIZONS]
            points = [(h, s) for h, s in points if s is not None]
            if points:
                ax.errorbar(
                    [h for h, _ in points],
                    [s.mse for _, s in points],
                    yerr=[0 if math.isnan(s.mse_std) else s.mse_std for _, s in points],
                    marker="o",
                    capsize=3,
                    color=f"C{i}",
                    label=f"seqbench {model}",
                )
            if file == LONG_INPUT_FILE:
                for length, style in zip(LONG_INPUTS, ("--", ":"), strict=True):
                    points = [(h, results.model(file, length, h, model)) for h in HORIZONS]
                    points = [(h, s) for h, s in points if s is not None]
                    if points:
                        ax.plot(
                            [h for h, _ in points],
                            [s.mse for _, s in points],
                            marker="s",
                            linestyle=style,
                            color=f"C{i}",
                            label=f"seqbench {model}, input {length}",
                        )
        for name, color, marker in (("seasonal", "0.6", "^"), ("linear", "0.3", "v")):
            points = [(h, results.baseline(file, INPUT, h, name)) for h in HORIZONS]
            points = [(h, b) for h, b in points if b is not None]
            if points:
                ax.plot(
                    [h for h, _ in points],
                    [b[0] for _, b in points],
                    color=color,
                    linestyle="--",
                    marker=marker,
                    label=f"{name} (measured)",
                )
        quoted = quoted_rows(file, QUOTED_INPUT_96)
        best = [
            (h, min((q for q in quoted if h in q.scores), key=lambda q: q.scores[h][0])) for h in HORIZONS
        ]
        ax.plot(
            [h for h, _ in best],
            [q.scores[h][0] for h, q in best],
            color="black",
            marker="x",
            linestyle=":",
            label="best quoted, input 96",
        )
        for h, q in best:
            ax.annotate(
                q.name,
                (h, q.scores[h][0]),
                textcoords="offset points",
                xytext=(0, -12),
                ha="center",
                fontsize="x-small",
            )
        ax.set_xscale("log")
        ax.set_xticks(list(HORIZONS), [str(h) for h in HORIZONS])
        ax.minorticks_off()
        ax.set_xlabel("horizon")
        ax.set_ylabel("test MSE (scaled)")
        ax.set_title(f"{file}: input 96 unless labelled")
        ax.grid(True, alpha=0.3)
    for ax in axes[len(files) :]:
        ax.set_visible(False)
    legend = {}  # one legend below the panels: each label once
    for ax in axes[: len(files)]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    labels = sorted(legend, key=lambda label: (not label.startswith("seqbench"), "input" in label))
    fig.tight_layout()
    fig.legend([legend[k] for k in labels], labels, loc="upper center", bbox_to_anchor=(0.5, 0), ncol=3)
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))


def load_store(path: Path, fresh: bool) -> dict[str, dict[str, Any]]:
    """The cells of an earlier run (the .json beside the page), by key; none with --fresh."""
    if fresh or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        if data.get("version") != STORE_VERSION:
            raise ValueError(f"version {data.get('version')}, expected {STORE_VERSION}")
        return dict(data["cells"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        usage_error(f"cannot read the earlier cells in {path} ({exc}): move it away or pass --fresh")


def write_all(store: dict, cells: list[Cell], meta: dict, args: argparse.Namespace, picture: bool) -> None:
    """The .json (every cell known, asked for or not), the page and (if `picture`) the picture, from the
    cells asked for."""
    from seqbench.io import atomic_write_json, atomic_write_text

    asked = {c.key for c in cells}
    results = Results([r for key, r in store.items() if key in asked])
    meta = {**meta, "done": sum(1 for c in cells if store.get(c.key, {}).get("status") == "completed")}
    meta["failed"] = {
        c.key: f"{store[c.key]['status']}: {store[c.key]['message']}"
        for c in cells
        if c.key in store and store[c.key].get("status") != "completed"
    }
    meta["shown"]["load average (1 min) at start / end"] = (
        f"{meta['load_start']:.1f} / {os.getloadavg()[0]:.1f}"
    )
    dates = sorted(r["measured"] for r in results.records)
    machines = sorted(
        {f"{r['cpu']}, {r['threads']} thread(s), {r.get('jobs', 1)} run(s) at once" for r in results.records}
    )
    if dates:
        meta["shown"]["cells measured"] = (
            f"{dates[0][:16].replace('T', ' ')} to {dates[-1][:16].replace('T', ' ')} on "
            + "; ".join(machines)
        )
    targets = [
        {"target": t, "reached": r, "passed": ok}
        for t, r, ok in verdicts(results, meta["files"], args.models)
    ]
    atomic_write_json(
        args.output.with_suffix(".json"),
        {"version": STORE_VERSION, "quick": args.quick, "meta": meta, "targets": targets, "cells": store},
    )
    atomic_write_text(args.output, markdown(results, meta, args))
    if picture:
        plot(results, meta["files"], args.models, args.output.with_suffix(".png"))


# ---- the run ---------------------------------------------------------------------------------------


def usage_error(message: str) -> NoReturn:
    """Bad input: one line on stderr, exit 2 (as the seqbench CLI does)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def data_places(data_dir: Path | None) -> list[Path]:
    """Where the ETT files are looked for, in order."""
    shared = find_shared(Path("data") / "ETTh1.csv").parent
    return [*([data_dir] if data_dir else []), shared, REPO / "data"]


def find_files(names: list[str], places: list[Path]) -> dict[str, Path | None]:
    """Each file's first NAME.csv in `places`, or None."""
    return {
        name: next((p / f"{name}.csv" for p in places if (p / f"{name}.csv").is_file()), None)
        for name in names
    }


def find_data(name: str = "ETTh1") -> Path:
    """NAME.csv in the shared/ folder (see common.find_shared), for the tests."""
    return find_shared(Path("data") / f"{name}.csv")


def comma_list(kind: type, choices: tuple) -> Any:
    def parse(text: str) -> list:
        values = [kind(v) for v in text.split(",") if v.strip()]
        bad = [v for v in values if v not in choices]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(map(str, choices))}, got {text!r}")
        return list(dict.fromkeys(values))

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=comma_list(str, FILES), default=list(FILES), help="e.g. ETTh1,ETTm1")
    parser.add_argument(
        "--horizons", type=comma_list(int, HORIZONS), default=list(HORIZONS), help="e.g. 96,336"
    )
    parser.add_argument(
        "--models", type=comma_list(str, MODELS), default=list(MODELS), help="e.g. mingru,gru"
    )
    parser.add_argument(
        "--inputs",
        type=comma_list(int, INPUTS),
        default=list(INPUTS),
        help=f"input lengths (default 96,336,720; other than 96 on {LONG_INPUT_FILE} only)",
    )
    parser.add_argument(
        "--long-horizons",
        type=comma_list(int, HORIZONS),
        default=[96],
        help="horizons of the longer inputs (default 96; 96,192,336,720 for all four)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds per cell: 0 .. N-1 (default 3)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a spec override for every spec (path, horizon, seq_len and seed are the cell's)",
    )
    parser.add_argument("--data-dir", type=Path, help="look for NAME.csv here first (e.g. data/)")
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads (default 2)")
    parser.add_argument(
        "--jobs", type=int, default=1, help="cells run at once, each in its own process (default 1)"
    )
    parser.add_argument("--fresh", action="store_true", help="run every cell again (ignore the .json)")
    parser.add_argument(
        "--render",
        action="store_true",
        help="run nothing: write the page and picture from the cells the .json has (others: not measured)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run (< 1 min): one run of the first file at hand and the first model, 96 -> 96, "
        "one epoch of a tiny model",
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help=".md; .json and .png go beside it"
    )
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.threads < 1 or args.jobs < 1:
        parser.error("--seeds, --threads and --jobs must be at least 1")
    if args.output.suffix != ".md":
        parser.error(f"--output must name a .md file, got {args.output}")
    return args


def describe(
    args: argparse.Namespace,
    found: dict[str, Path | None],
    places: list[Path],
    overrides: list[str],
    reused: int,
    total: int,
) -> dict[str, Any]:
    """What the page says of this run: the machine, the data found and missed, the specs and the cells."""
    import numpy as np

    missing = [name for name, path in found.items() if path is None]
    data = "; ".join(f"{name}: {found[name]}" for name in args.files)
    if missing:
        data += f"; missing, skipped: {', '.join(missing)} (looked in {', '.join(map(str, places))})"
    specs = ", ".join(SPEC.format(model=m) for m in args.models) + (
        f", with {' '.join(overrides)}" if overrides else ""
    )
    specs += f"; {args.seeds} seed(s) per cell; input 96 at horizons {', '.join(map(str, args.horizons))}"
    for length in args.inputs:
        if length != INPUT:
            specs += (
                f"; input {length} on {LONG_INPUT_FILE} at horizons {', '.join(map(str, args.long_horizons))}"
            )
    return {
        "files": args.files,
        "total": total,
        "load_start": os.getloadavg()[0],
        "shown": {
            "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "machine": f"{cpu_model()} ({os.cpu_count()} logical cores), {args.threads} BLAS thread(s) "
            f"({', '.join(THREAD_VARIABLES)}={args.threads}); python {platform.python_version()}, "
            f"numpy {np.__version__}",
            "data": data,
            "specs": specs,
            "runs": f"{total} asked for, {reused} reused from {args.output.with_suffix('.json').name} "
            f"(same config id), {total - reused} to run here",
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)  # before NumPy is imported (seqbench imports it)
    places = data_places(args.data_dir)
    found = find_files(args.files, places)
    files = [name for name, path in found.items() if path is not None]
    if not files:
        usage_error(
            f"no ETT file found: looked for {', '.join(args.files)} (.csv) in {', '.join(map(str, places))}; "
            "`seqbench download ETTh1` and --data-dir data, or set SEQBENCH_SHARED"
        )
    overrides = list(args.overrides)
    if args.quick:  # one run: the first file at hand, 96 -> 96, the first model, one seed, one tiny epoch
        files, args.models = files[:1], args.models[:1]
        args.horizons, args.inputs, args.seeds, args.fresh = [96], [INPUT], 1, True
        overrides += QUICK
    args.files = files
    cells = plan(files, args.inputs, args.horizons, args.long_horizons, args.models, args.seeds)

    from seqbench.errors import SeqbenchError

    try:
        specs = {c.key: cell_spec(c, found[c.file], overrides) for c in cells}
    except SeqbenchError as exc:
        usage_error(str(exc))
    json_path = args.output.with_suffix(".json")
    store = load_store(json_path, args.fresh)
    todo = [
        c
        for c in cells
        if store.get(c.key, {}).get("status") != "completed"
        or store[c.key].get("config_id") != spec_id(specs[c.key])
    ]
    if args.render:
        todo = []
    meta = describe(args, found, places, overrides, reused=len(cells) - len(todo), total=len(cells))
    log(meta["shown"]["runs"])
    write_all(store, cells, meta, args, picture=False)
    interrupted, pictured = False, time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ett-bench-") as results:
        for i, (cell, record) in enumerate(run_cells(todo, specs, Path(results), args), 1):
            store[cell.key] = {**record, "jobs": args.jobs} if "seconds" in record else record
            model = record.get("scaled", {}).get("model")
            scores = "" if model is None else fmt((model["mse"], model["mae"]))
            log(f"[{i}/{len(todo)}] {cell.key}: {record['status']} {scores} {record.get('seconds', 0):.0f} s")
            picture = time.monotonic() - pictured > PICTURE_EVERY
            write_all(store, cells, meta, args, picture)
            pictured = time.monotonic() if picture else pictured
            if record["status"] == "interrupted":
                interrupted = True
                break
    meta["shown"]["runs"] += "" if not interrupted else " (interrupted)"
    write_all(store, cells, meta, args, picture=True)
    print(args.output.read_text())
    log(f"wrote {args.output} (+ .json, .png)")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
