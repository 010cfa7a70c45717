"""What `seqbench compare` shows: the runs found, checked, grouped or not, sorted, and printed.

One table per task (forecast, lm) on the terminal, fitted to its width with a `note:` line on
stderr for the columns it hid; md, csv or json on stdout for scripts. Data-pinning warnings, the
`--against` DM test and the `--fail-if-worse` gate go to stderr. The rows and tables themselves are
`seqbench.results.compare` (one row per run) and `seqbench.results.groups` (one row per config).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from seqbench.errors import SeqbenchError
from seqbench.io import dumps_strict
from seqbench.results.compare import (
    FORMATS,
    LM_OPTIONAL_COLUMNS,
    OPTIONAL_COLUMNS,
    TASK_COLUMNS,
    attach_dm_against,
    by_task,
    check_pinned,
    compare_rows,
    hidden_columns,
    hidden_note,
    load_val_curves,
    render,
    rich_table,
    run_caption,
    sort_rows,
)
from seqbench.results.groups import (
    LAYOUTS,
    group_rows,
    has_repeats,
    hidden_group_columns,
    render_groups,
    rich_group_table,
    sort_groups,
)


def show_comparison(
    paths: list[str] | None,
    results: Path,
    out: Console,
    fmt: str = "table",
    sort: str | None = None,
    group: bool | None = None,
    against: str | None = None,
    strict: bool = False,
    margin: str | None = None,
    level: float = 0.05,
    junit: Path | None = None,
    plot: Path | None = None,
) -> None:
    """`compare`: find and load the runs under `paths`, check the options against them, print each
    task's runs in `fmt` (the terminal table on `out`), then the plot (`plot`) and the regression
    gate (`--against` with `margin`, the `--fail-if-worse` text, at significance `level`).

    Raises SeqbenchError (exit 2) for a bad option or mismatched runs, RunFailed (exit 1) when the
    gate finds a regression.
    """
    from seqbench.artifacts.runs import find_runs, load_runs
    from seqbench.ci.checks import compare_gate, uses_reference

    if fmt not in FORMATS:
        raise SeqbenchError(f"unknown --format '{fmt}'; choose table, md, csv or json")
    loaded = load_runs(find_runs(list(paths or []), results))
    tasks = by_task(loaded)
    if len(tasks) > 1 and fmt == "csv":
        raise SeqbenchError(
            f"these runs are of {len(tasks)} tasks ({', '.join(tasks)}), whose columns differ; "
            "give --format csv the runs of one task (e.g. seqbench compare 'shakespeare-*'), "
            "or use --format json"
        )
    check_sort_key(sort, tasks)
    if margin is not None and against is None:
        raise SeqbenchError("--fail-if-worse needs --against REF: a reference file or a run folder")
    gate = (
        compare_gate(loaded, against, margin, level, junit, results)
        if uses_reference(against, margin)
        else None
    )
    records: list[Any] = []
    for task, task_runs in tasks.items():
        pin_and_test(task_runs, against if task == "forecast" and gate is None else None, strict, results)
        key = sort if sort and sort.lstrip("-+") in sortable(task) else None
        if len(tasks) > 1 and fmt in ("table", "md"):
            out.print(f"{task} runs" if fmt == "table" else f"\n### {task} runs\n")
        text = task_output(task, task_runs, out, group, key, fmt)
        if fmt == "json":
            records += json.loads(text)
        elif text:
            sys.stdout.write(text)
    if fmt == "json":
        print(dumps_strict(records, indent=2))
    if plot:
        from seqbench.artifacts.plots import plot_val_curves

        plot_val_curves(load_val_curves(loaded), plot)
        print(f"wrote {plot}", file=sys.stderr)
    if gate is not None:
        print(
            f"dm_p: Diebold-Mariano p-value against {gate.reference.label} ({gate.reference.source})",
            file=sys.stderr,
        )
        gate.conclude()


def task_output(
    task: str, runs: list[dict[str, Any]], out: Console, group: bool | None, sort: str | None, fmt: str
) -> str:
    """One task's runs: a table printed on `out` (returns ''), else the text in `fmt`; one row per
    config when asked (`group`), or by default when some config has several runs."""
    if group is True or (group is None and has_repeats(runs)):
        rows = group_rows(runs)
        if sort:
            rows = sort_groups(rows, sort)
        if fmt != "table":
            return render_groups(rows, fmt)
        print_groups(rows, out)
        return ""
    rows = compare_rows(runs)
    if sort:
        rows = sort_rows(rows, sort, TASK_COLUMNS[task])
    if fmt != "table":
        return render(rows, fmt, TASK_COLUMNS[task])
    table = rich_table(rows, out.width, TASK_COLUMNS[task], optional_columns(task))
    table.caption = run_caption(rows) if task == "forecast" else None
    out.print(table)
    note_hidden(hidden_columns(rows, out.width, TASK_COLUMNS[task], optional_columns(task)), out.width)
    return ""


def print_groups(rows: list[dict[str, Any]], out: Console) -> None:
    """Group rows (of one task) as a table fitted to `out`, and a note of the columns it hid."""
    out.print(rich_group_table(rows, out.width))
    note_hidden(hidden_group_columns(rows, out.width), out.width)


def note_hidden(hidden: list[str], width: int | None) -> None:
    """A `note:` line on stderr when a table `width` characters wide left columns out."""
    note = hidden_note(hidden, width)
    if note:
        print(f"note: {note}", file=sys.stderr)


def pin_and_test(runs: list[dict[str, Any]], against: str | None, strict: bool, results: Path) -> None:
    """The data-pinning warnings (or, `strict`, the refusal) and the `--against` DM test."""
    for line in check_pinned(runs, strict):
        print(f"warning: {line}", file=sys.stderr)
    if against:
        reference = attach_dm_against(runs, against, results)
        print(f"dm_p: Diebold-Mariano p-value against {reference}", file=sys.stderr)


def sortable(task: str) -> set[str]:
    """The columns `--sort` takes for one task's runs, grouped or not."""
    return set(TASK_COLUMNS[task]) | set(LAYOUTS[task].data_columns)


def check_sort_key(sort: str | None, tasks: dict[str, Any]) -> None:
    """A `--sort` key that no task of these runs has is an error (sort_rows words it)."""
    if sort and not any(sort.lstrip("-+") in sortable(task) for task in tasks):
        sort_rows([], sort, TASK_COLUMNS[next(iter(tasks))])


def optional_columns(task: str) -> list[str]:
    """The columns a narrow terminal drops first, in order, for one task's runs."""
    return LM_OPTIONAL_COLUMNS if task == "lm" else OPTIONAL_COLUMNS
