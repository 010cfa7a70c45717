"""The `seqbench` command line: one small function per command, no logic of its own.

User errors are `SeqbenchError`s, printed as one line on stderr with their exit
code (2 for bad input, 1 for a failed run); `--debug` shows the traceback.
"""

from __future__ import annotations

import functools
import json
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

import seqbench
from seqbench.cli_syntax import Command, Group
from seqbench.errors import SeqbenchError
from seqbench.io import dumps_strict

app = typer.Typer(
    help="Honest, reproducible experiments with small sequence models (MinGRU, GRU, Mamba) on time series.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
    cls=Group,
)
# a pipe or CI log gets a wide table rather than one squeezed into 80 columns
stdout = Console(width=None if sys.stdout.isatty() else 200)
stderr = Console(stderr=True)
state = {"debug": False}

F = TypeVar("F", bound=Callable[..., Any])

ResultsDir = Annotated[Path, typer.Option("--results", help="Folder of run folders.")]
DataDir = Annotated[Path, typer.Option("--data-dir", help="Folder of cached downloads.")]
Force = Annotated[bool, typer.Option("--force", help="Replace the -o file if it exists.")]
Group = Annotated[
    bool | None,
    typer.Option(
        "--group/--no-group",
        help="One row per config, mean ± std over its seeds (default: when a config has several runs).",
    ),
]
Junit = Annotated[
    Path | None,
    typer.Option("--junit", help="Write the checks as JUnit XML (one test case each) to this file."),
]


def handles_errors(command: F) -> F:
    """Run a command with its failures said in one or two lines, and its exit code.

    SeqbenchError: its message and exit code (2 bad input, 1 failed run, 130 interrupted);
    Ctrl-C outside a run: exit 130; any other failed read or write (OSError), or running out of
    memory where no layer below said why: exit 1. Warnings are one `warning: ...` line each.
    `--debug` lets the exception and its traceback through.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                if not state["debug"]:
                    warnings.simplefilter("ignore", DeprecationWarning)
                    warnings.simplefilter("ignore", FutureWarning)
                return command(*args, **kwargs)
        except SeqbenchError as exc:
            if state["debug"]:  # the traceback, then the same exit code as without --debug
                traceback.print_exc()
            print(f"{exc.label}: {exc}", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise typer.Exit(130) from None
        except MemoryError:  # where no layer below named the setting to lower (a run's stages do)
            if state["debug"]:
                raise
            print("error: ran out of memory; free memory or give the command less to hold", file=sys.stderr)
            raise typer.Exit(1) from None
        except OSError as exc:  # a failed read or write that no layer below turned into a message
            if state["debug"]:
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _version(value: bool) -> None:
    if value:
        print(f"seqbench {seqbench.__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Run `seqbench COMMAND --help` for each command's options and an example."""
    state["debug"] = debug


