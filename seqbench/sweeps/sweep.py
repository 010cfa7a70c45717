"""Sweeps: a grid of specs times seeds, run in parallel, resumable, summarised in one folder.

`seqbench sweep --config SPEC --grid model.hidden_size=32,64 --grid train.lr=1e-3,3e-3 --seeds 3`
runs every grid point (the cartesian product of the `--grid` values) once per seed. The sweep
folder is an ordinary results folder with three more files:

    results/sweeps/<sweep>/
      sweep.yaml              the base spec, the grid and the seeds
      summary.md              one row per grid point: mean ± std over the seeds (`compare --group`)
      sweep_<key>.png         test RMSE (mean ± std over seeds) against each swept key
      <sweep>_<point>/<run_id>/   an ordinary run folder per grid point and seed

A run is identified by its grid point and seed: its `config_id` (the resolved spec without name
and seed, see `seqbench.spec.config_id`) and its `seed`, both in metrics.json. Running the same
sweep again skips the runs that completed (and those that diverged: the same spec and seed would
diverge again), resumes interrupted ones from their checkpoints, and starts the rest.

Every grid point's spec and data are checked before anything runs, so a bad `--grid` (or two
grid points that are the same config once validated) is exit 2 with nothing written. Runs that
the workers of a killed sweep still write are waited for before the sweep looks at them. The
runs go to worker processes (`executor="local"`) or to Ray tasks (`executor="ray"`, a local Ray
instance or a cluster at `address`), see `seqbench.sweeps.executors`; a run that fails in a worker is
reported with its status and does not stop the others.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import re
import sys
import time
import warnings
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from seqbench.artifacts.runs import run_lock
from seqbench.errors import RunFailed, RunInterrupted, SeqbenchError, SpecError
from seqbench.io import atomic_write_text
from seqbench.spec import (
    NAME_PATTERN,
    SECTIONS,
    Spec,
    _short_key_map,
    _unknown_key_error,
    build_spec,
    config_id,
    load_spec,
    parse_override,
    read_yaml,
    shown,
    valid_keys,
)
from seqbench.sweeps.executors import check_executor, make_executor
from seqbench.sweeps.task import Outcome, SweepTask, point_label, value_text

SWEEPS_DIR = "sweeps"
SWEEP_FILE = "sweep.yaml"
SUMMARY_FILE = "summary.md"


# --- the grid ----------------------------------------------------------------------------------


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """`["model.hidden_size=32,64", "lr=1e-3,3e-3"]` -> {"model.hidden_size": [32, 64], "train.lr": [...]}.

    Keys are canonical or short spec keys (short ones are made canonical); values are YAML
    scalars separated by commas (a comma inside [...] or {...} belongs to the value). `seed`,
    `seeds` and `name` are not grid keys: use --seeds and --name.
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise SpecError(f"--grid '{shown(item)}': expected KEY=V1,V2,..., e.g. --grid train.lr=1e-3,3e-3")
        key, _, text = item.partition("=")
        key = _grid_key(key.strip(), item)
        if key in grid:
            raise SpecError(f"--grid {key} is given twice; list all its values in one --grid {key}=A,B")
        values = []
        for part in _split_values(text, item):
            _, value = parse_override(f"{key}={part}")
            if value in values:
                raise SpecError(f"--grid '{shown(item)}': the value {part.strip()} is listed twice")
            values.append(value)
        grid[key] = values
    return grid


def _grid_key(key: str, item: str) -> str:
    if key in ("seed", "seeds"):
        raise SpecError(f"--grid '{shown(item)}': seeds are not a grid key; use --seeds N (seeds 0..N-1)")
    if key == "name":
        raise SpecError(f"--grid '{shown(item)}': name is not a grid key; name the sweep with --name")
    key = _short_key_map().get(key, key)
    if key not in SECTIONS and key not in valid_keys():
        raise _unknown_key_error(key, f"--grid {shown(item)}")
    return key


