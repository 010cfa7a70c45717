"""One row per config: runs that differ only in their seed, as mean +- std over the seeds.

Runs of one config share `config_id` in metrics.json, a hash of the resolved spec without
name, seed and seeds (`seqbench.spec.config_id`). A run written before config ids existed gets
one from its spec.yaml; a run with neither stands alone. The statistics of a group are over its
completed runs: the mean, the sample standard deviation (n - 1 in the denominator; blank when
n = 1) and n; `dm_p` is the median over those runs of their Diebold-Mariano p-values (against
persistence, or the `compare --against` run); `best_baseline` is the runs' best baseline (the
same for every seed of a config: baselines do not depend on the seed; `mixed` if not);
`beats_persistence` counts the completed runs whose test RMSE is below the persistence
forecast's (skill > 0).

The pipeline mirrors `seqbench.results.compare`: `group_rows` (numbers, keys = `GROUP_DATA_COLUMNS`, for
csv and json and sorting) -> `display_rows` (text cells such as `2.013 ± 0.041`, keys =
`GROUP_COLUMNS`, for md and the terminal table).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from seqbench.errors import shown
from seqbench.results.compare import (
    SCALED_COLUMNS,
    SCALED_NOTE,
    SKILL_NOTE,
    compare_rows,
    format_value,
    hidden_columns,
    render,
    rich_table,
    sort_rows,
    task_of,
)

_CONFIG_COLUMNS = ["config", "config_id", "model", "backend", "dataset", "data", "hidden", "lr", "n"]


@dataclass(frozen=True)
class Layout:
    """What a group row of one task holds: its scores in table order (`scores`; those in `stats` as
    mean and std, the others one value for the group: dm_p, best_baseline), a count of runs that
    beat the task's baseline (`wins`, with `beats(row)`), and what a narrow terminal drops first."""

    scores: list[str]
    stats: list[str]
    wins: str
    beats: Callable[[dict[str, Any]], bool]
    optional: list[str]
    caption: str

    @property
    def columns(self) -> list[str]:  # md and the terminal
        return [*_CONFIG_COLUMNS, *self.scores, self.wins, "status"]

    @property
    def data_columns(self) -> list[str]:  # csv, json and sorting
        scores = [
            name
            for column in self.scores
            for name in ((column, f"{column}_std") if column in self.stats else (column,))
        ]
        return ["task", *_CONFIG_COLUMNS, "runs", "seeds", *scores, self.wins, "status"]


_FORECAST_SCORES = [
    "rmse", "mae", "r2", "persistence_rmse", "linear_rmse", "skill", "dm_p", "skill_best", "best_baseline",
    *SCALED_COLUMNS,
]  # fmt: skip
_LM_SCORES = ["bits_per_byte", "nats", "perplexity", "ngram_bpb", "lzma_bpb", "unigram_bpb"]


LAYOUTS = {
    "forecast": Layout(
        scores=_FORECAST_SCORES,
        stats=[column for column in _FORECAST_SCORES if column not in ("dm_p", "best_baseline")],
        wins="beats_persistence",
        beats=lambda row: row["skill"] is not None and row["skill"] > 0,
        # dropped first on a narrow terminal; the scores, n and the persistence count stay
        optional=[
            "config_id",
            "data",
            "backend",
            "lr",
            "hidden",
            "dataset",
            "status",
            "mae",
            "r2",
            "linear_rmse",
            "best_scaled_mae",
            "seasonal_scaled_mae",
            "best_scaled_mse",
            "seasonal_scaled_mse",
            "best_baseline",
        ],
        caption=(
            f"mean ± std over the completed runs of each config (n); {SKILL_NOTE}; "
            "dm_p = median Diebold-Mariano p-value (vs persistence, or --against); "
            "beats_persistence = runs with skill > 0"
        ),
    ),
    "lm": Layout(
        scores=_LM_SCORES,
        stats=_LM_SCORES,
        wins="beats_ngram",
        beats=lambda row: (
            None not in (row["bits_per_byte"], row["ngram_bpb"]) and row["bits_per_byte"] < row["ngram_bpb"]
        ),
        optional=["config_id", "data", "backend", "lr", "hidden", "dataset", "status", "nats", "unigram_bpb"],
        caption=(
            "mean ± std over the completed runs of each config (n), on the held-out bytes; "
            "beats_ngram = runs below the n-gram's bits per byte"
        ),
    ),
}
# the forecast layout's names, as they were before tasks
STAT_COLUMNS = LAYOUTS["forecast"].stats
GROUP_COLUMNS = LAYOUTS["forecast"].columns
GROUP_DATA_COLUMNS = LAYOUTS["forecast"].data_columns
GROUP_OPTIONAL_COLUMNS = LAYOUTS["forecast"].optional
CAPTION = LAYOUTS["forecast"].caption


def layout_of(rows: list[dict[str, Any]]) -> Layout:
    """The layout of group rows (all of one task; forecast when there are none)."""
    return LAYOUTS[rows[0].get("task", "forecast") if rows else "forecast"]


def group_caption(rows: list[dict[str, Any]], layout: Layout | None = None) -> str:
    """The caption of group rows (of `layout`, default theirs), and what the scaled columns are
    when some row has them."""
    layout = layout or layout_of(rows)
    scaled = any(row.get(column) is not None for row in rows for column in SCALED_COLUMNS)
    return f"{layout.caption}; {SCALED_NOTE}" if scaled and "scaled_mse" in layout.scores else layout.caption