@app.command(cls=Command)
@handles_errors
def train(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Experiment spec (YAML).")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Override a key: --set train.lr=3e-3."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Run-name prefix (default: the spec's).")] = None,
    backend: Annotated[str | None, typer.Option(help="numpy or torch.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (one run, instead of any seeds).")] = None,
    seeds: Annotated[
        int | None, typer.Option("--seeds", min=1, help="Run seeds 0..N-1, one run each, then mean ± std.")
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", help="Continue an interrupted run from its folder (instead of --config)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress; print only the result.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print metrics.json to stdout (a list with several seeds).")
    ] = False,
    expect: Annotated[
        list[str] | None,
        typer.Option(
            "--expect",
            metavar="CHECK",
            help="Judge the result: --expect 'skill > 0' (exit 1 when one fails).",
        ),
    ] = None,
    junit: Junit = None,
    results: ResultsDir = Path("results"),
    data_dir: DataDir = Path("data"),
) -> None:
    """Train one run and write its run folder; with several seeds, one run per seed.

    `--seeds N` (or `seeds: [0, 1, 2]` in the spec) runs the spec once per seed, one after another,
    each in its own run folder, then prints mean ± std over the seeds. Ctrl-C stops a run after
    the current batch (status interrupted, exit 130); `--resume RUN_DIR` continues it to the same
    result as an uninterrupted run.

    `--expect 'METRIC OP NUMBER'` (and a spec's `expect:` list) is judged after the run, on the
    mean over seeds: a compare column (skill, rmse, bits_per_byte, ...) or a metrics.json path
    (scaled.model.mse). A failed one is exit 1; `--junit FILE` writes each as a JUnit test case.

    Example: seqbench train --config experiments/quickstart.yaml --set train.epochs=5
    """
    from seqbench.ci.checks import conclude_train, train_expectations
    from seqbench.spec import load_spec

    overrides = list(set_ or [])
    flags = (("name", name), ("model.backend", backend), ("seed", seed), ("seeds", seeds))
    overrides += [f"{k}={v}" for k, v in flags if v is not None]
    if seed is not None and seeds is not None:
        raise SeqbenchError("give --seed S (one run) or --seeds N (seeds 0..N-1), not both")
    if resume is not None and (config is not None or overrides):
        raise SeqbenchError(
            "--resume continues a run exactly as it was started: "
            "do not combine it with --config, --set, --name, --backend, --seed or --seeds"
        )
    if resume is None and config is None:
        raise SeqbenchError(
            "missing --config SPEC (or --resume RUN_DIR); e.g. seqbench train -c experiments/quickstart.yaml"
        )
    spec = load_spec(config, overrides, data_dir) if config is not None else None  # before the slow imports
    checks = [*(spec.expect or [] if spec else []), *(expect or [])]
    train_expectations(checks, spec.task if spec else None, junit)
    if spec is not None and spec.seeds is not None and len(spec.seeds) > 1:
        _train_seeds(
            spec, results, data_dir, quiet, as_json, lambda runs: conclude_train(runs, checks, junit)
        )
        return

    from seqbench.experiment import RunLog, resume_experiment, run_experiment
    from seqbench.tables import result_table

    log = RunLog(None if quiet else sys.stderr)
    if spec is None:
        result = resume_experiment(resume, data_dir, log)
    else:
        result = run_experiment(spec, results, data_dir, log)
    if as_json:
        print(dumps_strict(result.metrics, indent=2))
    elif result.metrics.get("epochs_run") == 0:  # stopped before its first epoch: no result to show
        stdout.print(f"no epoch finished, so there are no scores; run folder: {result.run_dir}")
    else:
        stdout.print(result_table(result.metrics))
        stdout.print(f"run folder: {result.run_dir}")
    if result.status != "interrupted":
        conclude_train([result.metrics], checks, junit)
    result.raise_for_status()


def _train_seeds(
    spec: Any,
    results: Path,
    data_dir: Path,
    quiet: bool,
    as_json: bool,
    conclude: Callable[[list[Any]], None],
) -> None:
    """`train` with several seeds: one run each, in turn; then each seed's result and mean ± std."""
    from seqbench.errors import RunFailed
    from seqbench.experiment import RunLog, run_seeds
    from seqbench.groups import group_rows, rich_group_table
    from seqbench.tables import seeds_table

    seeds = list(spec.seeds)

    def log_for(seed_spec: Any) -> RunLog:
        if not quiet:
            position = seeds.index(seed_spec.seed) + 1
            print(f"seed {seed_spec.seed} ({position} of {len(seeds)})", file=sys.stderr)
        return RunLog(None if quiet else sys.stderr)

    done = run_seeds(spec, results, data_dir, log_for)
    if as_json:
        print(dumps_strict([result.metrics for result in done], indent=2))
    else:
        stdout.print(seeds_table(done))
        (row,) = group_rows([{**r.metrics, "run_dir": str(r.run_dir)} for r in done])
        stdout.print(rich_group_table([row], min(stdout.width, 120)))  # the seeds' table has the rest
        stdout.print(f"seeds beating persistence: {row['beats_persistence']}/{row['n']}")
    last = done[-1]
    if last.status != "interrupted":
        conclude([result.metrics for result in done])
    if last.status == "interrupted":
        not_started = ", ".join(str(seed) for seed in seeds[len(done) :])
        if not_started:
            first, _, rest = last.message.partition("\n")
            last.message = f"{first}; seeds {not_started} not started\n{rest}".rstrip()
        last.raise_for_status()
    diverged = [result for result in done if result.status == "diverged"]
    if diverged:
        which = ", ".join(str(result.metrics["seed"]) for result in diverged)
        raise RunFailed(
            f"{len(diverged)} of {len(seeds)} seeds diverged (seed {which}); "
            f"lower train.lr (now {spec.train.lr:g}) or enable train.grad_clip"
        )


@app.command(cls=Command)
@handles_errors
def compare(
    runs: Annotated[
        list[str] | None, typer.Argument(help="Run folders, folders above them, or globs.")
    ] = None,
    sort: Annotated[str | None, typer.Option(help="Sort by a column; '-rmse' for descending.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, md, csv or json.")] = "table",
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write validation curves overlaid to this PNG.")] = None,
    group: Group = None,
    against: Annotated[
        str | None,
        typer.Option(
            help="dm_p against this run's test forecasts instead of persistence (a run folder or a "
            "reference file from seqbench reference)."
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Refuse (exit 2) runs on different data or splits.")
    ] = False,
    fail_if_worse: Annotated[
        str | None,
        typer.Option(
            "--fail-if-worse",
            help="Exit 1 when a run is worse than --against by more than this (2%) and significantly "
            "(Diebold-Mariano test).",
        ),
    ] = None,
    level: Annotated[float, typer.Option(help="--fail-if-worse: the DM test's significance level.")] = 0.05,
    junit: Junit = None,
    results: ResultsDir = Path("results"),
) -> None:
    """Put runs side by side, every score next to the persistence and linear baselines.

    skill = 1 - RMSE / persistence RMSE; skill_best = 1 - RMSE / RMSE of best_baseline, the one of
    persistence, seasonal and linear with the lowest test RMSE. Runs with scores in the scaler's
    units (ETT) add scaled_mse and scaled_mae, next to seasonal persistence's and best_baseline's.
    dm_p is the Diebold-Mariano p-value of a run's test errors against persistence's (or, with
    --against RUN, against that run's). Runs on different data or splits are a warning
    (--strict: an error).

    Runs of the same config (same spec but for the seed) become one row with mean ± std and n
    when some config has several runs, or with --group; --no-group keeps one row per run.

    The regression gate: `--against REF --fail-if-worse 2%` fails (exit 1) a run whose test score
    (RMSE; an LM's bits per byte) is worse than REF's by more than 2% and whose test losses differ
    from REF's significantly (Diebold-Mariano p < --level). REF is a run folder or a file from
    `seqbench reference`; a REF on other data or splits is refused (exit 2).

    Example: seqbench compare results/aapl-mingru --sort rmse --format md
    """
    from seqbench.ci.checks import compare_gate, uses_reference
    from seqbench.compare import (
        TASK_COLUMNS,
        by_task,
        compare_rows,
        hidden_columns,
        load_val_curves,
        render,
        rich_table,
        run_caption,
        sort_rows,
    )
    from seqbench.plots import plot_val_curves
    from seqbench.runs import find_runs, load_runs

    if as_json:
        fmt = "json"
    if fmt not in ("table", "md", "csv", "json"):
        raise SeqbenchError(f"unknown --format '{fmt}'; choose table, md, csv or json")
    loaded = load_runs(find_runs(list(runs or []), results))
    tasks = by_task(loaded)
    if len(tasks) > 1 and fmt == "csv":
        raise SeqbenchError(
            f"these runs are of {len(tasks)} tasks ({', '.join(tasks)}), whose columns differ; "
            "give --format csv the runs of one task (e.g. seqbench compare 'shakespeare-*'), "
            "or use --format json"
        )
    _check_sort_key(sort, tasks)
    if fail_if_worse is not None and against is None:
        raise SeqbenchError("--fail-if-worse needs --against REF: a reference file or a run folder")
    gate = (
        compare_gate(loaded, against, fail_if_worse, level, junit, results)
        if uses_reference(against, fail_if_worse)
        else None
    )
    records: list[Any] = []
    for task, task_runs in tasks.items():
        _pin_and_test(task_runs, against if task == "forecast" and gate is None else None, strict, results)
        key = sort if sort and sort.lstrip("-+") in _sortable(task) else None
        if len(tasks) > 1 and fmt in ("table", "md"):
            stdout.print(f"{task} runs" if fmt == "table" else f"\n### {task} runs\n")
        out = _group_output(task_runs, group, key, fmt)
        if out is None:
            rows = compare_rows(task_runs)
            if key:
                rows = sort_rows(rows, key, TASK_COLUMNS[task])
            if fmt == "table":
                table = rich_table(rows, stdout.width, TASK_COLUMNS[task], _optional_columns(task))
                table.caption = run_caption(rows) if task == "forecast" else None
                stdout.print(table)
                _note_hidden(hidden_columns(rows, stdout.width, TASK_COLUMNS[task], _optional_columns(task)))
                continue
            out = render(rows, fmt, TASK_COLUMNS[task])
        if fmt == "json":
            records += json.loads(out)
        elif out:
            sys.stdout.write(out)
    if fmt == "json":
        print(dumps_strict(records, indent=2))
    if plot:
        plot_val_curves(load_val_curves(loaded), plot)
        print(f"wrote {plot}", file=sys.stderr)
    if gate is not None:
        print(
            f"dm_p: Diebold-Mariano p-value against {gate.reference.label} ({gate.reference.source})",
            file=sys.stderr,
        )
        gate.conclude()


def _note_hidden(hidden: list[str]) -> None:
    """A `note:` line on stderr when a table on this terminal left columns out."""
    from seqbench.compare import hidden_note

    note = hidden_note(hidden, stdout.width)
    if note:
        print(f"note: {note}", file=sys.stderr)


def _pin_and_test(loaded: list[dict[str, Any]], against: str | None, strict: bool, results: Path) -> None:
    """`compare`'s data-pinning warnings (or --strict refusal) and the --against DM test."""
    from seqbench.compare import attach_dm_against, check_pinned

    for line in check_pinned(loaded, strict):
        print(f"warning: {line}", file=sys.stderr)
    if against:
        reference = attach_dm_against(loaded, against, results)
        print(f"dm_p: Diebold-Mariano p-value against {reference}", file=sys.stderr)


def _group_output(runs: list[dict[str, Any]], group: bool | None, sort: str | None, fmt: str) -> str | None:
    """`compare`'s one row per config (if asked, or by default when a config repeats): printed here
    for the terminal (returns ''), else the rendered text; None when the runs are not grouped."""
    from seqbench.groups import (
        group_rows,
        has_repeats,
        hidden_group_columns,
        render_groups,
        rich_group_table,
        sort_groups,
    )

    if group is False or (group is None and not has_repeats(runs)):
        return None
    rows = group_rows(runs)
    if sort:
        rows = sort_groups(rows, sort)
    if fmt == "table":
        stdout.print(rich_group_table(rows, stdout.width))
        _note_hidden(hidden_group_columns(rows, stdout.width))
        return ""
    return render_groups(rows, fmt)


def _sortable(task: str) -> set[str]:
    """The columns `--sort` takes for one task's runs, grouped or not."""
    from seqbench.compare import TASK_COLUMNS
    from seqbench.groups import LAYOUTS

    return set(TASK_COLUMNS[task]) | set(LAYOUTS[task].data_columns)


def _check_sort_key(sort: str | None, tasks: dict[str, Any]) -> None:
    """A --sort key that no task of these runs has is an error (sort_rows words it)."""
    from seqbench.compare import TASK_COLUMNS, sort_rows

    if sort and not any(sort.lstrip("-+") in _sortable(task) for task in tasks):
        sort_rows([], sort, TASK_COLUMNS[next(iter(tasks))])


def _optional_columns(task: str) -> list[str]:
    from seqbench.compare import LM_OPTIONAL_COLUMNS, OPTIONAL_COLUMNS

    return LM_OPTIONAL_COLUMNS if task == "lm" else OPTIONAL_COLUMNS


@app.command(cls=Command)
@handles_errors
def report(
    runs: Annotated[
        list[str] | None, typer.Argument(help="Run folders, folders above them (a sweep folder), or globs.")
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")] = Path(
        "report.html"
    ),
    group: Group = None,
    force: Force = False,
    results: ResultsDir = Path("results"),
) -> None:
    """Write one self-contained HTML page of runs: compare's table, then each run's scores, pictures and spec.

    The table (sortable: click a header) is compare's, its key columns first (score, skill,
    skill_best, dm_p, status) and its rows by dataset, then score; each run adds its scores next to every
    baseline, its loss curves and predictions, an LM's samples and its resolved spec.yaml; a sweep
    folder adds its sweep plots. Images are inline and the page makes no network request.

    Example: seqbench report results/sweeps/aapl-sweep -o report.html
    """
    from seqbench.report import write_report
    from seqbench.runs import check_output, find_runs

    check_output(output, force, "report.html")
    written = write_report(find_runs(list(runs or []), results), output, group)
    sweeps = f", {written.sweeps} sweep folder(s)" if written.sweeps else ""
    print(f"wrote {written.path} ({written.runs} runs{sweeps})", file=sys.stderr)


@app.command(cls=Command)
@handles_errors
def sweep(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="The base spec (YAML).")] = None,
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            metavar="KEY=V1,V2",
            help="A swept key and its values: --grid train.lr=1e-3,3e-3 (repeatable).",
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", metavar="KEY=VALUE", help="Override a key of the base spec: --set train.epochs=5."
        ),
    ] = None,
    seeds: Annotated[
        int | None, typer.Option("--seeds", min=1, help="Seeds 0..N-1 per grid point (default: the spec's).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Runs at a time (default: one per CPU core).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Sweep name: its folder is results/sweeps/NAME (default: the spec's).")
    ] = None,
    executor: Annotated[str, typer.Option(help="local (worker processes) or ray (Ray tasks).")] = "local",
    address: Annotated[
        str | None, typer.Option(help="With --executor ray: a Ray cluster's address (default: a local Ray).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines; only the table.")] = False,
    results: ResultsDir = Path("results"),
    data_dir: DataDir = Path("data"),
) -> None:
    """Run a grid of specs, once per seed, in parallel; resumable; summarised in its sweep folder.

    The grid is every combination of the --grid values. Runs land in results/sweeps/NAME/ with
    sweep.yaml, summary.md (one row per grid point, mean ± std over seeds) and sweep_KEY.png.
    Running the same command again skips completed runs and resumes interrupted ones.

    Example: seqbench sweep -c experiments/aapl_sweep.yaml --grid model.hidden_size=32,64
    --grid train.lr=1e-3,3e-3 --seeds 3 --workers 2
    """
    from seqbench.executors import check_executor
    from seqbench.groups import hidden_group_columns, rich_group_table
    from seqbench.sweep import check_data, plan_sweep, run_sweep, write_summary

    if config is None:
        raise SeqbenchError("missing --config SPEC; e.g. seqbench sweep -c experiments/aapl_sweep.yaml")
    check_executor(executor, address)
    plan = plan_sweep(config, list(grid or []), list(set_ or []), seeds, name, results, data_dir)
    check_data(plan, data_dir)
    report = run_sweep(plan, data_dir, executor, workers, address, None if quiet else _sweep_progress(plan))
    summary = write_summary(report)
    stdout.print(rich_group_table(summary.rows, stdout.width))
    _note_hidden(hidden_group_columns(summary.rows, stdout.width))
    stdout.print(f"sweep folder: {plan.sweep_dir} ({', '.join(path.name for path in summary.files)})")
    report.raise_for_status()