def _split_values(text: str, item: str) -> list[str]:
    """Split on the commas that are not inside brackets or braces."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    if any(not part.strip() for part in parts):
        raise SpecError(f"--grid '{shown(item)}': a value is empty; write KEY=V1,V2,... without spaces or ,,")
    return parts


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of the grid, in the order the keys and values were given."""
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def _name_text(value: Any) -> str:
    """A value as a piece of a run name: a mapping {name: mamba, n_layers: 2} -> mamba-n_layers-2."""
    if isinstance(value, dict):
        return "-".join(str(v) if k == "name" else f"{k}-{_name_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "-".join(map(_name_text, value))
    return value_text(value)


def _key_leaf(key: str) -> str:
    return {"model.name": "model", "dataset.name": "dataset"}.get(key, key.rpartition(".")[2])


def run_name(sweep: str, point: dict[str, Any], index: int) -> str:
    """The run-name prefix of a grid point: `<sweep>_hidden_size-32_lr-0.001` (or `<sweep>_p003`)."""
    if not point:
        return sweep
    parts = [f"{_key_leaf(key)}-{_name_text(value)}" for key, value in point.items()]
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{sweep}_{'_'.join(parts)}").replace("..", ".")
    if NAME_PATTERN.match(name):
        return name
    return f"{sweep[:58]}_p{index:03d}"


# --- the plan ----------------------------------------------------------------------------------


@dataclass
class ExistingRun:
    run_dir: Path
    status: str | None  # from metrics.json; None when the run never finished writing it
    resumable: bool


@dataclass
class SweepPlan:
    name: str
    sweep_dir: Path
    base: Spec  # the spec file with --set applied (seeds resolved)
    grid: dict[str, list[Any]]
    seeds: list[int]
    tasks: list[SweepTask]  # every grid point times every seed
    done: dict[int, ExistingRun] = field(default_factory=dict)  # task position -> completed or diverged run

    @property
    def todo(self) -> list[SweepTask]:
        return [task for i, task in enumerate(self.tasks) if i not in self.done]


def plan_sweep(
    config: Path,
    grid_items: list[str],
    overrides: list[str] | None = None,
    seeds: int | None = None,
    name: str | None = None,
    results_dir: Path = Path("results"),
    data_dir: Path = Path("data"),
) -> SweepPlan:
    """Validate the spec and every grid point, and find which runs of the sweep exist already.

    A bad key or value anywhere in the grid is a one-line SpecError before anything is written.
    """
    overrides = list(overrides or [])
    grid = parse_grid(grid_items)
    base = load_spec(config, overrides, data_dir)
    seed_list = list(range(seeds)) if seeds is not None else list(base.seeds or [base.seed])
    sweep = name or base.name
    if not NAME_PATTERN.match(sweep) or ".." in sweep:
        raise SpecError(f"--name '{shown(sweep)}' is not a valid sweep name (letters, digits, '.', '_', '-')")
    tasks = []
    seen: dict[str, dict[str, Any]] = {}  # config_id -> the first grid point that has it
    for index, point in enumerate(grid_points(grid)):
        spec = _point_spec(config, overrides, point, run_name(sweep, point, index), data_dir)
        cid = config_id(spec)
        if cid in seen:
            raise _same_config(seen[cid], point, spec, cid)
        seen[cid] = point
        for seed in seed_list:
            run_spec = spec.model_dump(mode="json", exclude={"seeds"}) | {"seed": seed}
            tasks.append(SweepTask(index, point, seed, run_spec, cid))
    plan = SweepPlan(sweep, Path(results_dir) / SWEEPS_DIR / sweep, base, grid, seed_list, tasks)
    _check_same_sweep(plan)
    _find_existing(plan)
    return plan


def _point_spec(config: Path, overrides: list[str], point: dict[str, Any], name: str, data_dir: Path) -> Spec:
    """The spec of one grid point; its problems are said with the point they come from."""
    items = [f"{key}={_override_text(value)}" for key, value in point.items()]
    try:
        spec = load_spec(config, [*overrides, *items, f"name={name}"], data_dir)
    except SpecError as exc:
        message = str(exc).removeprefix(f"{config}: ")
        raise SpecError(f"--grid point {point_label(point)}: {message}") from None
    return spec.model_copy(update={"seeds": None})


def _same_config(first: dict[str, Any], point: dict[str, Any], spec: Spec, cid: str) -> SpecError:
    """Two grid points that validate to the same spec would run the same config twice: refused."""
    differ = [key for key in point if first[key] != point[key]]
    overlap = any(k.startswith(f"{key}.") or key.startswith(f"{k}.") for k in point for key in differ)
    if len(differ) == 1 and not overlap:  # one key's values alone: e.g. lr=1e-3,"1e-3"
        (key,) = differ
        values = f"the values {_written(first[key])} and {_written(point[key])}"
        if key in SECTIONS:
            return SpecError(f"--grid {key}: {values} give the same {key} once validated; list each once")
        value: Any = spec.model_dump(mode="json")
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return SpecError(
            f"--grid {key}: {values} are the same {key} ({value_text(value)}) once validated; list each once"
        )
    return SpecError(
        f"--grid points {point_label(first)} and {point_label(point)} are the same config "
        f"(config_id {cid}) once validated; remove one of their values from the grid"
    )


def _written(value: Any) -> str:
    """A grid value as it was given: a string that would read as another type stays quoted ("1e-3")."""
    return json.dumps(value) if isinstance(value, str) and not _reads_back(value) else value_text(value)


def _reads_back(text: str) -> bool:
    """Whether `--set key=TEXT` gives the string TEXT itself."""
    try:
        return parse_override(f"key={text}")[1] == text
    except SpecError:
        return False


def _override_text(value: Any) -> str:
    """A grid value as `--set` text that parses back to the same value."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str) and _reads_back(value):
        return value
    return json.dumps(value, default=str)  # JSON is YAML: strings quoted, lists and mappings as they are


def _base_record(spec: Spec, grid: dict[str, list[Any]]) -> dict[str, Any]:
    """The base spec as sweep.yaml keeps it: without name and seeds, and without the swept keys."""
    record = spec.model_dump(mode="json", exclude={"name", "seed", "seeds"})
    for key in grid:
        section, _, leaf = key.partition(".")
        if leaf:
            record.get(section, {}).pop(leaf, None)
        else:
            record.pop(section, None)
    return record


def _check_same_sweep(plan: SweepPlan) -> None:
    """A sweep folder holds one base spec: another one under the same name is refused."""
    path = plan.sweep_dir / SWEEP_FILE
    if not path.is_file():
        return
    saved = read_yaml(path)
    before = saved.get("spec") if isinstance(saved, dict) else None
    if not isinstance(before, dict):
        raise SeqbenchError(f"{path} is not a sweep file; remove it or use --name for a new sweep")
    try:
        before = _base_record(build_spec({**before, "name": plan.name}, str(path)), plan.grid)
    except SpecError as exc:
        raise SeqbenchError(f"{path} holds a spec this version cannot read ({exc}); use --name NEW") from None
    now = _base_record(plan.base, plan.grid)
    if before != now:
        key, old, new = _first_difference(before, now)
        raise SeqbenchError(
            f"{plan.sweep_dir} holds a sweep of another spec ({key}: {old} there, {new} now); "
            "use --name NEW for a new sweep, or remove that folder"
        )


def _first_difference(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> tuple[str, Any, Any]:
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            if x != y:
                return _first_difference(x, y, f"{prefix}{key}.")
        elif x != y:
            return f"{prefix}{key}", x, y
    return prefix.rstrip(".") or "spec", None, None


BUSY_WAIT_S = 20.0  # how long a sweep waits for runs still written by a process of an earlier sweep


def _find_existing(plan: SweepPlan) -> None:
    """Mark each task completed, diverged (both skipped) or resumable from the runs on disk."""
    if not plan.sweep_dir.is_dir():
        return
    _wait_for_busy_runs(plan.sweep_dir)
    found: dict[tuple[str, int], list[ExistingRun]] = {}
    for spec_file in sorted(plan.sweep_dir.glob("*/*/spec.yaml")):
        run_dir = spec_file.parent
        identity = _run_identity(run_dir)
        if identity is not None:
            found.setdefault(identity, []).append(_existing(run_dir))
    rank = {"completed": 0, "diverged": 1}
    for position, task in enumerate(plan.tasks):
        runs = found.get((task.config_id, task.seed), [])
        finished = sorted((r for r in runs if r.status in rank), key=lambda r: rank[str(r.status)])
        if finished:
            plan.done[position] = finished[0]
            continue
        resumable = [r for r in runs if r.resumable]
        if resumable:
            plan.tasks[position] = _with_resume(task, resumable[-1].run_dir)


def _busy(folder: Path) -> bool:
    """Whether a live process holds the folder's run lock (writes into it) now."""
    try:
        with run_lock(folder):
            return False
    except SeqbenchError:
        return True
    except OSError:  # a folder this process cannot write into: it will say so when it writes
        return False


def _wait_for_busy_runs(sweep_dir: Path) -> None:
    """Let the runs that a killed sweep's workers still write end first (they stop within seconds),
    so that what they leave is classified as what it is; a sweep of this folder that is still
    running is an error, as is a run that stays in use."""
    from seqbench.artifacts.runs import read_status

    with contextlib.suppress(OSError), run_lock(sweep_dir):  # a live sweep of this folder: its message
        pass
    unfinished = [
        spec.parent
        for spec in sorted(sweep_dir.glob("*/*/spec.yaml"))
        if read_status(spec.parent) not in ("completed", "diverged")
    ]
    busy = [run_dir for run_dir in unfinished if _busy(run_dir)]
    if not busy:
        return
    warnings.warn(
        f"{len(busy)} run(s) of {sweep_dir} are still being written by another process (e.g. the workers "
        f"of a sweep that was killed); waiting for them to stop (at most {BUSY_WAIT_S:g} s)",
        UserWarning,
        stacklevel=3,
    )
    deadline = time.monotonic() + BUSY_WAIT_S
    while busy and time.monotonic() < deadline:
        time.sleep(0.25)
        busy = [run_dir for run_dir in busy if _busy(run_dir)]
    if busy:
        raise SeqbenchError(
            f"{busy[0]} is still in use by another seqbench process; stop it, or wait for it to finish, "
            "then run the same command again"
        )


def _with_resume(task: SweepTask, run_dir: Path) -> SweepTask:
    return SweepTask(task.index, task.point, task.seed, task.spec, task.config_id, str(run_dir.resolve()))


def _run_identity(run_dir: Path) -> tuple[str, int] | None:
    """(config_id, seed) of a run folder, from metrics.json or else from spec.yaml."""
    from seqbench.artifacts.runs import load_run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = load_run(run_dir) if (run_dir / "metrics.json").is_file() else None
    if metrics and isinstance(metrics.get("config_id"), str) and isinstance(metrics.get("seed"), int):
        return metrics["config_id"], metrics["seed"]
    try:
        spec = load_spec(run_dir / "spec.yaml")
    except SeqbenchError:
        return None
    return config_id(spec), spec.seed


def _existing(run_dir: Path) -> ExistingRun:
    from seqbench.artifacts.runs import read_status
    from seqbench.training.checkpoint import has_checkpoint

    status = read_status(run_dir)
    resumable = status in (None, "interrupted") and has_checkpoint(run_dir)
    return ExistingRun(run_dir, status, resumable)


def check_data(plan: SweepPlan, data_dir: Path) -> None:
    """Load every grid point's data and build its model once, before any run starts.

    A missing file, an unknown ticker or a window longer than the data is exit 2 here rather
    than a failure in every worker; a Yahoo dataset is downloaded once, not once per worker.
    """
    from seqbench.run.experiment import prepare

    checked: set[str] = set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for task in plan.todo:
            if task.config_id in checked:
                continue
            checked.add(task.config_id)
            spec = Spec.model_validate(task.spec)
            try:
                prepare(spec, data_dir)
            except SeqbenchError as exc:
                raise type(exc)(f"--grid point {point_label(task.point) or '(base spec)'}: {exc}") from None
    for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)):
        warnings.warn(message, UserWarning, stacklevel=2)


