"""`seqbench train`: from its flags to runs, and their results on the terminal.

A spec (with `--set` and the flags as overrides) is one run, or one run per seed of `seeds` (then a
table of the seeds and their mean ± std); `--resume RUN_DIR` continues an interrupted run instead.
The expectations (`--expect`, the spec's `expect:`) are checked before the runs and judged after.
The runs themselves are `seqbench.run.experiment`'s.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from seqbench.errors import RunFailed, SeqbenchError
from seqbench.io import dumps_strict


def train_overrides(
    sets: list[str] | None = None,
    name: str | None = None,
    backend: str | None = None,
    seed: int | None = None,
    seeds: int | None = None,
) -> list[str]:
    """`--set KEY=VALUE`s and the flags that stand for one (`--name`, `--backend`, `--seed`,
    `--seeds`) as a spec's overrides; `--seed` and `--seeds` together are a SeqbenchError."""
    flags = (("name", name), ("model.backend", backend), ("seed", seed), ("seeds", seeds))
    overrides = list(sets or []) + [f"{k}={v}" for k, v in flags if v is not None]
    if seed is not None and seeds is not None:
        raise SeqbenchError("give --seed S (one run) or --seeds N (seeds 0..N-1), not both")
    return overrides


def train_from_flags(
    out: Console,
    config: Path | None = None,
    resume: Path | None = None,
    overrides: list[str] | None = None,
    expect: list[str] | None = None,
    junit: Path | None = None,
    results: Path = Path("results"),
    data_dir: Path = Path("data"),
    quiet: bool = False,
    as_json: bool = False,
) -> None:
    """Train the spec `config` with `overrides` (or resume the run folder `resume`), print the result
    on `out` (metrics.json on stdout with `as_json`), judge the expectations, and raise for a run
    that did not complete: RunFailed (exit 1) when one diverged, RunInterrupted (exit 130) on Ctrl-C."""
    from seqbench.ci.checks import conclude_train, train_expectations
    from seqbench.spec import load_spec

    overrides = list(overrides or [])
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
        train_seeds(
            spec, out, results, data_dir, quiet, as_json, lambda runs: conclude_train(runs, checks, junit)
        )
        return

    from seqbench.results.tables import result_table
    from seqbench.run.experiment import RunLog, resume_experiment, run_experiment

    log = RunLog(None if quiet else sys.stderr)
    if spec is None:
        result = resume_experiment(resume, data_dir, log)
    else:
        result = run_experiment(spec, results, data_dir, log)
    if as_json:
        print(dumps_strict(result.metrics, indent=2))
    elif result.metrics.get("epochs_run") == 0:  # stopped before its first epoch: no result to show
        out.print(f"no epoch finished, so there are no scores; run folder: {result.run_dir}")
    else:
        out.print(result_table(result.metrics))
        out.print(f"run folder: {result.run_dir}")
    if result.status != "interrupted":
        conclude_train([result.metrics], checks, junit)
    result.raise_for_status()


def train_seeds(
    spec: Any,
    out: Console,
    results: Path,
    data_dir: Path,
    quiet: bool,
    as_json: bool,
    conclude: Callable[[list[Any]], None],
) -> None:
    """A spec with several seeds: one run each, in turn; then each seed's result and mean ± std,
    `conclude` on their metrics, and RunFailed when some seed diverged."""
    from seqbench.results.groups import group_rows, rich_group_table
    from seqbench.results.tables import seeds_table
    from seqbench.run.experiment import RunLog, run_seeds

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
        out.print(seeds_table(done))
        (row,) = group_rows([{**r.metrics, "run_dir": str(r.run_dir)} for r in done])
        out.print(rich_group_table([row], min(out.width, 120)))  # the seeds' table has the rest
        out.print(f"seeds beating persistence: {row['beats_persistence']}/{row['n']}")
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