def _sweep_progress(plan: Any) -> Callable[[Any], None]:
    """Say what the sweep is about to do; return what prints a line (stderr) as each run ends."""
    from seqbench.sweep import outcome_line

    resumed = sum(1 for task in plan.todo if task.resume_dir)
    print(
        f"sweep {plan.name}: {len(plan.tasks) // len(plan.seeds)} grid points x {len(plan.seeds)} seeds = "
        f"{len(plan.tasks)} runs; {len(plan.done)} done before (skipped), {resumed} to resume, "
        f"{len(plan.todo) - resumed} to start",
        file=sys.stderr,
        flush=True,
    )
    ended = [len(plan.done)]

    def on_outcome(outcome: Any) -> None:
        ended[0] += 1
        print(outcome_line(outcome, ended[0], len(plan.tasks)), file=sys.stderr, flush=True)

    return on_outcome


@app.command(cls=Command)
@handles_errors
def reference(
    run: Annotated[Path, typer.Argument(help="A completed run folder.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The reference file to write (.json).")],
    force: Force = False,
) -> None:
    """Write a run's scores and test losses to a small, diff-able file for the regression gate.

    Commit the file; in CI, `seqbench compare NEW_RUN --against ref.json --fail-if-worse 2%`
    gates a new run against it without the reference's run folder. It holds the run's metrics
    (data fingerprint and split included: a run on other data is refused) and its test losses,
    one line per test window (an LM: per block of held-out bytes).

    Example: seqbench reference results/smoke/RUN -o smoke-reference.json
    """
    from seqbench.ci.reference import reference_from_run, write_reference
    from seqbench.runs import check_output

    check_output(output, force, "reference.json")
    made = reference_from_run(run)
    write_reference(made, output)
    print(
        f"wrote {output}: {made.label}, {made.headline[0]} {made.headline[1]:.6g}, "
        f"{len(made.losses)} test losses",
        file=sys.stderr,
    )


