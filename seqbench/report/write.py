"""`seqbench report`: one self-contained HTML page of runs, their scores and their pictures.

The page holds, per task, compare's table (`seqbench.results.compare` rows, or
`seqbench.results.groups` rows as
mean ± std when a config has several runs), sortable by a click on a header, the columns that
matter first (`FIRST_COLUMNS`: they fit a 1280-pixel screen), its rows by dataset, then by score,
and data warnings between the runs of one dataset only; then each sweep
folder the runs came from (its sweep plots and summary.md); then each run: its scores next to
every baseline (`seqbench.results.tables.score_rows`), its pictures (loss_curve.png, predictions.png and
any other image in its folder), an LM's samples.txt and its resolved spec.yaml. Images are inline
data: URIs and a Content-Security-Policy forbids any request, so the file opens offline, anywhere.

The page is bounded whatever the runs hold: every file it reads is a regular file of bounded size
(a pipe or an oversized file is named, with a warning), each folder embeds at most a few pictures,
and the page at most `MAX_PAGE_IMAGE_BYTES` of pictures and `MAX_PAGE_TEXT_CHARS` of text; the
files left out are named where they would be, and a note at the top says so.
"""

from __future__ import annotations

import datetime as dt
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import seqbench
from seqbench.artifacts.runs import check_output, find_runs, load_runs
from seqbench.errors import SeqbenchError
from seqbench.io import FileRefused, atomic_write_text, read_head, read_regular
from seqbench.report import page as html
from seqbench.report.page import Cell
from seqbench.results.compare import (
    HEADLINE,
    TASK_COLUMNS,
    TEXT_COLUMNS,
    by_task,
    check_pinned,
    compare_rows,
    format_value,
    run_caption,
    shown_columns,
    sort_rows,
)
from seqbench.results.groups import LAYOUTS, display_rows, group_caption, group_rows, group_runs, has_repeats
from seqbench.results.tables import forecast_caption, score_rows
from seqbench.sweeps.sweep import SUMMARY_FILE, SWEEP_FILE

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # shown as \xNN; newline and tab stay
FIRST_PICTURES = ("loss_curve.png", "predictions.png")  # then any other image, by name
MAX_IMAGE_BYTES = 8_000_000  # one picture; a larger file is named, not read
MAX_TEXT_CHARS = 100_000  # one text (samples.txt, spec.yaml, summary.md): cut there
MAX_PAGE_IMAGE_BYTES = 16_000_000  # every picture on the page together (about 21 MB as base64)
MAX_PAGE_TEXT_CHARS = 4_000_000  # every text on the page together
MAX_PICTURES_PER_FOLDER = 8  # a run's loss curve and predictions, and a few more
LM_SCORES_CAPTION = "held-out bytes, every byte scored once; zlib and lzma: compressed size of the same bytes"
# the columns a table opens with, so that they fit the first screen (1280 px); the rest follow in
# compare's order: which run, on what, its headline score, whether it beats the baselines, and
# beyond chance, and whether it completed
FIRST_COLUMNS = {
    "forecast": ["run", "config", "model", "dataset", "n", "rmse", "skill", "skill_best", "dm_p",
                 "beats_persistence", "status"],
    "lm": ["run", "config", "model", "dataset", "n", "bits_per_byte", "ngram_bpb", "beats_ngram", "status"],
}  # fmt: skip


@dataclass(frozen=True)
class Written:
    """What `write_report` put on the page."""

    path: Path
    runs: int
    sweeps: int

    @property
    def summary(self) -> str:
        """The line that tells the user what was written."""
        sweeps = f", {self.sweeps} sweep folder(s)" if self.sweeps else ""
        return f"wrote {self.path} ({self.runs} runs{sweeps})"


def report_from_flags(
    runs: list[str] | None, results: Path, output: Path, group: bool | None, force: bool
) -> Written:
    """`seqbench report`: the runs found under `runs` (default: `results`) on one page in `output`,
    which may exist only with `force`."""
    check_output(output, force, "report.html")
    return write_report(find_runs(list(runs or []), results), output, group)


def write_report(run_dirs: list[Path], path: Path, group: bool | None = None) -> Written:
    """Write the report of these run folders to `path` (atomically); see `report_html`."""
    path = Path(path)
    if path.is_dir():
        raise SeqbenchError(f"{path} is a folder; give -o a file name, e.g. -o {path / 'report.html'}")
    runs = load_runs(run_dirs)
    if not runs:
        raise SeqbenchError("none of these run folders has a readable metrics.json; nothing to report")
    sweeps = sweep_folders(runs)
    atomic_write_text(path, report_html(runs, sweeps, group))
    return Written(path, len(runs), len(sweeps))


