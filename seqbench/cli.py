"""The `seqbench` command line: one small function per command, no logic of its own.

Each command parses its options, calls one function of the package and prints what it gives back;
docs/commands.md is the full reference. User errors are `SeqbenchError`s, printed as one line on
stderr with their exit code (2 for bad input, 1 for a failed run); `--debug` shows the traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from typer import Argument, Option

import seqbench
from seqbench.cli_syntax import Command, Group, handles_errors, state
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

# options that several commands share
Config = Annotated[Path | None, Option("--config", "-c", help="Experiment spec (YAML).")]
Sets = Annotated[list[str] | None, Option("--set", metavar="KEY=VALUE", help="Override a key: lr=3e-3.")]
Quiet = Annotated[bool, Option("--quiet", "-q", help="No progress; print only the result.")]
Runs = Annotated[list[str] | None, Argument(help="Run folders, folders above them (a sweep), or globs.")]
ResultsDir = Annotated[Path, Option("--results", help="Folder of run folders.")]
DataDir = Annotated[Path, Option("--data-dir", help="Folder of cached downloads.")]
Force = Annotated[bool, Option("--force", help="Replace the -o file if it exists.")]
GROUP_HELP = "One row per config, mean ± std over its seeds (default: when a config has several runs)."
Grouped = Annotated[bool | None, Option("--group/--no-group", help=GROUP_HELP)]
Junit = Annotated[Path | None, Option("--junit", help="Write the checks as JUnit XML (one test case each).")]


def _version(value: bool) -> None:
    if value:
        print(f"seqbench {seqbench.__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, Option("--debug", help="Show full tracebacks.")] = False,
    version: Annotated[
        bool, Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Run `seqbench COMMAND --help` for each command's options and an example."""
    state["debug"] = debug


@app.command(cls=Command)
@handles_errors
def train(
    config: Config = None,
    set_: Sets = None,
    name: Annotated[str | None, Option(help="Run-name prefix (default: the spec's).")] = None,
    backend: Annotated[str | None, Option(help="numpy or torch.")] = None,
    seed: Annotated[int | None, Option(help="Random seed (one run, instead of any seeds).")] = None,
    seeds: Annotated[int | None, Option(min=1, help="Run seeds 0..N-1, then mean ± std.")] = None,
    resume: Annotated[Path | None, Option(help="Continue an interrupted run (instead of --config).")] = None,
    quiet: Quiet = False,
    as_json: Annotated[bool, Option("--json", help="Print metrics.json (a list with --seeds).")] = False,
    expect: Annotated[list[str] | None, Option(metavar="CHECK", help="Judge: --expect 'skill > 0'.")] = None,
    junit: Junit = None,
    results: ResultsDir = Path("results"),
    data_dir: DataDir = Path("data"),
) -> None:
    """Train one run and write its run folder; with several seeds, one run per seed, then mean ± std.

    Example: seqbench train --config experiments/quickstart.yaml --set train.epochs=5
    """
    from seqbench.commands.train import train_from_flags, train_overrides

    overrides = train_overrides(set_, name, backend, seed, seeds)
    train_from_flags(stdout, config, resume, overrides, expect, junit, results, data_dir, quiet, as_json)


@app.command(cls=Command)
@handles_errors
def compare(
    runs: Runs = None,
    sort: Annotated[str | None, Option(help="Sort by a column; '-rmse' for descending.")] = None,
    fmt: Annotated[str, Option("--format", "-f", help="table, md, csv or json.")] = "table",
    as_json: Annotated[bool, Option("--json", help="Same as --format json.")] = False,
    plot: Annotated[Path | None, Option(help="Write validation curves overlaid to this PNG.")] = None,
    group: Grouped = None,
    against: Annotated[
        str | None, Option(help="dm_p against this run or reference file (not persistence).")
    ] = None,
    strict: Annotated[bool, Option("--strict", help="Refuse runs on different data or splits.")] = False,
    margin: Annotated[
        str | None,
        Option(
            "--fail-if-worse", help="Exit 1 when a run is significantly worse than --against by this (2%)."
        ),
    ] = None,
    level: Annotated[float, Option(help="--fail-if-worse: the DM test's significance level.")] = 0.05,
    junit: Junit = None,
    results: ResultsDir = Path("results"),
) -> None:
    """Put runs side by side, every score next to the persistence and linear baselines.

    A config's runs become one row (mean ± std); `--against REF --fail-if-worse 2%` is the
    regression gate. Example: seqbench compare results/aapl-mingru --sort rmse --format md
    """
    from seqbench.commands.compare import show_comparison

    fmt = "json" if as_json else fmt
    show_comparison(runs, results, stdout, fmt, sort, group, against, strict, margin, level, junit, plot)


@app.command(cls=Command)
@handles_errors
def report(
    runs: Runs = None,
    output: Annotated[Path, Option("--output", "-o", help="The HTML file to write.")] = Path("report.html"),
    group: Grouped = None,
    force: Force = False,
    results: ResultsDir = Path("results"),
) -> None:
    """Write one self-contained HTML page of runs: compare's table, then each run's scores, pictures and spec.

    Example: seqbench report results/sweeps/aapl-sweep -o report.html
    """
    from seqbench.report.write import report_from_flags

    print(report_from_flags(runs, results, output, group, force).summary, file=sys.stderr)