def write_sweep_file(plan: SweepPlan) -> None:
    """sweep.yaml: the base spec (name, seeds and swept keys aside), the grid and the seeds."""
    record = {
        "name": plan.name,
        "spec": _base_record(plan.base, {}),
        "grid": plan.grid,
        "seeds": plan.seeds,
    }
    atomic_write_text(plan.sweep_dir / SWEEP_FILE, yaml.safe_dump(record, sort_keys=False))


# --- running -----------------------------------------------------------------------------------


@dataclass
class SweepReport:
    """The outcome of every task of a plan, and the signal that stopped the sweep, if one did."""

    plan: SweepPlan
    outcomes: list[Outcome]
    stopped: str | None = None

    @property
    def not_completed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status not in ("completed", "skipped-completed")]

    def raise_for_status(self) -> None:
        """RunInterrupted (130) if stopped; RunFailed (1) if some run did not complete."""
        summary = self.plan.sweep_dir / SUMMARY_FILE
        if self.stopped:
            unfinished = len(self.plan.tasks) - sum(o.status in FINISHED for o in self.outcomes)
            raise RunInterrupted(
                f"sweep stopped by {self.stopped}: {unfinished} of {len(self.plan.tasks)} runs not finished "
                f"(interrupted runs keep their checkpoints)\nrun the same command again to continue: "
                "completed runs are skipped, interrupted ones resume"
            )
        if self.not_completed:
            counts = Counter(o.status.removeprefix("skipped-") for o in self.not_completed)
            said = ", ".join(f"{n} {status}" for status, n in counts.most_common())
            raise RunFailed(
                f"{len(self.not_completed)} of {len(self.plan.tasks)} runs did not complete ({said}); "
                f"see {summary}"
            )


