"""What `train` and `compare` do with expectations and gates: judge, print one line each, write
the JUnit file and the step summary, and fail (exit 1) when a check failed."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqbench.ci.expect import Expectation, judge, parse_expectations
from seqbench.ci.gate import check_level, dm_against, gate, load_reference, parse_margin
from seqbench.ci.outputs import (
    STEP_SUMMARY_ENV,
    Verdict,
    append_step_summary,
    check_junit_path,
    failed,
    write_junit,
)
from seqbench.ci.reference import Reference
from seqbench.errors import RunFailed
from seqbench.results.compare import TASK_COLUMNS, by_task, compare_rows, render, run_label, task_of


def train_expectations(texts: Sequence[Any], task: str | None, junit: Path | None) -> list[Expectation]:
    """The spec's and --expect's expectations, parsed and their names checked before the run (when
    the task is known: a resumed run's are checked after it)."""
    check_junit_path(junit)
    return parse_expectations(texts, task) if task else []


def conclude_train(runs: Sequence[dict[str, Any]], texts: Sequence[Any], junit: Path | None) -> None:
    """After `train`: each run completed, each expectation held (on the mean over seeds)."""
    if not runs or not (texts or junit or os.environ.get(STEP_SUMMARY_ENV)):
        return
    task = task_of(runs[0])
    expectations = parse_expectations(texts, task)
    verdicts = [_completed(run) for run in runs] + judge(expectations, runs, task)
    title = f"seqbench train: {run_label(runs[0]).split('/')[0]}"
    conclude(verdicts, junit, "seqbench train", title, render(compare_rows(runs), "md", TASK_COLUMNS[task]))


def uses_reference(against: str | None, margin: str | None) -> bool:
    """Whether `compare --against` reads a reference (a .json file, or any REF with --fail-if-worse)
    rather than pairing two run folders' forecasts row by row."""
    return against is not None and (
        margin is not None or Path(against).suffix == ".json" or Path(against).is_file()
    )


@dataclass
class CompareGate:
    """`compare --against REF [--fail-if-worse M]`, judged before the table is printed."""

    reference: Reference
    verdicts: list[Verdict]
    runs: list[dict[str, Any]]
    junit: Path | None

    def conclude(self) -> None:
        """After the table: the gates' lines, JUnit and step summary, exit 1 on a regression."""
        if self.verdicts or self.junit or os.environ.get(STEP_SUMMARY_ENV):
            title = f"seqbench compare against {self.reference.label}"
            tables = (
                render(compare_rows(group), "md", TASK_COLUMNS[task])
                for task, group in by_task(self.runs).items()
            )
            conclude(self.verdicts, self.junit, "seqbench compare", title, "".join(tables))


def compare_gate(
    runs: list[dict[str, Any]],
    against: str,
    margin: str | None,
    level: float,
    junit: Path | None,
    results_dir: Path,
) -> CompareGate:
    """Each run's `dm_against` (its DM p-value against the reference: compare's dm_p column) and,
    with a margin, its gate."""
    check_level(level)
    check_junit_path(junit)
    bound = parse_margin(margin) if margin is not None else None
    reference = load_reference(against, results_dir)
    verdicts = []
    for run in runs:
        dm = dm_against(run, reference) if run.get("status") == "completed" else None
        if dm is not None and Path(run["run_dir"]).resolve() != Path(reference.source).resolve():
            run["dm_against"] = dm.p_value
        if bound is not None:
            verdicts.append(gate(run, reference, bound, level, dm))
    return CompareGate(reference, verdicts, runs, junit)


def conclude(verdicts: Sequence[Verdict], junit: Path | None, suite: str, title: str, table_md: str) -> None:
    """Print one line per verdict (stderr), write the JUnit file and the step summary; RunFailed
    (exit 1) when one failed."""
    for verdict in verdicts:
        print(verdict.line(), file=sys.stderr)
    if junit is not None:
        write_junit(junit, verdicts, suite)
    append_step_summary(title, table_md, verdicts)
    bad = failed(verdicts)
    if bad:
        raise RunFailed(f"{len(bad)} of {len(verdicts)} checks failed: {'; '.join(v.name for v in bad)}")


def _completed(run: dict[str, Any]) -> Verdict:
    status = run.get("status")
    epochs = run.get("epochs_run")
    return Verdict(
        "run", run_label(run), "completed", status == "completed", f"status {status} after {epochs} epochs"
    )