@app.command(cls=Command)
@handles_errors
def sweep(
    config: Config = None,
    grid: Annotated[
        list[str] | None, Option(metavar="KEY=V1,V2", help="A swept key and its values: --grid lr=1e-3,3e-3.")
    ] = None,
    set_: Sets = None,
    seeds: Annotated[int | None, Option(min=1, help="Seeds 0..N-1 per point (default: the spec's).")] = None,
    workers: Annotated[int | None, Option(min=1, help="Runs at a time (default: one per CPU core).")] = None,
    name: Annotated[str | None, Option(help="Sweep name: results/sweeps/NAME (default: the spec's).")] = None,
    executor: Annotated[str, Option(help="local (worker processes) or ray (Ray tasks).")] = "local",
    address: Annotated[str | None, Option(help="With --executor ray: a Ray cluster's address.")] = None,
    quiet: Quiet = False,
    results: ResultsDir = Path("results"),
    data_dir: DataDir = Path("data"),
) -> None:
    """Run a grid of specs, once per seed, in parallel; resumable; summarised in its sweep folder.

    Example: seqbench sweep -c experiments/aapl_sweep.yaml --grid model.hidden_size=32,64
    --grid train.lr=1e-3,3e-3 --seeds 3 --workers 2
    """
    from seqbench.commands.compare import print_groups
    from seqbench.sweeps.sweep import sweep_from_flags

    report, summary = sweep_from_flags(
        config, grid, set_, seeds, name, results, data_dir, executor, workers, address, quiet
    )
    print_groups(summary.rows, stdout)
    stdout.print(f"sweep folder: {report.plan.sweep_dir} ({', '.join(path.name for path in summary.files)})")
    report.raise_for_status()


@app.command(cls=Command)
@handles_errors
def reference(
    run: Annotated[Path, Argument(help="A completed run folder.")],
    output: Annotated[Path, Option("--output", "-o", help="The reference file to write (.json).")],
    force: Force = False,
) -> None:
    """Write a run's scores and test losses to a small, diff-able file for the regression gate.

    Example: seqbench reference results/smoke/RUN -o smoke-reference.json
    """
    from seqbench.ci.reference import reference_from_flags

    print(reference_from_flags(run, output, force), file=sys.stderr)


@app.command(cls=Command)
@handles_errors
def convert(
    source: Annotated[Path, Argument(help="A run folder (with --to) or a weights file (with --config).")],
    to: Annotated[str | None, Option(help="Export to this peer: mambapy, mamba_ssm, mingru_pytorch.")] = None,
    output: Annotated[Path | None, Option("--output", "-o", help="With --to: the .pt or .npz file.")] = None,
    blocks_only: Annotated[bool, Option("--blocks-only", help="With --to: no embed.*, head.*.")] = False,
    force: Annotated[bool, Option("--force", help="With --to: replace the -o file if it exists.")] = False,
    config: Annotated[Path | None, Option("--config", "-c", help="Import into this spec's model.")] = None,
    set_: Sets = None,
    name: Annotated[str | None, Option(help="Run-name prefix of the new run (default: the spec's).")] = None,
    quiet: Annotated[bool, Option("--quiet", "-q", help="Print only the result.")] = False,
    as_json: Annotated[bool, Option("--json", help="Import: print metrics.json to stdout.")] = False,
    results: ResultsDir = Path("results"),
    data_dir: DataDir = Path("data"),
) -> None:
    """Move weights between seqbench and the reference implementations (mambapy / mamba_ssm, minGRU-pytorch).

    Export a run's weights in a peer's names and layout, or import a peer's file as a run folder.

    Example: seqbench convert results/aapl-mamba/RUN --to mambapy -o aapl_mamba.pt;
    seqbench convert aapl_mamba.pt --config experiments/aapl_mamba.yaml --name aapl-mambapy
    """
    from seqbench.convert.files import convert_from_flags
    from seqbench.results.tables import result_table

    result = convert_from_flags(
        source, to, output, blocks_only, force, config, set_, name, as_json, quiet, results, data_dir
    )
    if result is not None and as_json:
        print(dumps_strict(result.metrics, indent=2))
    elif result is not None:
        stdout.print(result_table(result.metrics))
        stdout.print(f"run folder: {result.run_dir}")


@app.command(cls=Command)
@handles_errors
def download(
    ticker: Annotated[
        str, Argument(help="A Yahoo Finance ticker (AAPL), tinyshakespeare, enwik8 or ETTh1 (h2, m1, m2).")
    ],
    start: Annotated[str, Option(help="First date, YYYY-MM-DD.")] = "2010-01-01",
    end: Annotated[str | None, Option(help="Last date, YYYY-MM-DD (default: today).")] = None,
    interval: Annotated[str, Option(help="Bar size, e.g. 1d, 1wk.")] = "1d",
    force: Annotated[bool, Option("--force", help="Download again even if cached.")] = False,
    data_dir: DataDir = Path("data"),
) -> None:
    """Fetch daily OHLCV with yfinance into data/TICKER.csv, or a text corpus or ETT file into data/.

    Example: seqbench download AAPL --start 2010-01-01 --end 2023-12-31; seqbench download tinyshakespeare
    """
    from seqbench.data.sources import download as download_data

    print(download_data(ticker, data_dir, start, end, interval, force))