def report_html(runs: list[dict[str, Any]], sweeps: list[Path], group: bool | None = None) -> str:
    """The page: compare's table per task, the sweep folders, then one section per run."""
    for index, run in enumerate(runs):
        run["_anchor"] = f"run-{index + 1}"
    tasks = by_task(runs)
    budget = Budget(MAX_PAGE_IMAGE_BYTES, MAX_PAGE_TEXT_CHARS)
    body = []
    for task, members in tasks.items():
        body += [html.heading(2, f"{task} runs" if len(tasks) > 1 else "Runs side by side")]
        body += compare_section(task, members, group)
    for sweep_dir in sweeps:
        body += sweep_section(sweep_dir, budget)
    body += [html.heading(2, "Each run")]
    for run in runs:
        body += run_section(run, budget)
    body = budget.note() + body
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    sweeps_said = f", {len(sweeps)} sweep folder(s)" if sweeps else ""
    subtitle = f"{len(runs)} run(s){sweeps_said}; seqbench {seqbench.__version__}, {when}"
    return html.page("seqbench report", subtitle, body)


# --- compare's table ---------------------------------------------------------------------------


def compare_section(task: str, runs: list[dict[str, Any]], group: bool | None = None) -> list[str]:
    """Compare's table of one task's runs (grouped as compare groups them), and the data warnings
    of the runs it puts side by side: those of one dataset (a run on sp500 and one on weather are
    not a comparison anyone asked for; two downloads of AAPL over different years are)."""
    notes = [line for members in by_dataset(runs).values() for line in check_pinned(members)]
    for line in notes:
        warnings.warn(line, stacklevel=2)
    grouped = group is True or (group is None and has_repeats(runs))
    columns, rows, caption = _group_table(task, runs) if grouped else _run_table(task, runs)
    table = html.table(columns, rows, TEXT_COLUMNS, caption, sortable=True, table_id=f"compare-{task}")
    return [table, *(html.paragraph(f"warning: {line}", "note") for line in notes)]


def _run_table(task: str, runs: list[dict[str, Any]]) -> tuple[list[str], list[list[Cell]], str]:
    """One row per run (compare's rows), by the task's headline score; the run links to its section.
    Columns that no run has a value in (the scaled scores of runs without them) are left out."""
    rows = [{**compare_rows([run])[0], "_anchor": run["_anchor"]} for run in runs]
    rows = _by_dataset_then(sort_rows(rows, HEADLINE[task], TASK_COLUMNS[task]))
    columns = _first(task, shown_columns(rows, TASK_COLUMNS[task]))
    cells = [
        [_cell(column, row.get(column), row.get(column), row["_anchor"] if column == "run" else None)
         for column in columns]
        for row in rows
    ]  # fmt: skip
    caption = run_caption(rows) if task == "forecast" else "one row per run, on the held-out bytes"
    return columns, cells, caption


def _group_table(task: str, runs: list[dict[str, Any]]) -> tuple[list[str], list[list[Cell]], str]:
    """One row per config (mean ± std over its seeds), by dataset, then by its mean headline score."""
    layout = LAYOUTS[task]
    groups = group_runs(runs)
    rows = [{**group_rows(members)[0], "_anchor": members[0]["_anchor"]} for members in groups]
    rows = _by_dataset_then(sort_rows(rows, HEADLINE[task], layout.data_columns))
    texts = display_rows(rows)
    columns = _first(task, shown_columns(texts, layout.columns))
    cells = []
    for row, shown in zip(rows, texts, strict=True):
        line = []
        for column in columns:
            sort = row.get(layout.wins) if column == layout.wins else row.get(column)
            link = row["_anchor"] if column == "config" else None
            line.append(_cell(column, shown.get(column), sort, link))
        cells.append(line)
    return columns, cells, group_caption(rows, layout)