@app.command(cls=Command)
@handles_errors
def convert(
    source: Annotated[
        Path, typer.Argument(help="A run folder (with --to) or a weights file (with --config).")
    ],
    to: Annotated[
        str | None,
        typer.Option("--to", help="Export to this peer's layout: mambapy, mamba_ssm, mingru_pytorch."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="With --to: the .pt or .npz file.")
    ] = None,
    blocks_only: Annotated[
        bool, typer.Option("--blocks-only", help="With --to: leave out seqbench's own embed.* and head.*.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="With --to: replace the -o file if it exists.")
    ] = False,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Import into this spec's model (YAML).")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", metavar="KEY=VALUE", help="Override a key of the spec.")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Run-name prefix of the new run (default: the spec's).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Import: print metrics.json to stdout.")] = False,
    results: ResultsDir = Path("results"),
    data_dir: DataDir = Path("data"),
) -> None:
    """Move weights between seqbench and the reference implementations (mambapy / mamba_ssm, minGRU-pytorch).

    Export: `convert RUN_DIR --to PEER -o FILE.pt` writes a trained run's weights in the peer's
    names and layout (a state dict of tensors; .npz for NumPy arrays), plus seqbench's own
    embed.* and head.* under seqbench's names (--blocks-only leaves them out).

    Import: `convert FILE.pt --config SPEC` builds the spec's model, loads the peer's blocks
    (and seqbench's embed.* / head.*, when the file has them) and writes a run folder scored like
    a trained run, without training (epochs_run 0, `converted_from` in metrics.json).

    Example: seqbench convert results/aapl-mamba/RUN --to mambapy -o aapl_mamba.pt;
    seqbench convert aapl_mamba.pt --config experiments/aapl_mamba.yaml --name aapl-mambapy
    """
    from seqbench.convert.files import export_run, import_file
    from seqbench.runs import check_output

    if (to is None) == (config is None):
        raise SeqbenchError(
            "give --to PEER -o FILE (export a run folder) or --config SPEC (import a weights file), not "
            + ("both" if to else "neither")
        )
    if to is not None:
        if output is None:
            raise SeqbenchError("--to needs --output FILE (.pt, or .npz); e.g. -o weights.pt")
        if set_ or name or as_json:
            raise SeqbenchError(
                "--set, --name and --json are for an import (--config); an export takes --to and -o"
            )
        check_output(output, force, "weights.pt")
        names = export_run(source, to, output, own=not blocks_only)
        print(f"wrote {output} ({len(names)} tensors in {to}'s layout)", file=sys.stderr)
        return
    if output is not None or blocks_only or force:
        raise SeqbenchError(
            "--output, --blocks-only and --force are for an export (--to); an import writes a run folder"
        )
    from seqbench.experiment import RunLog
    from seqbench.spec import load_spec
    from seqbench.tables import result_table

    overrides = list(set_ or []) + ([f"name={name}"] if name is not None else [])
    spec = load_spec(config, overrides, data_dir)
    if spec.seeds is not None and len(spec.seeds) > 1:
        raise SeqbenchError("an import is one run: give the spec one seed (--set seed=0), not seeds")
    result, _ = import_file(source, spec, results, data_dir, RunLog(None if quiet else sys.stderr))
    if as_json:
        print(dumps_strict(result.metrics, indent=2))
    else:
        stdout.print(result_table(result.metrics))
        stdout.print(f"run folder: {result.run_dir}")


