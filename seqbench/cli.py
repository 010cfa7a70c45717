"""The `seqbench` command line: one small function per command, no logic of its own.

User errors are `SeqbenchError`s, printed as one line on stderr with their exit
code (2 for bad input, 1 for a failed run); `--debug` shows the traceback.
"""

from __future__ import annotations

import functools
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

import seqbench
from seqbench.errors import SeqbenchError

app = typer.Typer(
    help="Honest, reproducible experiments with small sequence models (MinGRU, GRU, Mamba) on time series.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
# a pipe or CI log gets a wide table rather than one squeezed into 80 columns
stdout = Console(width=None if sys.stdout.isatty() else 200)
stderr = Console(stderr=True)
state = {"debug": False}

F = TypeVar("F", bound=Callable[..., Any])

ResultsDir = Annotated[Path, typer.Option("--results", help="Folder of run folders.")]
DataDir = Annotated[Path, typer.Option("--data-dir", help="Folder of cached downloads.")]


def handles_errors(command: F) -> F:
    """Run a command with its failures said in one or two lines, and its exit code.

    SeqbenchError: its message and exit code (2 bad input, 1 failed run, 130 interrupted);
    Ctrl-C outside a run: exit 130; any other failed read or write (OSError): exit 1. Warnings
    are one `warning: ...` line each. `--debug` lets the exception and its traceback through.
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
            if state["debug"]:
                raise
            print(f"{exc.label}: {exc}", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise typer.Exit(130) from None
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


@app.command()
@handles_errors
def train(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Experiment spec (YAML).")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a key: --set train.lr=3e-3.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Run-name prefix (default: the spec's).")] = None,
    backend: Annotated[str | None, typer.Option(help="numpy or torch.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", help="Continue an interrupted run from its folder (instead of --config)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress; print only the result.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics.json to stdout.")] = False,
    results: ResultsDir = Path("results"),
    data_dir: DataDir = Path("data"),
) -> None:
    """Train one run and write its run folder.

    Ctrl-C stops it after the current batch (status interrupted, exit 130); `--resume RUN_DIR`
    continues it to the same result as an uninterrupted run.

    Example: seqbench train --config experiments/quickstart.yaml --set train.epochs=5
    """
    from seqbench.spec import load_spec

    overrides = list(set_ or [])
    overrides += [
        f"{k}={v}" for k, v in (("name", name), ("model.backend", backend), ("seed", seed)) if v is not None
    ]
    if resume is not None and (config is not None or overrides):
        raise SeqbenchError(
            "--resume continues a run exactly as it was started: "
            "do not combine it with --config, --set, --name, --backend or --seed"
        )
    if resume is None and config is None:
        raise SeqbenchError(
            "missing --config SPEC (or --resume RUN_DIR); e.g. seqbench train -c experiments/quickstart.yaml"
        )
    spec = load_spec(config, overrides, data_dir) if config is not None else None  # before the slow imports

    from seqbench.experiment import RunLog, resume_experiment, run_experiment

    log = RunLog(None if quiet else sys.stderr)
    if spec is None:
        result = resume_experiment(resume, data_dir, log)
    else:
        result = run_experiment(spec, results, data_dir, log)
    if as_json:
        print(json.dumps(result.metrics, indent=2, default=str))
    else:
        stdout.print(summary_table(result.metrics))
        stdout.print(f"run folder: {result.run_dir}")
    result.raise_for_status()


def summary_table(metrics: dict[str, Any]) -> Table:
    """Test metrics of the model next to the baselines, in original units."""
    table = Table(title=f"{metrics['name']}: {metrics['model']} on {metrics['dataset']} (test split)")
    columns = ("rmse", "mae", "r2", "mape", "direction_accuracy")
    table.add_column("forecaster")
    for column in columns:
        table.add_column(column.replace("direction_accuracy", "direction"), justify="right")
    table.add_column("skill", justify="right")
    persistence_rmse = metrics["baselines"]["persistence"]["rmse"]
    rows = {metrics["model"]: metrics["test"], **metrics["baselines"]}
    for label, values in rows.items():
        skill = 1 - values["rmse"] / persistence_rmse if persistence_rmse else float("nan")
        table.add_row(label, *(f"{values.get(c, float('nan')):.4g}" for c in columns), f"{skill:+.3f}")
    table.caption = "skill = 1 - RMSE / persistence RMSE (> 0 beats persistence)"
    return table


@app.command()
@handles_errors
def compare(
    runs: Annotated[
        list[str] | None, typer.Argument(help="Run folders, folders above them, or globs.")
    ] = None,
    sort: Annotated[str | None, typer.Option(help="Sort by a column; '-rmse' for descending.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, md, csv or json.")] = "table",
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write validation curves overlaid to this PNG.")] = None,
    results: ResultsDir = Path("results"),
) -> None:
    """Put runs side by side, every score next to the persistence and linear baselines.

    Example: seqbench compare results/aapl-mingru --sort rmse --format md
    """
    from seqbench.compare import (
        compare_rows,
        find_runs,
        load_runs,
        load_val_curves,
        render,
        rich_table,
        sort_rows,
    )
    from seqbench.plots import plot_val_curves

    if as_json:
        fmt = "json"
    if fmt not in ("table", "md", "csv", "json"):
        raise SeqbenchError(f"unknown --format '{fmt}'; choose table, md, csv or json")
    loaded = load_runs(find_runs(list(runs or []), results))
    rows = compare_rows(loaded)
    if sort:
        rows = sort_rows(rows, sort)
    if fmt == "table":
        stdout.print(rich_table(rows, stdout.width))
    else:
        sys.stdout.write(render(rows, fmt))
    if plot:
        plot_val_curves(load_val_curves(loaded), plot)
        print(f"wrote {plot}", file=sys.stderr)


@app.command()
@handles_errors
def download(
    ticker: Annotated[str, typer.Argument(help="Yahoo Finance ticker, e.g. AAPL.")],
    start: Annotated[str, typer.Option(help="First date, YYYY-MM-DD.")] = "2010-01-01",
    end: Annotated[str | None, typer.Option(help="Last date, YYYY-MM-DD (default: today).")] = None,
    interval: Annotated[str, typer.Option(help="Bar size, e.g. 1d, 1wk.")] = "1d",
    force: Annotated[bool, typer.Option("--force", help="Download again even if cached.")] = False,
    data_dir: DataDir = Path("data"),
) -> None:
    """Fetch daily OHLCV with yfinance into data/TICKER.csv (plus a JSON sidecar).

    Example: seqbench download AAPL --start 2010-01-01 --end 2023-12-31
    """
    from seqbench.data.yahoo import download as fetch_ticker

    path = fetch_ticker(ticker, start=start, end=end, interval=interval, data_dir=data_dir, force=force)
    print(path)


@app.command()
@handles_errors
def datasets(data_dir: DataDir = Path("data")) -> None:
    """List the built-in datasets and cached downloads.

    Example: seqbench datasets
    """
    from seqbench.data.sources import list_datasets

    table = Table(title="datasets (use the name as `dataset:` in a spec)")
    for column in ("name", "source", "rows", "from", "to"):
        table.add_column(column, no_wrap=True)
    table.add_column("columns")
    for info in list_datasets(data_dir):
        table.add_row(
            str(info["name"]),
            str(info["source"]),
            str(info.get("rows", "")),
            str(info.get("first_date", ""))[:10],
            str(info.get("last_date", ""))[:10],
            ", ".join(info.get("columns", [])),
        )
    stdout.print(table)


@app.command()
@handles_errors
def gradcheck(
    model: Annotated[str | None, typer.Option(help="Check only this model (default: every model).")] = None,
    tolerance: Annotated[float, typer.Option(min=0, help="Largest relative error that passes.")] = 1e-6,
) -> None:
    """Check every NumPy model's backward pass against finite differences (float64).

    Exit 1 if any parameter's relative error is above the tolerance.

    Example: seqbench gradcheck --model gru --tolerance 1e-6
    """
    from seqbench.errors import RunFailed
    from seqbench.gradcheck import gradcheck_models
    from seqbench.models.registry import model_names

    results = gradcheck_models([model] if model else model_names())
    table = Table(title=f"gradient check: analytic vs finite differences (tolerance {tolerance:g})")
    for column in ("model", "parameter", "shape"):
        table.add_column(column)
    for column in ("checked", "max rel. error", "ok"):
        table.add_column(column, justify="right")
    failed = 0
    for r in results:
        ok = r.max_rel_error <= tolerance
        failed += not ok
        shape = "x".join(map(str, r.shape)) or "scalar"
        verdict = "ok" if ok else "FAIL"
        table.add_row(r.model, r.name, shape, str(r.checked), f"{r.max_rel_error:.2e}", verdict)
    stdout.print(table)
    if failed:
        raise RunFailed(f"gradient check failed: {failed} of {len(results)} parameters above {tolerance:g}")


def main() -> None:
    app(prog_name="seqbench")