def by_dataset(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Runs by the name of their dataset (compare's `dataset` column), in order of that name."""
    out: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        out.setdefault(compare_rows([run])[0].get("dataset") or "", []).append(run)
    return dict(sorted(out.items()))


def _by_dataset_then(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sorted rows kept in their order within each dataset, the datasets by name: a table of runs
    on several datasets ranks each dataset's runs, never an RMSE in dollars against one in degrees."""
    return sorted(rows, key=lambda row: row.get("dataset") or "")


def _first(task: str, columns: list[str]) -> list[str]:
    """`columns` with the task's FIRST_COLUMNS (those present) at the front, the rest in order."""
    first = [column for column in FIRST_COLUMNS[task] if column in columns]
    return first + [column for column in columns if column not in first]


def _cell(column: str, value: Any, sort: Any, link: str | None = None) -> Cell:
    """A cell with its text as compare writes it, sorting by the number behind it (else its text)."""
    number = sort if isinstance(sort, int | float) and not isinstance(sort, bool) else None
    css = f"status-{value}" if column == "status" and isinstance(value, str) else ""
    return Cell(format_value(column, value), number, link, css)


# --- sweeps ------------------------------------------------------------------------------------


def sweep_folders(runs: list[dict[str, Any]]) -> list[Path]:
    """The sweep folders (holding sweep.yaml) that runs belong to, in the order of their first run."""
    found: dict[Path, None] = {}
    for run in runs:
        run_dir = Path(run.get("run_dir", "."))
        for folder in (run_dir.parent, run_dir.parent.parent):  # <sweep>/<point>/<run_id>
            if (folder / SWEEP_FILE).is_file():
                found.setdefault(folder, None)
                break
    return list(found)


def sweep_section(sweep_dir: Path, budget: Budget) -> list[str]:
    """A sweep folder: its plots (sweep_<key>.png), summary.md and sweep.yaml."""
    parts = [html.heading(2, f"Sweep {sweep_dir.name}"), html.paragraph(str(sweep_dir), "meta")]
    parts += _gallery(sorted(sweep_dir.glob("sweep_*.png")), budget, "no sweep plots in this folder")
    for name in (SUMMARY_FILE, SWEEP_FILE):
        text = _read_text(sweep_dir / name, budget)
        if text is not None:
            parts.append(html.preformatted(text, name))
    return parts


# --- one run -----------------------------------------------------------------------------------


def run_section(run: dict[str, Any], budget: Budget) -> list[str]:
    """One run: what it is, its scores next to every baseline, its pictures, samples and spec."""
    run_dir = Path(run.get("run_dir", "."))
    label = compare_rows([run])[0]["run"]
    parts = [
        f'<section class="run">{html.heading(3, label, run["_anchor"])}',
        html.paragraph(_facts(run), "meta"),
    ]
    parts += _scores(run)
    parts += _pictures(run_dir, budget)
    samples = _read_text(run_dir / "samples.txt", budget)
    if samples is not None:
        parts += [html.heading(4, "samples.txt"), html.preformatted(samples)]
    spec = _read_text(run_dir / "spec.yaml", budget)
    parts.append(html.preformatted(spec, "spec.yaml (the resolved spec)") if spec is not None else
                 html.paragraph("no spec.yaml in this run folder", "note"))  # fmt: skip
    return [*parts, "</section>"]


def _facts(run: dict[str, Any]) -> str:
    """One line: model, backend, dataset, status, seed, epochs, parameters, time, config, folder."""
    said = {
        "model": f"{run.get('model')} ({run.get('backend')}) on {run.get('dataset')}",
        "status": f"status {run.get('status')}",
        "seed": f"seed {run.get('seed')}",
        "epochs_run": f"{run.get('epochs_run')} epochs (best {run.get('best_epoch')})",
        "params": f"{run.get('params')} parameters",
        "config_id": f"config {run.get('config_id')}",
    }
    facts = [text for key, text in said.items() if run.get(key) is not None]
    if isinstance(run.get("train_seconds"), int | float):
        facts.append(f"trained in {run['train_seconds']:.1f} s")
    return "; ".join([*facts, str(run.get("run_dir"))])


def _scores(run: dict[str, Any]) -> list[str]:
    """The run's scores next to every baseline (the table `train` prints), and its DM p-value."""
    try:
        header, rows = score_rows(run)
    except (TypeError, ValueError, AttributeError):  # metrics.json is someone else's file
        return [html.paragraph("metrics.json has no scores this report can read", "note")]
    task = "lm" if run.get("task") == "lm" else "forecast"
    caption = LM_SCORES_CAPTION if task == "lm" else f"test split, original units; {forecast_caption(run)}"
    dm_p = compare_rows([run])[0].get("dm_p") if task == "forecast" else None
    if dm_p is not None:
        caption += f"; Diebold-Mariano p-value vs persistence: {format_value('dm_p', dm_p)}"
    cells = [[Cell(text) for text in row] for row in rows]
    return [html.table(header, cells, header[:1], caption)]


def _pictures(run_dir: Path, budget: Budget) -> list[str]:
    """The run's images, loss curve and predictions first."""
    images = [p for p in run_dir.iterdir() if p.suffix in html.IMAGE_TYPES] if run_dir.is_dir() else []
    order = {name: i for i, name in enumerate(FIRST_PICTURES)}
    images.sort(key=lambda p: (order.get(p.name, len(order)), p.name))
    return _gallery(images, budget, "no pictures in this run folder")


# --- files on the page, within its budget --------------------------------------------------------


@dataclass
class Budget:
    """What the page may still embed (bytes of pictures, characters of text), and how many files it
    named instead."""

    image_bytes: int
    text_chars: int
    left_out: int = 0

    def note(self) -> list[str]:
        """The page's note on what it left out, if anything."""
        if not self.left_out:
            return []
        return [
            html.paragraph(
                f"{self.left_out} file(s) are not embedded in this page, which holds at most "
                f"{MAX_PAGE_IMAGE_BYTES:,} bytes of pictures, {MAX_PAGE_TEXT_CHARS:,} characters of text and "
                f"{MAX_PICTURES_PER_FOLDER} pictures per folder; each section names the ones it left out, "
                "which are in its folder",
                "note",
            )
        ]


def _gallery(paths: list[Path], budget: Budget, empty: str) -> list[str]:
    """These pictures inline, as many as the budget holds; a note names the others."""
    if not paths:
        return [html.paragraph(empty, "note")]
    tried = paths[:MAX_PICTURES_PER_FOLDER]
    figures = [_picture(path, budget) for path in tried]
    left = [p.name for p, f in zip(tried, figures, strict=True) if f is None] + [
        p.name for p in paths[len(tried) :]
    ]
    parts = [html.pictures([f for f in figures if f is not None])] if len(left) < len(paths) else []
    if left:
        budget.left_out += len(left)
        names = ", ".join(left[:10]) + (f" and {len(left) - 10} more" if len(left) > 10 else "")
        where = f"not embedded, to keep the page small: {names} (in {paths[0].parent})"
        parts.append(html.paragraph(where, "note"))
    return parts


def _picture(path: Path, budget: Budget) -> str | None:
    """An image inline, or a note saying why it is not; None when the page has no room left for it."""
    if path.is_symlink():
        return html.paragraph(f"{path.name}: a symbolic link, not shown", "note")
    if budget.image_bytes <= 0:
        return None
    try:
        data = read_regular(path, MAX_IMAGE_BYTES, "a picture in a report")
    except FileRefused as err:
        warnings.warn(f"{err}; left out of the report", stacklevel=2)
        return html.paragraph(f"{path.name}: not shown ({err})", "note")
    except OSError as err:
        return html.paragraph(f"{path.name}: cannot read it ({err.strerror or err})", "note")
    if path.suffix == ".png" and not data.startswith(html.PNG_MAGIC):
        return html.paragraph(f"{path.name}: not a PNG file, not shown", "note")
    if len(data) > budget.image_bytes:
        return None
    budget.image_bytes -= len(data)
    return html.image(data, path.suffix, path.name)


def _read_text(path: Path, budget: Budget) -> str | None:
    """A text file of a run or sweep folder, cut to MAX_TEXT_CHARS (and to what the page has left);
    None when it has none."""
    if path.is_symlink():
        return None
    chars = min(MAX_TEXT_CHARS, budget.text_chars)
    try:
        data, size = read_head(path, 4 * chars)  # at most 4 bytes a character
    except FileRefused as err:
        warnings.warn(f"{err}; left out of the report", stacklevel=2)
        return f"[not shown: {err}]"
    except OSError:
        return None
    if chars <= 0:
        budget.left_out += 1
        return f"[not embedded, to keep the page small: {path.name}, {size:,} bytes, is in {path.parent}]"
    text = data.decode("utf-8", errors="backslashreplace")
    if len(text) > chars or size > len(data):
        text = text[:chars] + f"\n[... cut: the file is {size:,} bytes]"
    budget.text_chars -= min(len(text), chars)
    return CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)  # e.g. a sample's NUL byte
