"""Put runs side by side: rows from their metrics.json, sorted and rendered as a table.

The pipeline is `seqbench.artifacts.runs.find_runs` (paths) -> `load_runs` (metrics dicts) -> `compare_rows`
(one flat row per run, keys = its task's columns: `COLUMNS`, `LM_COLUMNS`) -> `sort_rows` ->
`render` (md, csv, json, table) or `rich_table`.
Missing or non-finite values are None in a row and blank when rendered.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from seqbench.artifacts.predictions_file import find_forecasts
from seqbench.artifacts.runs import find_runs
from seqbench.errors import SeqbenchError, shown
from seqbench.io import dumps_strict

BASELINE_NAMES = ("persistence", "seasonal", "linear")  # a forecast's baselines, as metrics.json names them
# a long-horizon run's MSE and MAE in the scaler's units (metrics.json `scaled`, as the papers quote
# them): the model's, seasonal persistence's and best_baseline's; blank for runs without `scaled`
SCALED_COLUMNS = [
    "scaled_mse", "scaled_mae",
    "seasonal_scaled_mse", "seasonal_scaled_mae",
    "best_scaled_mse", "best_scaled_mae",
]  # fmt: skip
COLUMNS = [
    "run", "model", "backend", "dataset", "data", "hidden", "lr", "params", "epochs", "s/epoch",
    "rmse", "mae", "r2", "persistence_rmse", "linear_rmse", "skill", "dm_p", "skill_best", "best_baseline",
    *SCALED_COLUMNS, "status",
]  # fmt: skip
# a language model's row: bits per byte on its held-out bytes, next to its baselines on the same bytes
LM_COLUMNS = [
    "run", "model", "backend", "dataset", "data", "hidden", "lr", "params", "epochs", "s/epoch",
    "bits_per_byte", "nats", "perplexity", "ngram_bpb", "lzma_bpb", "unigram_bpb", "status",
]  # fmt: skip
TASK_COLUMNS = {"forecast": COLUMNS, "lm": LM_COLUMNS}
HEADLINE = {"forecast": "rmse", "lm": "bits_per_byte"}  # the score a task's runs are sorted by
BASELINE = {"forecast": "persistence_rmse", "lm": "ngram_bpb"}  # the baseline quoted next to it
SCORE_NAMES = {  # column -> how a summary or plot says it
    "rmse": "test RMSE", "persistence_rmse": "persistence",
    "bits_per_byte": "bits per byte", "ngram_bpb": "n-gram",
}  # fmt: skip
LM_OPTIONAL_COLUMNS = ["backend", "data", "params", "s/epoch", "lr", "hidden", "status", "epochs", "nats"]
TEXT_COLUMNS = {  # left-aligned
    "run", "model", "backend", "dataset", "data", "status", "config", "config_id", "best_baseline",
}  # fmt: skip
# shown in md, the terminal and the report only when some row has a value (csv and json: always)
SPARSE_COLUMNS = set(SCALED_COLUMNS)
SKILL_NOTE = (
    "skill = 1 - RMSE / persistence RMSE; skill_best = 1 - RMSE / RMSE of best_baseline, the one of "
    "persistence, seasonal and linear with the lowest test RMSE (> 0 beats every baseline)"
)
SCALED_NOTE = (
    "scaled_mse, scaled_mae: the model's test MSE and MAE in the scaler's units, as the long-horizon "
    "papers quote them, next to seasonal persistence's (seasonal_) and best_baseline's (best_)"
)
FORMATS = ("table", "md", "csv", "json")
STATUS_STYLES = {"completed": "green", "diverged": "red", "failed": "red", "interrupted": "yellow"}


def load_val_curves(runs: Iterable[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """history.csv of each loaded run, keyed by its table label; runs without one are skipped."""
    curves: dict[str, pd.DataFrame] = {}
    for run in runs:
        path = Path(run.get("run_dir", ".")) / "history.csv"
        try:
            curves[run_label(run)] = pd.read_csv(path)
        except (OSError, ValueError) as err:
            warnings.warn(f"no validation curve for {run_label(run)}: {err}", stacklevel=2)
    return curves


# --- rows --------------------------------------------------------------------------------------


def compare_rows(runs: Iterable[dict[str, Any] | None]) -> list[dict[str, Any]]:
    """One flat row per run with the keys of `COLUMNS`; None entries (unreadable runs) are skipped."""
    return [_row(run) for run in runs if run is not None]


def data_fingerprint(run: dict[str, Any]) -> str | None:
    """The first 12 hex digits of the sha256 of the data a run used (metrics.json `data`)."""
    sha = _section(run, "data").get("sha256")
    return shown(sha[:12]) if isinstance(sha, str) else None


def headline_scores(run: dict[str, Any]) -> tuple[float | None, float | None]:
    """(the run's headline score, its baseline's) from metrics.json: test RMSE and persistence's,
    or an LM's bits per byte and the n-gram's."""
    task = task_of(run)
    row = _row(run)
    return row[HEADLINE[task]], row[BASELINE[task]]


def task_of(run: dict[str, Any]) -> str:
    """A run's task (metrics.json `task`; runs from before tasks are forecasts)."""
    task = run.get("task")
    return task if task in TASK_COLUMNS else "forecast"


