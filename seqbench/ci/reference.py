"""A reference: what a regression gate needs of a run, in a small, diff-able JSON file that can
live in the user's repository (`seqbench reference RUN -o ref.json`).

It holds the run's metrics (identity, data fingerprint, split, config and scores: enough for a
compare row) and its test losses, one line each: a forecast's squared error per test window
(mean over the window's steps and series, keyed by the window's first target date: the test
forecasts as the Diebold-Mariano test reads them), or an LM's mean nats per byte per block of
its held-out part (heldout_losses.csv, keyed by the block's first byte).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqbench.artifacts.runs import check_output, load_run
from seqbench.errors import SeqbenchError, brief, shown
from seqbench.io import atomic_write_text, dumps_strict, loads_json, read_regular
from seqbench.results.compare import HEADLINE, compare_rows, data_mismatches, run_label, task_of

FORMAT = 1  # `seqbench_reference`: the file's format version
MAX_BYTES = 64 * 2**20  # a reference file is read whole: refuse anything larger
MAX_LOSSES_BYTES = 16 * 2**20  # heldout_losses.csv: at most 4096 blocks, ~30 bytes each
LM_LOSSES = "heldout_losses.csv"
# the parts of metrics.json a reference keeps
KEPT = (
    "run_id", "name", "status", "task", "model", "backend", "seed", "config_id", "params", "epochs_run",
    "config", "test", "val", "baselines", "scaled", "headline", "data", "split_id",
)  # fmt: skip
LOSSES_WHAT = {
    "forecast": "squared error per test window (mean over its steps and series), by first target date",
    "lm": "mean nats per byte per block of the held-out part, by the block's first byte",
}


@dataclass
class Reference:
    """A run's scores and test losses, from its folder or from a reference file."""

    source: str  # where it was read from, for messages
    metrics: dict[str, Any]  # the KEPT parts of the run's metrics.json
    h: int  # forecast horizon of the losses (1 for an LM's blocks): the DM test's lag
    losses: dict[str, float]  # window (or block) -> loss, in test order

    @property
    def task(self) -> str:
        return task_of(self.metrics)

    @property
    def label(self) -> str:
        return run_label(self.metrics)

    @property
    def headline(self) -> tuple[str, float | None]:
        """(the task's headline column, e.g. rmse or bits_per_byte; its value)."""
        metric = HEADLINE[self.task]
        (row,) = compare_rows([self.metrics])
        return metric, row[metric]


def reference_from_run(run_dir: Path) -> Reference:
    """A run folder's reference: its metrics.json and its test losses."""
    metrics = load_run(run_dir)
    if metrics is None:
        raise SeqbenchError(f"{shown(run_dir, 200)} has no readable metrics.json; is it a run folder?")
    if metrics.get("status") != "completed":
        raise SeqbenchError(
            f"{shown(run_dir, 200)} has status {shown(metrics.get('status'))}: "
            "only a completed run can be a reference"
        )
    losses, h = test_losses(run_dir, task_of(metrics))
    made = Reference(str(run_dir), {key: metrics[key] for key in KEPT if key in metrics}, h, losses)
    metric, value = made.headline
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise SeqbenchError(
            f"{shown(run_dir, 200)} has no test {metric} in its metrics.json (found {brief(value)}); "
            "a completed run has one, and only it can be a reference"
        )
    return made


def test_losses(run_dir: Path, task: str) -> tuple[dict[str, float], int]:
    """A run's test losses by window (forecast: from predictions.csv) or block (LM:
    heldout_losses.csv), and the horizon h."""
    if task == "lm":
        path = Path(run_dir) / LM_LOSSES
        try:
            data = read_regular(path, MAX_LOSSES_BYTES, f"a {LM_LOSSES}")
            frame = pd.read_csv(io.BytesIO(data), dtype={"start": str})
            return dict(zip(frame["start"], frame["nats"].astype(float), strict=True)), 1
        except (OSError, ValueError, KeyError) as exc:
            raise SeqbenchError(
                f"cannot read {shown(path, 200)} ({shown(str(exc).strip())}); a run from before it was "
                "written can be completed with seqbench train --resume RUN"
            ) from None
    from seqbench.artifacts.significance import read_predictions

    frame = read_predictions(run_dir)
    squared = (frame["prediction"] - frame["target"]) ** 2
    per_window = squared.groupby(frame["window"], sort=False).mean()
    h = int(frame["step"].max()) if len(frame) else 1
    return {str(key): float(value) for key, value in per_window.items()}, h