def run_config_id(run: dict[str, Any]) -> str | None:
    """The run's `config_id`: from metrics.json, else computed from its spec.yaml, else None."""
    if isinstance(run.get("config_id"), str):
        return shown(run["config_id"])
    spec_file = Path(str(run.get("run_dir", ""))) / "spec.yaml"
    if not run.get("run_dir") or not spec_file.is_file():
        return None
    from seqbench.errors import SeqbenchError
    from seqbench.spec import config_id, load_spec

    try:
        return config_id(load_spec(spec_file))
    except SeqbenchError:
        return None


def group_runs(runs: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Runs with equal config ids together, groups in the order of their first run."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for index, run in enumerate(runs):
        key = run_config_id(run) or f"run {index}"  # no config id: a group of its own
        groups.setdefault(key, []).append(run)
    return list(groups.values())


def has_repeats(runs: Iterable[dict[str, Any]]) -> bool:
    """Whether some config has more than one run (e.g. several seeds): then compare groups by default."""
    return any(len(group) > 1 for group in group_runs(runs))


def group_rows(runs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per config with the keys of `GROUP_DATA_COLUMNS`: mean and std of every score."""
    return [_group_row(members) for members in group_runs(runs)]


def _group_row(members: list[dict[str, Any]]) -> dict[str, Any]:
    task = task_of(members[0])
    layout = LAYOUTS[task]
    rows = compare_rows(members)
    done = [row for row in rows if row["status"] == "completed"]
    first = rows[0]
    names = list(dict.fromkeys(shown(run.get("name") or "?") for run in members))
    seeds = sorted(run["seed"] for run in members if isinstance(run.get("seed"), int))
    row: dict[str, Any] = {
        "task": task,
        "config": ", ".join(names),
        "config_id": run_config_id(members[0]),
        "model": first["model"],
        "backend": first["backend"],
        "dataset": first["dataset"],
        "data": first["data"] if len({row["data"] for row in rows}) == 1 else "mixed",
        "hidden": first["hidden"],
        "lr": first["lr"],
        "n": len(done),
        "runs": len(rows),
        "seeds": seeds,
    }
    for column in layout.stats:
        values = [row[column] for row in done if row[column] is not None]
        row[column] = statistics.fmean(values) if values else None
        row[f"{column}_std"] = statistics.stdev(values) if len(values) > 1 else None
    if "dm_p" in layout.scores:
        p_values = [r["dm_p"] for r in done if r.get("dm_p") is not None]
        row["dm_p"] = statistics.median(p_values) if p_values else None  # the seeds' DM p vs persistence
    if "best_baseline" in layout.scores:  # the baselines of one config score the same for every seed
        best = {r["best_baseline"] for r in rows if r["best_baseline"] is not None}
        row["best_baseline"] = best.pop() if len(best) == 1 else ("mixed" if best else None)
    row[layout.wins] = sum(1 for r in done if layout.beats(r))
    counts = Counter(str(r["status"]) for r in rows)
    row["status"] = ", ".join(f"{count} {status}" for status, count in counts.most_common())
    return {column: row[column] for column in layout.data_columns}


def sort_groups(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Group rows (of one task) sorted by a column of their data columns (scores by their mean)."""
    return sort_rows(rows, key, layout_of(rows).data_columns)


def display_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group rows with text cells for md and the terminal: `mean ± std`, `k/n`."""
    shown = []
    layout = layout_of(rows)
    for row in rows:
        cells = {column: row.get(column) for column in _CONFIG_COLUMNS}
        for column in layout.scores:
            if column in layout.stats:
                cells[column] = _mean_std(column, row.get(column), row.get(f"{column}_std"))
            else:
                cells[column] = row.get(column)
        cells[layout.wins] = f"{row[layout.wins]}/{row['n']}"
        cells["status"] = row.get("status")
        shown.append(cells)
    return shown


def _mean_std(column: str, mean: float | None, std: float | None) -> str | None:
    if mean is None:
        return None
    text = format_value(column, mean)
    if std is None or not math.isfinite(std) or std == 0:  # a baseline's score is the same for every seed
        return text
    return f"{text} ± {std:.2g}"  # the spread to two significant digits: 1.132 ± 0.56


def render_groups(rows: list[dict[str, Any]], fmt: str) -> str:
    """Group rows (of one task) in `fmt`: md and table show `mean ± std`; csv and json give mean
    and std apart."""
    layout = layout_of(rows)
    if fmt in ("md", "table"):
        return render(display_rows(rows), fmt, layout.columns)
    return render(rows, fmt, layout.data_columns)


def hidden_group_columns(rows: list[dict[str, Any]], width: int | None) -> list[str]:
    """The columns `rich_group_table` leaves out at this `width`."""
    layout = layout_of(rows)
    return hidden_columns(display_rows(rows), width, layout.columns, layout.optional)


def rich_group_table(rows: list[dict[str, Any]], width: int | None = None) -> Table:
    """The group rows (of one task) as a rich Table fitted to `width`, with a caption that reads
    the columns."""
    layout = layout_of(rows)
    table = rich_table(display_rows(rows), width, layout.columns, layout.optional)
    table.caption = group_caption(rows)
    return table
