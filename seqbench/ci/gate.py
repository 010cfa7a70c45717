"""The regression gate: `seqbench compare RUN --against REF --fail-if-worse 2%`.

A run fails the gate only when both hold:
- its headline score (test RMSE; an LM's bits per byte) is worse than the reference's by more
  than the margin, relative to the reference: (score - ref) / ref > margin;
- the Diebold-Mariano test of its test losses against the reference's, paired window by window
  (block by block), says the difference is significant: p < level, the run's loss the larger.
So a run that is a little worse by chance (a few windows) passes, and so does a significant
difference too small to matter.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from seqbench.artifacts.runs import find_runs
from seqbench.artifacts.significance import DMResult, diebold_mariano
from seqbench.ci.outputs import Verdict
from seqbench.ci.reference import (
    Reference,
    check_same_data,
    paired,
    read_reference,
    reference_from_run,
    test_losses,
)
from seqbench.errors import SeqbenchError, shown
from seqbench.results.compare import SCORE_NAMES, compare_rows, run_label, task_of

DEFAULT_LEVEL = 0.05


def parse_margin(text: str) -> float:
    """'2%' or '0.02' -> 0.02: how much worse than the reference a run may be, relative to it."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise SeqbenchError(
            f"--fail-if-worse '{shown(text)}' is not a margin >= 0; e.g. --fail-if-worse 2% (or 0.02)"
        )
    return value


def load_reference(against: str, results_dir: Path) -> Reference:
    """--against: a reference file (.json), or a run folder (or a name or glob finding one run)."""
    path = Path(against)
    if path.suffix == ".json" or path.is_file():
        return read_reference(path)
    found = find_runs([against], results_dir)
    if len(found) != 1:
        raise SeqbenchError(
            f"--against needs one run or a reference file, and '{shown(against)}' matches {len(found)} runs"
        )
    return reference_from_run(found[0])


def dm_against(run: dict[str, Any], reference: Reference) -> DMResult:
    """The run's test losses against the reference's, on the windows (blocks) both have."""
    check_same_data(run, reference)
    run_losses, _ = test_losses(Path(run["run_dir"]), task_of(run))
    mine, theirs = paired(run_losses, reference)
    if len(mine) < 2:  # e.g. a reference whose rows were edited
        raise SeqbenchError(
            f"{run_label(run)} and the reference {shown(reference.source, 200)} share {len(mine)} "
            "test windows, too few for the Diebold-Mariano test; gate a run on the reference's data and split"
        )
    return diebold_mariano(mine, theirs, reference.h)


def gate(
    run: dict[str, Any], reference: Reference, margin: float, level: float, dm: DMResult | None = None
) -> Verdict:
    """One run against the reference (see the module doc); `dm`: `dm_against(run, reference)` when
    the caller has it already."""
    check_same_data(run, reference)
    metric, ref_value = reference.headline
    name = f"{metric} at most {margin:.1%} worse than the reference"
    (row,) = compare_rows([run])
    value = row[metric]
    if value is None or ref_value is None:
        which = "the run" if value is None else "the reference"
        message = f"{which} has no test {metric} (status {shown(run.get('status'))})"
        return Verdict("gate", run_label(run), name, False, message)
    dm = dm or dm_against(run, reference)
    worse = (value - ref_value) / abs(ref_value) if ref_value else math.inf * (value > ref_value)
    significant = dm.p_value < level and dm.mean_loss_diff > 0
    regression = worse > margin and significant
    unit = "blocks of held-out bytes" if reference.task == "lm" else "test windows"
    change = f"{worse:.1%} worse" if worse > 0 else f"{-worse:.1%} better" if worse < 0 else "equal"
    verdict = (
        "a regression" if regression
        else "within the margin" if worse <= margin
        else "not significant: within noise"
    )  # fmt: skip
    message = (
        f"{SCORE_NAMES.get(metric, metric)} {value:.6g} vs {ref_value:.6g} in {reference.label}: {change} "
        f"(margin {margin:.1%}); Diebold-Mariano p {dm.p_value:.3g} over {dm.n} {unit} "
        f"({'<' if dm.p_value < level else '>='} {level:g}); {verdict}"
    )
    return Verdict("gate", run_label(run), name, not regression, message)


def check_level(level: float) -> None:
    if not 0 < level < 1:
        raise SeqbenchError(f"--level {level:g} must be between 0 and 1, e.g. 0.05")