def by_task(runs: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Runs by task, forecasts first."""
    out: dict[str, list[dict[str, Any]]] = {task: [] for task in TASK_COLUMNS}
    for run in runs:
        out[task_of(run)].append(run)
    return {task: members for task, members in out.items() if members}


def _row(run: dict[str, Any]) -> dict[str, Any]:
    if task_of(run) == "lm":
        return _lm_row(run)
    test = _section(run, "test")
    baselines = _section(run, "baselines")
    rmse = _number(test.get("rmse"))
    persistence_rmse = _number(_section(baselines, "persistence").get("rmse"))
    best = best_baseline(baselines)
    scaled = _section(run, "scaled")  # None for a run before ETT, or under a transform
    return {
        **_identity(run),
        "rmse": rmse,
        "mae": _number(test.get("mae")),
        "r2": _number(test.get("r2")),
        "persistence_rmse": persistence_rmse,
        "linear_rmse": _number(_section(baselines, "linear").get("rmse")),
        "skill": _skill(rmse, persistence_rmse),
        "dm_p": _dm_p(run),
        "skill_best": _skill(rmse, _number(_section(baselines, best).get("rmse")) if best else None),
        "best_baseline": best,
        "scaled_mse": _number(_section(scaled, "model").get("mse")),
        "scaled_mae": _number(_section(scaled, "model").get("mae")),
        "seasonal_scaled_mse": _number(_section(scaled, "seasonal").get("mse")),
        "seasonal_scaled_mae": _number(_section(scaled, "seasonal").get("mae")),
        "best_scaled_mse": _number(_section(scaled, best).get("mse")) if best else None,
        "best_scaled_mae": _number(_section(scaled, best).get("mae")) if best else None,
        "status": _text(run.get("status")),
    }


def best_baseline(baselines: dict[str, Any]) -> str | None:
    """The name of the baseline with the lowest test RMSE (original units) among `BASELINE_NAMES`
    that metrics.json `baselines` holds (runs before seasonal persistence: persistence and linear);
    a tie goes to the first. None when none has a finite RMSE."""
    scores = {name: _number(_section(baselines, name).get("rmse")) for name in BASELINE_NAMES}
    present = {name: score for name, score in scores.items() if score is not None}
    return min(present, key=lambda name: present[name]) if present else None


def _identity(run: dict[str, Any]) -> dict[str, Any]:
    """The columns every task's row starts with: which run, model and data, its size and speed."""
    config = _section(run, "config")
    return {
        "run": run_label(run),
        "model": _text(run.get("model")),
        "backend": _text(run.get("backend")),
        "dataset": _text(run.get("dataset")),
        "data": data_fingerprint(run),
        "hidden": _number(config.get("hidden_size", run.get("hidden_size"))),  # top level: older runs
        "lr": _number(config.get("lr", run.get("lr"))),
        "params": _number(run.get("params")),
        "epochs": _number(run.get("epochs_run")),
        "s/epoch": _number(run.get("seconds_per_epoch")),
    }


def _lm_row(run: dict[str, Any]) -> dict[str, Any]:
    """An LM run's row: its held-out scores (test, or val for a split without test) and baselines."""
    held = _section(run, _section(run, "headline").get("split") or "test")
    baselines = _section(run, "baselines")
    return {
        **_identity(run),
        "bits_per_byte": _number(held.get("bits_per_byte")),
        "nats": _number(held.get("nats")),
        "perplexity": _number(held.get("perplexity")),
        "ngram_bpb": _number(_section(baselines, "ngram").get("bits_per_byte")),
        "lzma_bpb": _number(_section(baselines, "lzma").get("bits_per_byte")),
        "unigram_bpb": _number(_section(baselines, "unigram").get("bits_per_byte")),
        "status": _text(run.get("status")),
    }


def run_label(run: dict[str, Any]) -> str:
    return shown(f"{run.get('name') or '?'}/{run.get('run_id') or '?'}", 200)


def _section(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    """A nested dict, or {} when it is missing or null."""
    value = mapping.get(key)
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    if isinstance(value, dict):  # e.g. a model written as {"name": ...}
        value = value.get("name")
    return None if value is None else shown(value, 200)  # metrics.json is untrusted: no escape codes


def _number(value: Any) -> int | float | None:
    """An int or finite float; None for missing, non-numeric, NaN or infinite values."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _skill(rmse: float | None, reference_rmse: float | None) -> float | None:
    """1 - rmse / reference_rmse: above 0 means the model beats the reference (persistence for
    `skill`, best_baseline for `skill_best`)."""
    if rmse is None or not reference_rmse:
        return None
    return 1.0 - rmse / reference_rmse


def sort_rows(rows: list[dict[str, Any]], key: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows sorted by column `key` (leading '-' for descending); missing values always last."""
    columns = columns or COLUMNS
    descending = key.startswith("-")
    column = key.lstrip("-+")
    if column not in columns:
        nearest = difflib.get_close_matches(column, columns, n=1)
        hint = f"did you mean '{nearest[0]}'? " if nearest else ""
        raise SeqbenchError(f"unknown sort key '{column}'; {hint}valid keys: {', '.join(columns)}")
    present = [row for row in rows if row.get(column) is not None]
    missing = [row for row in rows if row.get(column) is None]
    present.sort(key=lambda row: row[column], reverse=descending)
    return present + missing


# --- rendering ---------------------------------------------------------------------------------


def format_value(column: str, value: Any) -> str:
    """A cell as text: blank if missing, skill signed (+0.012), other numbers to 4 significant digits."""
    if value is None:
        return ""
    if isinstance(value, str):  # already text (e.g. a grouped row's "2.01 ± 0.04")
        return value
    if column in ("skill", "skill_best"):
        return f"{value:+.3f}"
    if column == "dm_p":
        return f"{value:.2g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1e4 else f"{value:.4g}"
    return str(value)


def render(rows: list[dict[str, Any]], fmt: str, columns: list[str] | None = None) -> str:
    """The rows as a string in `fmt`: md (GitHub Markdown), csv, json, or table (plain rich text).

    `columns` defaults to `COLUMNS` (one row per run); grouped rows bring their own.
    """
    renderers = {"md": _render_md, "csv": _render_csv, "json": _render_json, "table": _render_table}
    if fmt not in renderers:
        raise SeqbenchError(f"unknown format '{fmt}'; choose one of: {', '.join(FORMATS)}")
    columns = columns or COLUMNS
    return renderers[fmt](rows, shown_columns(rows, columns) if fmt in ("md", "table") else columns)


def shown_columns(rows: list[dict[str, Any]], columns: list[str] | None = None) -> list[str]:
    """`columns` (default COLUMNS) less the `SPARSE_COLUMNS` that no row has a value in."""
    return [
        column
        for column in columns or COLUMNS
        if column not in SPARSE_COLUMNS or any(row.get(column) is not None for row in rows)
    ]


def run_caption(rows: list[dict[str, Any]]) -> str:
    """What the columns of one-row-per-run forecast rows mean (the scaled ones when shown)."""
    scaled = any(row.get(column) is not None for row in rows for column in SCALED_COLUMNS)
    notes = ["one row per run", SKILL_NOTE, "dm_p = Diebold-Mariano p-value"]
    return "; ".join([*notes, SCALED_NOTE] if scaled else notes)


def _render_md(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def line(cells: Iterable[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    rule = ["---" if column in TEXT_COLUMNS else "---:" for column in columns]
    body = [line(format_value(column, row.get(column)) for column in columns) for row in rows]
    return "\n".join([line(columns), "|" + "|".join(rule) + "|", *body]) + "\n"


def _render_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)  # full precision; None becomes an empty cell
    return buffer.getvalue()


def _render_json(rows: list[dict[str, Any]], columns: list[str]) -> str:
    records = [{column: row.get(column) for column in columns} for row in rows]
    return dumps_strict(records, indent=2) + "\n"


def _render_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    console = Console(file=io.StringIO(), width=250, color_system=None, force_terminal=False)
    console.print(rich_table(rows, columns=columns))
    return console.file.getvalue()


# Columns a narrow terminal drops first, in this order; the scores and baselines stay.
OPTIONAL_COLUMNS = [
    "backend",
    "data",
    "params",
    "s/epoch",
    "lr",
    "hidden",
    "status",
    "epochs",
    "mae",
    "r2",
    "linear_rmse",
    "dm_p",
    "best_scaled_mae",
    "seasonal_scaled_mae",
    "best_scaled_mse",
    "seasonal_scaled_mse",
    "best_baseline",
]


def fitting_columns(
    rows: list[dict[str, Any]], width: int | None, columns: list[str] | None, optional: list[str] | None
) -> list[str]:
    """`columns` (None: COLUMNS), less the `optional` ones (None: OPTIONAL_COLUMNS) a terminal `width`
    wide cannot show; `hidden_columns` names those left out."""
    columns = list(columns or COLUMNS)

    def needed() -> int:
        cells = [
            max([len(part) for part in c.split("_")] + [len(format_value(c, r.get(c))) for r in rows])
            for c in columns
        ]
        return sum(cells) + 3 * len(columns) + 1

    for column in optional or OPTIONAL_COLUMNS:
        if width is None or needed() <= width:
            break
        if column in columns:
            columns.remove(column)
    return columns


def hidden_columns(
    rows: list[dict[str, Any]],
    width: int | None,
    columns: list[str] | None = None,
    optional: list[str] | None = None,
) -> list[str]:
    """The columns `fitting_columns` leaves out at this `width`, in table order (an empty sparse
    column is not shown at any width, so it is not counted here)."""
    columns = shown_columns(rows, columns)
    fitting = fitting_columns(rows, width, columns, optional)
    return [column for column in columns if column not in fitting]


def hidden_note(hidden: list[str], width: int | None) -> str | None:
    """What to tell the user when a table left columns out; None when it shows them all."""
    if not hidden:
        return None
    return (
        f"{len(hidden)} column(s) hidden to fit {width} characters: {', '.join(hidden)}; "
        "widen the terminal, or use --format md, csv or json for every column"
    )


def rich_table(
    rows: list[dict[str, Any]],
    width: int | None = None,
    columns: list[str] | None = None,
    optional: list[str] | None = None,
) -> Table:
    """A rich Table of the rows: numbers right-aligned, status coloured; fitted to `width`."""
    table = Table(header_style="bold")
    columns = fitting_columns(rows, width, shown_columns(rows, columns), optional)
    for column in columns:
        justify = "left" if column in TEXT_COLUMNS else "right"
        header = column.replace("_", "\n")  # persistence_rmse -> two short header lines
        table.add_column(header, justify=justify, no_wrap=column not in ("run", "config"), overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row, column) for column in columns))
    return table


def _cell(row: dict[str, Any], column: str) -> Text:
    """A Text cell (not a markup string, so that a '[' in a run name shows as it is)."""
    style = STATUS_STYLES.get(row.get("status") or "", "") if column == "status" else ""
    return Text(format_value(column, row.get(column)), style=style)


# --- significance: the dm_p column -------------------------------------------------------------


def _dm_p(run: dict[str, Any]) -> float | None:
    """Diebold-Mariano p-value of the run's test errors: against `--against`'s run when one was attached
    (`dm_against`), else against persistence, from metrics.json or else from predictions.csv (.xz)."""
    if "dm_against" in run:
        return _number(run["dm_against"])
    stored = _section(_section(run, "significance"), "persistence").get("p_value")
    if stored is not None:
        return _number(stored)
    if "run_dir" not in run or find_forecasts(run["run_dir"]) is None:
        return None
    from seqbench.artifacts.significance import dm_vs_persistence

    try:
        result = dm_vs_persistence(run["run_dir"])
    except (SeqbenchError, ValueError, KeyError):
        return None
    return None if result is None else result.p_value


def attach_dm_against(runs: list[dict[str, Any]], against: str, results_dir: Path = Path("results")) -> str:
    """Set each run's `dm_against`: the DM p-value of its test errors against run `against`'s.

    `against` is a run folder (or a name or glob that finds exactly one run). Rows pair by date,
    series and step; a run that shares no windows with it is a SeqbenchError. The reference run
    itself gets None. Returns the reference run's label.
    """
    from seqbench.artifacts.significance import dm_between_runs

    found = find_runs([against], results_dir)
    if len(found) != 1:
        raise SeqbenchError(
            f"--against needs one run, and '{against}' matches {len(found)}; name a run folder"
        )
    reference = found[0]
    for run in runs:
        run_dir = Path(run.get("run_dir", ""))
        if run_dir.resolve() == reference.resolve():
            run["dm_against"] = None
            continue
        run["dm_against"] = dm_between_runs(run_dir, reference).p_value
    return f"{reference.parent.name}/{reference.name}"


# --- data-pinned runs: warn when runs on different data or splits stand side by side ------------------


def data_mismatches(runs: list[dict[str, Any]]) -> list[str]:
    """One line per distinct mismatch: runs on different data (sha256), or on the same data with
    different splits (split_id). Runs that do not record a fingerprint are not compared."""
    lines: list[str] = []
    by_data = _groups(runs, lambda run: _section(run, "data").get("sha256"))
    for other in list(by_data)[1:]:
        lines.append(_mismatch("different data", by_data, other, _describe_data))
    for group in by_data.values():
        by_split = _groups(group, lambda run: run.get("split_id"))
        for other in list(by_split)[1:]:
            lines.append(_mismatch("different splits", by_split, other, _describe_split))
    return lines


def check_pinned(runs: list[dict[str, Any]], strict: bool = False) -> list[str]:
    """The mismatch lines to warn about; with `strict`, a SeqbenchError (exit 2) on the first one."""
    lines = data_mismatches(runs)
    if strict and lines:
        raise SeqbenchError(f"--strict: refusing to compare runs on {lines[0]}")
    return lines


def _groups(runs: list[dict[str, Any]], key: Any) -> dict[str, list[dict[str, Any]]]:
    """Runs by a fingerprint, in order of first appearance; runs without one are left out."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        value = key(run)
        if value:
            groups.setdefault(str(value), []).append(run)
    return groups


def _mismatch(kind: str, groups: dict[str, list[dict[str, Any]]], other: str, describe: Any) -> str:
    """`kind`: the first group's runs vs the `other` group's, each described by `describe`."""

    def side(fingerprint: str) -> str:
        members = groups[fingerprint]
        more = f" (+{len(members) - 1} more)" if len(members) > 1 else ""
        return f"{run_label(members[0])}{more} [{describe(members[0], fingerprint)}]"

    return f"{kind}: {side(next(iter(groups)))} vs {side(other)}"


def _describe_data(run: dict[str, Any], sha256: str) -> str:
    data = _section(run, "data")
    where = data.get("ticker") or data.get("name") or data.get("path") or data.get("label") or "?"
    if "bytes" in data:  # a text
        return f"{data.get('source', '?')} {where}, {data['bytes']} bytes, sha256 {sha256[:12]}"
    span = f"{data.get('first_date', '?')}..{data.get('last_date', '?')}"
    return f"{data.get('source', '?')} {where} {span}, {data.get('rows', '?')} rows, sha256 {sha256[:12]}"


def _describe_split(run: dict[str, Any], split_id: str) -> str:
    config = _section(run, "config")
    keys = ("seq_len", "horizon", "transform", "scaler", "normalize")
    shown = ", ".join(f"{key} {config[key]}" for key in keys if key in config)
    return f"{shown}, split_id {split_id}" if shown else f"split_id {split_id}"