@app.command(cls=Command)
@handles_errors
def download(
    ticker: Annotated[
        str,
        typer.Argument(
            help="Yahoo Finance ticker (e.g. AAPL), a text corpus (tinyshakespeare, enwik8) or an ETT file "
            "(ETTh1, ETTh2, ETTm1, ETTm2)."
        ),
    ],
    start: Annotated[str, typer.Option(help="First date, YYYY-MM-DD.")] = "2010-01-01",
    end: Annotated[str | None, typer.Option(help="Last date, YYYY-MM-DD (default: today).")] = None,
    interval: Annotated[str, typer.Option(help="Bar size, e.g. 1d, 1wk.")] = "1d",
    force: Annotated[bool, typer.Option("--force", help="Download again even if cached.")] = False,
    data_dir: DataDir = Path("data"),
) -> None:
    """Fetch daily OHLCV with yfinance into data/TICKER.csv (plus a JSON sidecar), or a text corpus
    into data/NAME.txt (its sha256 checked).

    Example: seqbench download AAPL --start 2010-01-01 --end 2023-12-31; seqbench download tinyshakespeare
    """
    from seqbench.data.ett import download_ett, is_ett, is_pinned
    from seqbench.data.text import download_corpus, is_corpus
    from seqbench.data.yahoo import download as fetch_ticker

    if is_ett(ticker):
        path = download_ett(ticker, data_dir)
        if not is_pinned(ticker):
            print(
                f"warning: {path.name} has no pinned sha256 in seqbench; it was kept unchecked",
                file=sys.stderr,
            )
        print(path)
        return
    if is_corpus(ticker):
        print(download_corpus(ticker.lower(), data_dir))
        return
    path = fetch_ticker(ticker, start=start, end=end, interval=interval, data_dir=data_dir, force=force)
    print(path)