FINISHED = {"completed", "diverged", "skipped-completed", "skipped-diverged"}


def run_sweep(
    plan: SweepPlan,
    data_dir: Path = Path("data"),
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> SweepReport:
    """Run the tasks that are not done yet; the report has an outcome for every task that ended.

    Runs already completed (or diverged) are `skipped-...` outcomes. A failed run does not stop
    the others. Ctrl-C or SIGTERM stops starting new runs and lets the running ones stop at their
    next batch (status interrupted, checkpoint kept); the report says which signal it was.
    """
    from seqbench.training.signals import stop_on_signals

    report = SweepReport(plan, [])
    for position, existing in plan.done.items():
        status = f"skipped-{existing.status}"
        report.outcomes.append(Outcome(plan.tasks[position], status, str(existing.run_dir)))
    plan.sweep_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(plan.sweep_dir):
        write_sweep_file(plan)
        # a Ctrl-C while the workers start is an interruption like any other (exit 130, summary)
        with stop_on_signals() as stop:
            runner = make_executor(executor, plan.sweep_dir, Path(data_dir), workers, address, len(plan.todo))
            queue: deque[SweepTask] = deque(plan.todo)
            running: dict[Any, SweepTask] = {}

            def check_stop() -> None:
                if stop.requested and not report.stopped:
                    report.stopped = stop.signal
                    runner.stop(str(stop.signal), list(running))

            try:
                while queue or running:
                    check_stop()
                    while queue and len(running) < runner.capacity and not report.stopped:
                        task = queue.popleft()
                        running[runner.submit(task)] = task
                        check_stop()
                    if not running:
                        break
                    done = runner.wait(list(running), timeout=0.5)
                    check_stop()  # before the results: a run that ended with the stop was interrupted
                    for handle in done:
                        outcome = runner.result(handle, running.pop(handle))
                        report.outcomes.append(outcome)
                        if on_outcome is not None:
                            on_outcome(outcome)
                        if outcome.status == "interrupted" and not report.stopped:
                            said = re.search(r"stopped by (SIG[A-Z]+)", outcome.message)
                            report.stopped = said.group(1) if said else "a signal"  # the run had it itself
                            runner.stop(report.stopped, list(running))
            finally:
                runner.close()
    return report


def sweep_from_flags(
    config: Path | None,
    grid: list[str] | None = None,
    overrides: list[str] | None = None,
    seeds: int | None = None,
    name: str | None = None,
    results_dir: Path = Path("results"),
    data_dir: Path = Path("data"),
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    quiet: bool = False,
) -> tuple[SweepReport, SweepSummary]:
    """`seqbench sweep`: check the executor, plan and check every grid point, run what is left
    (a line on stderr per run unless `quiet`), and write the summary."""
    if config is None:
        raise SeqbenchError("missing --config SPEC; e.g. seqbench sweep -c experiments/aapl_sweep.yaml")
    check_executor(executor, address)
    plan = plan_sweep(config, list(grid or []), list(overrides or []), seeds, name, results_dir, data_dir)
    check_data(plan, data_dir)
    report = run_sweep(plan, data_dir, executor, workers, address, None if quiet else progress_lines(plan))
    return report, write_summary(report)


def progress_lines(plan: SweepPlan) -> Callable[[Outcome], None]:
    """Say what the sweep is about to do; return what prints a line (stderr) as each run ends."""
    resumed = sum(1 for task in plan.todo if task.resume_dir)
    print(
        f"sweep {plan.name}: {len(plan.tasks) // len(plan.seeds)} grid points x {len(plan.seeds)} seeds = "
        f"{len(plan.tasks)} runs; {len(plan.done)} done before (skipped), {resumed} to resume, "
        f"{len(plan.todo) - resumed} to start",
        file=sys.stderr,
        flush=True,
    )
    ended = [len(plan.done)]

    def on_outcome(outcome: Outcome) -> None:
        ended[0] += 1
        print(outcome_line(outcome, ended[0], len(plan.tasks)), file=sys.stderr, flush=True)

    return on_outcome


def outcome_line(outcome: Outcome, position: int, total: int) -> str:
    """`[ 3/24] completed  model.hidden_size=32 seed=1  rmse 1.234 (persistence 1.240)  12.3 s`."""
    from seqbench.results.compare import BASELINE, SCORE_NAMES

    width = len(str(total))
    scores = ""
    if outcome.score is not None and outcome.baseline is not None:
        task = str(outcome.task.spec.get("task", "forecast"))
        metric = "rmse" if task == "forecast" else "bits/byte"
        baseline = SCORE_NAMES[BASELINE[task]]
        scores = f"  {metric} {outcome.score:.4g} ({baseline} {outcome.baseline:.4g})"
    tail = f"  {outcome.message}" if outcome.status != "completed" and outcome.message else ""
    return (
        f"[{position:>{width}}/{total}] {outcome.status:<11} {outcome.task.label}{scores}  "
        f"{outcome.seconds:.1f} s{tail}"
    )


# --- the summary -------------------------------------------------------------------------------


@dataclass
class SweepSummary:
    rows: list[dict[str, Any]]  # one per config found in the sweep folder, by mean test RMSE
    files: list[Path]  # summary.md and the plots


def plan_task(plan: SweepPlan) -> str:
    """The task of a sweep's runs (a grid cannot change it: `task` is not a grid key)."""
    return str(plan.tasks[0].spec.get("task", "forecast")) if plan.tasks else "forecast"


def write_summary(report: SweepReport) -> SweepSummary:
    """summary.md (compare --group over the sweep folder, best per model, runs that did not
    complete) and one plot of test RMSE against each swept key."""
    from seqbench.artifacts.runs import find_runs, load_runs
    from seqbench.results.compare import HEADLINE
    from seqbench.results.groups import group_rows, sort_groups

    plan = report.plan
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runs = load_runs(find_runs([str(plan.sweep_dir)], plan.sweep_dir))
    except SeqbenchError:  # not one run folder yet (every run failed before making one)
        runs = []
    rows = sort_groups(group_rows(runs), HEADLINE[plan_task(plan)]) if runs else []
    path = plan.sweep_dir / SUMMARY_FILE
    atomic_write_text(path, summary_markdown(report, rows))
    return SweepSummary(rows, [path, *_plot_keys(plan, rows)])


def summary_markdown(report: SweepReport, rows: list[dict[str, Any]]) -> str:
    from seqbench.results.compare import HEADLINE, SCORE_NAMES
    from seqbench.results.groups import LAYOUTS, group_caption, render_groups

    plan = report.plan
    task = plan_task(plan)
    headline = HEADLINE[task]
    statuses = Counter(o.status.removeprefix("skipped-") for o in report.outcomes)
    if len(report.outcomes) < len(plan.tasks):
        statuses["not started"] = len(plan.tasks) - len(report.outcomes)
    said = ", ".join(f"{n} {status}" for status, n in statuses.most_common())
    grid = "; ".join(f"{key} = {', '.join(map(value_text, values))}" for key, values in plan.grid.items())
    lines = [
        f"# Sweep {plan.name}",
        "",
        f"- grid: {grid or '(none: the base spec)'}",
        f"- seeds: {', '.join(map(str, plan.seeds))}",
        f"- runs: {len(plan.tasks)} ({said or 'none run'}); base spec, grid and seeds in {SWEEP_FILE}",
        f"- the same table: `seqbench compare {plan.sweep_dir} --group --sort {headline} --format md`",
        "",
        "One row per grid point (every run in this folder, grouped by config), "
        f"by mean {SCORE_NAMES[headline]}.",
        "",
        render_groups(rows, "md").rstrip(),
        "",
        group_caption(rows, LAYOUTS[task]) + ".",
    ]
    best = _best_per_model(rows, headline)
    if len(best) > 0:
        lines += ["", "## Best per model", "", render_groups(best, "md").rstrip()]
    bad = [o for o in report.outcomes if o.status not in ("completed", "skipped-completed")]
    if bad:
        lines += ["", "## Runs that did not complete", ""]
        for o in sorted(bad, key=lambda o: (o.task.index, o.task.seed)):
            where = f" ({o.run_dir})" if o.run_dir else ""
            message = f": {o.message}" if o.message else ""
            lines.append(f"- {o.task.label}: {o.status.removeprefix('skipped-')}{where}{message}")
    return "\n".join(lines) + "\n"


def _best_per_model(rows: list[dict[str, Any]], headline: str = "rmse") -> list[dict[str, Any]]:
    """The config with the lowest mean headline score for each model (rows come sorted by it)."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get(headline) is not None:
            best.setdefault(str(row.get("model")), row)
    return list(best.values())


def _plot_keys(plan: SweepPlan, rows: list[dict[str, Any]]) -> list[Path]:
    """sweep_<key>.png: the mean ± std headline score (test RMSE, bits per byte) over seeds against
    each swept key, with the task's baseline (persistence, the n-gram) dashed."""
    from seqbench.artifacts.plots import plot_sweep
    from seqbench.results.compare import BASELINE, HEADLINE, SCORE_NAMES

    task = plan_task(plan)
    headline, baseline = HEADLINE[task], BASELINE[task]
    by_id = {row["config_id"]: row for row in rows if row.get("config_id")}
    points = {task.config_id: task.point for task in plan.tasks}
    baselines = sorted({by_id[c][baseline] for c in points if c in by_id} - {None})
    paths = []
    for key, values in plan.grid.items():
        lines: dict[str, list[tuple[float | None, float | None]]] = {}
        for cid, point in points.items():
            others = point_label({k: v for k, v in point.items() if k != key}) or SCORE_NAMES[headline]
            line = lines.setdefault(others, [(None, None)] * len(values))
            row = by_id.get(cid)
            if row is not None:
                line[values.index(point[key])] = (row[headline], row[f"{headline}_std"])
        path = plan.sweep_dir / f"sweep_{re.sub(r'[^A-Za-z0-9._-]+', '-', key)}.png"
        title = f"{plan.name}: {SCORE_NAMES[headline]} vs {key}"
        plot_sweep(
            key, [value_text(v) for v in values], lines, baselines, path, title,
            score=SCORE_NAMES[headline], baseline=SCORE_NAMES[baseline],
        )  # fmt: skip
        paths.append(path)
    return paths