@app.command(cls=Command)
@handles_errors
def predict(
    run: Annotated[Path, Argument(help="A forecast run folder.")],
    data: Annotated[
        Path | None, Option(help="A CSV with the run's columns (default: the run's own data).")
    ] = None,
    output: Annotated[
        Path | None, Option("--output", "-o", help="Also write the forecast to this CSV.")
    ] = None,
    force: Force = False,
    data_dir: DataDir = Path("data"),
) -> None:
    """Forecast the next `horizon` steps after the last row of the run's data (or of --data).

    Example: seqbench predict results/aapl-mingru/RUN -o forecast.csv
    """
    from seqbench.artifacts.runs import check_output
    from seqbench.io import atomic_write_text
    from seqbench.results.tables import forecast_table
    from seqbench.trained.predict import predict_run

    if output is not None:
        check_output(output, force, "forecast.csv")
    forecast = predict_run(run, data, data_dir)
    print(f"forecast of {forecast.label} after its last row, {forecast.last_date} ({forecast.rows} rows):")
    stdout.print(forecast_table(forecast))
    if output is not None:
        atomic_write_text(output, forecast.frame.to_csv(index=False))
        print(f"wrote {output}", file=sys.stderr)


@app.command(cls=Command)
@handles_errors
def sample(
    run: Annotated[Path, Argument(help="An LM run folder.")],
    prompt: Annotated[
        str, Option(help="The text to continue (its bytes as given).", show_default="a newline")
    ] = "\n",
    length: Annotated[int, Option(help="Bytes to generate, 1 to 1,000,000.")] = 500,
    temperature: Annotated[
        float, Option(help="Softmax temperature, 0.001 or more; 0 = the likeliest byte.")
    ] = 0.8,
    top_k: Annotated[
        int, Option(help="Sample among the k likeliest bytes, 1 to 256 (256: every byte).")
    ] = 40,
    seed: Annotated[int, Option(min=0, help="Random seed of the sampling.")] = 0,
    data_dir: DataDir = Path("data"),
) -> None:
    """Generate text from a trained language model, one byte at a time in its recurrent mode.

    Example: seqbench sample results/shakespeare-mamba/RUN --prompt "ROMEO:" --length 500 --top-k 40
    """
    from seqbench.trained.sampling import sample_run

    given = prompt.encode("utf-8", "surrogateescape")  # bytes that are not UTF-8 came as surrogates
    text = sample_run(run, given, length, temperature, top_k, seed, data_dir)
    sys.stdout.buffer.write(text + b"\n")  # the prompt and the generated bytes
    sys.stdout.flush()


@app.command(cls=Command)
@handles_errors
def datasets(data_dir: DataDir = Path("data")) -> None:
    """List the built-in datasets and cached downloads.

    Example: seqbench datasets
    """
    from seqbench.data.sources import list_datasets
    from seqbench.results.tables import datasets_table

    stdout.print(datasets_table(list_datasets(data_dir)))


@app.command(cls=Command)
@handles_errors
def gradcheck(
    model: Annotated[str | None, Option(help="Check only this model (default: every model).")] = None,
    tolerance: Annotated[float, Option(min=0, help="Largest relative error that passes.")] = 1e-6,
    lm: Annotated[
        bool, Option("--lm", help="Also the language models: byte embedding in, cross-entropy out.")
    ] = False,
) -> None:
    """Check every NumPy model's backward pass against finite differences (float64).

    Example: seqbench gradcheck --model gru --tolerance 1e-6 --lm
    """
    from seqbench.checks.gradcheck import gradcheck_all, raise_for_failures
    from seqbench.results.tables import gradcheck_table

    results = gradcheck_all(model, lm)
    stdout.print(gradcheck_table(results, tolerance))
    raise_for_failures(results, tolerance)


@app.command(cls=Command)
@handles_errors
def audit(
    config: Annotated[Path, Option("--config", "-c", help="Experiment spec (YAML).")],
    set_: Sets = None,
    data_dir: DataDir = Path("data"),
) -> None:
    """Check that the spec's model and data pipeline never look at the future; exit 1 on a leak.

    Example: seqbench audit --config experiments/quickstart.yaml --set model.name=mamba
    """
    from seqbench.spec import load_spec

    spec = load_spec(config, list(set_ or []), data_dir)  # a bad spec is said before the slow imports

    from seqbench.checks.audit import audit_spec
    from seqbench.results.tables import audit_table

    report = audit_spec(spec, data_dir)
    stdout.print(audit_table(report, f"{spec.model.name} on {spec.dataset.label}"))
    report.raise_for_leaks()


def main() -> None:
    app(prog_name="seqbench")