@app.command(cls=Command)
@handles_errors
def predict(
    run: Annotated[Path, typer.Argument(help="A forecast run folder.")],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="A CSV with the run's columns (default: the run's own data)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the forecast to this CSV.")
    ] = None,
    force: Force = False,
    data_dir: DataDir = Path("data"),
) -> None:
    """Forecast the next `horizon` steps after the last row of the run's data (or of --data).

    The rows go through the run's own transform, scaler (fit on its training rows) and window
    normalisation; its best weights forecast; the table gives each step's date, in the series'
    own frequency (trading days for daily stock data), and the forecast in original units.

    Example: seqbench predict results/aapl-mingru/RUN -o forecast.csv
    """
    from rich.markup import escape
    from rich.table import Table

    from seqbench.io import atomic_write_text
    from seqbench.predict import predict_run
    from seqbench.runs import check_output

    if output is not None:
        check_output(output, force, "forecast.csv")
    forecast = predict_run(run, data, data_dir)
    print(f"forecast of {forecast.label} after its last row, {forecast.last_date} ({forecast.rows} rows):")
    table = Table()
    for column in forecast.frame.columns:
        table.add_column(column, justify="left" if column in ("date", "series") else "right")
    for row in forecast.frame.itertuples(index=False):
        table.add_row(row.date, escape(str(row.series)), str(row.step), f"{row.prediction:.6g}")
    stdout.print(table)
    if output is not None:
        atomic_write_text(output, forecast.frame.to_csv(index=False))
        print(f"wrote {output}", file=sys.stderr)