def reference_text(reference: Reference) -> str:
    """The reference file: the metrics as indented JSON, then the losses one `[key, loss]` per line."""
    head = dumps_strict(
        {"seqbench_reference": FORMAT, "made_from": reference.label, "metrics": reference.metrics}, indent=2
    )
    rows = ",\n".join(f"      {json.dumps([key, value])}" for key, value in reference.losses.items())
    what = json.dumps(LOSSES_WHAT[reference.task])
    losses = (
        f'  "losses": {{\n    "what": {what},\n    "h": {reference.h},\n    "rows": [\n{rows}\n    ]\n  }}'
    )
    return f"{head.removesuffix(chr(10) + '}')},\n{losses}\n}}\n"


def write_reference(reference: Reference, path: Path) -> None:
    atomic_write_text(path, reference_text(reference))


def reference_from_flags(run: Path, output: Path, force: bool = False) -> str:
    """`seqbench reference`: the completed run folder `run`'s reference file, written to `output` (which
    may exist only with `force`); returns the line that tells the user what was written."""
    check_output(output, force, "reference.json")
    made = reference_from_run(run)
    write_reference(made, output)
    score = f"{made.headline[0]} {made.headline[1]:.6g}"
    return f"wrote {output}: {made.label}, {score}, {len(made.losses)} test losses"


def read_reference(path: Path) -> Reference:
    """A reference file, checked: a regular file of at most MAX_BYTES, our format, finite losses."""
    where = shown(path, 200)
    try:
        if not path.is_file():
            raise SeqbenchError(
                f"{where} is not a reference file (make one with: seqbench reference RUN -o {where})"
            )
        if path.stat().st_size > MAX_BYTES:
            raise SeqbenchError(
                f"{where} is larger than {MAX_BYTES // 2**20} MB; it is not a seqbench reference"
            )
        data = loads_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SeqbenchError(f"cannot read the reference {where}: {shown(exc)}") from None
    try:
        return _parse(data, str(path))
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # Overflow: float(10**400)
        raise SeqbenchError(f"{where} is not a seqbench reference file ({shown(exc)})") from None


def _parse(data: Any, source: str) -> Reference:
    if not isinstance(data, dict) or data.get("seqbench_reference") != FORMAT:
        raise ValueError(f"no 'seqbench_reference': {FORMAT}")
    metrics, losses = data["metrics"], data["losses"]
    if not isinstance(metrics, dict) or not isinstance(losses, dict):
        raise TypeError("metrics and losses must be objects")
    h = losses["h"]
    if isinstance(h, bool) or not isinstance(h, int) or h < 1:
        raise ValueError(f"losses.h must be a positive integer, got {h!r}")
    rows = {}
    for row in losses["rows"]:
        key, value = row
        if not isinstance(key, str | int) or isinstance(value, bool) or not math.isfinite(float(value)):
            raise ValueError(f"a loss row must be [key, finite number], got {row!r}"[:120])
        rows[str(key)] = float(value)
    return Reference(source, metrics, h, rows)


def check_same_data(run: dict[str, Any], reference: Reference) -> None:
    """A SeqbenchError (exit 2) when the run and the reference are on other data or splits, or tasks."""
    if task_of(run) != reference.task:
        raise SeqbenchError(
            f"{run_label(run)} is a {task_of(run)} run and the reference {shown(reference.source, 200)} "
            f"a {reference.task} run; gate a run against a reference of its own task"
        )
    as_run = {**reference.metrics, "name": f"reference {reference.source}", "run_id": reference.label}
    mismatches = data_mismatches([run, as_run])
    if mismatches:
        raise SeqbenchError(f"refusing to compare against a reference on {mismatches[0]}")


def paired(run_losses: dict[str, float], reference: Reference) -> tuple[np.ndarray, np.ndarray]:
    """The run's and the reference's losses on the windows (blocks) both have, in the run's order."""
    keys = [key for key in run_losses if key in reference.losses]
    return np.array([run_losses[k] for k in keys]), np.array([reference.losses[k] for k in keys])