@app.command(cls=Command)
@handles_errors
def sample(
    run: Annotated[Path, typer.Argument(help="An LM run folder.")],
    prompt: Annotated[
        str, typer.Option(help="The text to continue (its bytes as given).", show_default="a newline")
    ] = "\n",
    length: Annotated[int, typer.Option(help="Bytes to generate, 1 to 1,000,000.")] = 500,
    temperature: Annotated[
        float, typer.Option(help="Softmax temperature, 0.001 or more; 0 = always the likeliest byte.")
    ] = 0.8,
    top_k: Annotated[
        int, typer.Option(help="Sample among the k likeliest bytes, 1 to 256 (256: every byte).")
    ] = 40,
    seed: Annotated[int, typer.Option(min=0, help="Random seed of the sampling.")] = 0,
    data_dir: DataDir = Path("data"),
) -> None:
    """Generate text from a trained language model, one byte at a time in its recurrent mode.

    Writes the prompt and the generated bytes to stdout.

    Example: seqbench sample results/shakespeare-mamba/RUN --prompt "ROMEO:" --length 500 --top-k 40
    """
    from seqbench.sampling import sample_run

    given = prompt.encode("utf-8", "surrogateescape")  # bytes that are not UTF-8 came as surrogates
    text = sample_run(run, given, length, temperature, top_k, seed, data_dir)
    sys.stdout.buffer.write(text)
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


@app.command(cls=Command)
@handles_errors
def datasets(data_dir: DataDir = Path("data")) -> None:
    """List the built-in datasets and cached downloads.

    Example: seqbench datasets
    """
    from seqbench.data.sources import list_datasets
    from seqbench.tables import datasets_table

    stdout.print(datasets_table(list_datasets(data_dir)))


@app.command(cls=Command)
@handles_errors
def gradcheck(
    model: Annotated[str | None, typer.Option(help="Check only this model (default: every model).")] = None,
    tolerance: Annotated[float, typer.Option(min=0, help="Largest relative error that passes.")] = 1e-6,
    lm: Annotated[
        bool, typer.Option("--lm", help="Also the language models: byte embedding in, cross-entropy out.")
    ] = False,
) -> None:
    """Check every NumPy model's backward pass against finite differences (float64).

    Each model is checked as it is, and "(segments)" with a forecast's input segments, segment
    decoder and linear skip path (model.segment, model.decoder, model.linear_skip).

    Exit 1 if any parameter's relative error is above the tolerance.

    Example: seqbench gradcheck --model gru --tolerance 1e-6 --lm
    """
    from seqbench.errors import RunFailed
    from seqbench.gradcheck import gradcheck_models
    from seqbench.models.registry import model_names
    from seqbench.tables import gradcheck_table

    names = [model] if model else model_names()
    results = gradcheck_models(names) + gradcheck_models(names, forecast=True)
    results += gradcheck_models(names, lm=True) if lm else []
    stdout.print(gradcheck_table(results, tolerance))
    failed = sum(r.max_rel_error > tolerance for r in results)
    if failed:
        raise RunFailed(f"gradient check failed: {failed} of {len(results)} parameters above {tolerance:g}")


@app.command(cls=Command)
@handles_errors
def audit(
    config: Annotated[Path, typer.Option("--config", "-c", help="Experiment spec (YAML).")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Override a key: --set model.name=mamba."),
    ] = None,
    data_dir: DataDir = Path("data"),
) -> None:
    """Check that the spec's model and data pipeline never look at the future.

    Perturbs real inputs after step t (several t) and checks that the model's states up to t
    do not change (float64, every backend installed); checks that the scaler sees training rows
    only and that train < val < test share no target row. Exit 1 on a leak.

    Example: seqbench audit --config experiments/quickstart.yaml --set model.name=mamba
    """
    from seqbench.spec import load_spec

    spec = load_spec(config, list(set_ or []), data_dir)

    from seqbench.audit import audit_spec
    from seqbench.errors import RunFailed
    from seqbench.tables import audit_table

    report = audit_spec(spec, data_dir)
    stdout.print(audit_table(report, f"{spec.model.name} on {spec.dataset.label}"))
    if report.leaks:
        first = report.leaks[0]
        raise RunFailed(
            f"causality audit: {len(report.leaks)} of {len(report.checks)} checks found a leak "
            f"(first: {first.subject}, {first.check}: {first.result})"
        )


def main() -> None:
    app(prog_name="seqbench")
