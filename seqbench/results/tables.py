"""The tables the commands print: a run's result next to its baselines, one line per seed, a
forecast, the datasets, the gradient check and the causality audit (compare's are in
seqbench.results.compare).

Each task has its own result table: a forecast's test RMSE, MAE, ... next to persistence, seasonal
persistence and the linear baseline (and, for a run with `scaled`, the MSE and MAE in the scaler's
units that the long-horizon papers quote); a language model's bits per byte next to the n-gram,
unigram and compressors.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from seqbench.results.compare import best_baseline


def seeds_table(done: list[Any]) -> Table:
    """One line per seed: status, test RMSE next to persistence, skill, skill_best, and the run folder."""
    table = Table(title="one run per seed (test split)")
    for column in ("seed", "status", "rmse", "persistence", "skill", "skill_best"):
        table.add_column(column, justify="left" if column == "status" else "right")
    table.add_column("run folder", overflow="fold")
    for result in done:
        m = result.metrics
        rmse = (m.get("test") or {}).get("rmse")
        baselines = m.get("baselines") or {}
        persistence = (baselines.get("persistence") or {}).get("rmse")
        best = best_baseline(baselines)
        table.add_row(
            str(m["seed"]),
            result.status,
            f"{rmse:.4g}" if rmse is not None else "",
            f"{persistence:.4g}" if persistence is not None else "",
            _skill_text(rmse, persistence),
            _skill_text(rmse, float(baselines[best]["rmse"]) if best else None),
            str(result.run_dir),
        )
    table.caption = SKILL_CAPTION
    return table


SKILL_CAPTION = (
    "skill = 1 - RMSE / persistence RMSE (> 0 beats persistence); skill_best = 1 - RMSE / RMSE of the "
    "best baseline, the lowest of persistence, seasonal and linear (> 0 beats every baseline)"
)
SCALED_CAPTION = "scaled_mse, scaled_mae: every channel and step, in the scaler's units (as the papers quote)"


def _skill_text(rmse: float | None, reference: float | None) -> str:
    """1 - rmse / reference, signed to 3 decimals; `nan` when it is undefined."""
    if rmse is None or not reference:
        return "nan"
    return f"{1 - rmse / reference:+.3f}"


FORECAST_SCORES = ("rmse", "mae", "r2", "mape", "direction_accuracy")
LM_SCORES = ("bits_per_byte", "nats", "perplexity")


def forecast_score_rows(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """A forecast's test scores and every baseline's, in original units, with skill against
    persistence and against the best baseline; then, for a run with `scaled` (ETT), each one's MSE
    and MAE in the scaler's units: (header, rows of text)."""
    baselines = metrics.get("baselines") or {}
    persistence_rmse = (baselines.get("persistence") or {}).get("rmse")
    best = best_baseline(baselines)
    best_rmse = float(baselines[best]["rmse"]) if best else None
    scaled = metrics.get("scaled") if isinstance(metrics.get("scaled"), dict) else None
    header = [
        "forecaster",
        *(c.replace("direction_accuracy", "direction") for c in FORECAST_SCORES),
        "skill",
        "skill_best",
        *(["scaled_mse", "scaled_mae"] if scaled else []),
    ]
    rows = []
    forecasters = {"model": metrics.get("test") or {}, **baselines}
    for key, values in forecasters.items():
        values = values if isinstance(values, dict) else {}
        rmse = values.get("rmse")
        label = str(metrics.get("model")) if key == "model" else str(key)
        row = [label, *(_number(values.get(c)) for c in FORECAST_SCORES)]
        row += [_skill_text(rmse, persistence_rmse), _skill_text(rmse, best_rmse)]
        if scaled:
            in_scaled = scaled.get(key) if isinstance(scaled.get(key), dict) else {}
            row += [_number(in_scaled.get("mse")), _number(in_scaled.get("mae"))]
        rows.append(row)
    return header, rows


def forecast_caption(metrics: dict[str, Any]) -> str:
    """What the columns of `forecast_score_rows` mean, naming this run's best baseline."""
    best = best_baseline(metrics.get("baselines") or {})
    caption = SKILL_CAPTION.replace("best baseline,", f"best baseline ({best}),") if best else SKILL_CAPTION
    return f"{caption}; {SCALED_CAPTION}" if isinstance(metrics.get("scaled"), dict) else caption


def lm_score_rows(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """An LM's held-out scores and every baseline's, on the same bytes: (header, rows of text)."""
    split = (metrics.get("headline") or {}).get("split", "test")
    rows = []
    for label, values in {
        str(metrics.get("model")): metrics.get(split) or {},
        **(metrics.get("baselines") or {}),
    }.items():
        values = values if isinstance(values, dict) else {}
        if label == "ngram" and values.get("order"):
            label = f"{values['order']}-gram"
        cells = (values.get(key) for key in LM_SCORES)
        rows.append(
            [str(label), *("" if value is None else f"{value:.4g}" for value in cells)]
        )  # zlib: bits only
    return ["model", "bits/byte", "nats/byte", "perplexity"], rows


def score_rows(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """A run's scores next to every baseline's, either task: (header, rows of text)."""
    return lm_score_rows(metrics) if metrics.get("task") == "lm" else forecast_score_rows(metrics)


def summary_table(metrics: dict[str, Any]) -> Table:
    """Test metrics of the model next to the baselines, in original units."""
    title = f"{metrics['name']}: {metrics['model']} on {metrics['dataset']} (test split)"
    return _score_table(title, *forecast_score_rows(metrics), forecast_caption(metrics))


def _score_table(title: str, header: list[str], rows: list[list[str]], caption: str) -> Table:
    """The model's and the baselines' rows under `header`, the first column left-aligned."""
    table = Table(title=title)
    for i, column in enumerate(header):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    table.caption = caption
    return table


def _number(value: float | None) -> str:
    """4 significant digits; `nan` for a score that is undefined (None in metrics.json)."""
    return "nan" if value is None else f"{value:.4g}"


def lm_summary_table(metrics: dict[str, Any]) -> Table:
    """An LM run's held-out scores next to its baselines, on the same bytes."""
    split = (metrics.get("headline") or {}).get("split", "test")
    title = f"{metrics['name']}: {metrics['model']} on {metrics['dataset']} ({split} bytes)"
    caption = "every held-out byte scored once; zlib and lzma: compressed size of the same bytes"
    return _score_table(title, *lm_score_rows(metrics), caption)


def result_table(metrics: dict[str, Any]) -> Table:
    """The table `train` prints for a finished run of either task."""
    return lm_summary_table(metrics) if metrics.get("task") == "lm" else summary_table(metrics)


def forecast_table(forecast: Any) -> Table:
    """`seqbench predict`: one row per step and series, its date and the forecast in original units."""
    table = Table()
    for column in forecast.frame.columns:
        table.add_column(column, justify="left" if column in ("date", "series") else "right")
    for row in forecast.frame.itertuples(index=False):
        table.add_row(row.date, escape(str(row.series)), str(row.step), f"{row.prediction:.6g}")
    return table


def datasets_table(datasets: list[dict[str, Any]]) -> Table:
    """`seqbench datasets`: the built-ins and cached downloads."""
    table = Table(title="datasets (use the name as `dataset:` in a spec)")
    for column in ("name", "source", "rows", "from", "to"):
        table.add_column(column, no_wrap=True)
    table.add_column("columns")
    for info in datasets:
        table.add_row(
            str(info["name"]),
            str(info["source"]),
            str(info.get("rows") or ""),
            str(info.get("first_date", ""))[:10],
            str(info.get("last_date", ""))[:10],
            ", ".join(info.get("columns", [])),
        )
    return table


def gradcheck_table(results: list[Any], tolerance: float) -> Table:
    """`seqbench gradcheck`: the worst relative error per parameter, ok or FAIL against `tolerance`."""
    table = Table(title=f"gradient check: analytic vs finite differences (tolerance {tolerance:g})")
    for column in ("model", "parameter", "shape"):
        table.add_column(column)
    for column in ("checked", "max rel. error", "ok"):
        table.add_column(column, justify="right")
    for r in results:
        shape = "x".join(map(str, r.shape)) or "scalar"
        verdict = "ok" if r.max_rel_error <= tolerance else "FAIL"
        label = f"{r.model} (lm)" if r.lm else f"{r.model} (segments)" if r.forecast else r.model
        table.add_row(label, r.name, shape, str(r.checked), f"{r.max_rel_error:.2e}", verdict)
    return table


def audit_table(report: Any, subject: str) -> Table:
    """`seqbench audit`: every check of an AuditReport, ok or LEAK."""
    from seqbench.checks.audit import TOLERANCE

    table = Table(title=f"causality audit: {subject}")
    for column in ("part", "subject", "check", "result", "ok"):
        table.add_column(column, justify="right" if column == "ok" else "left")
    for c in report.checks:
        table.add_row(c.part, c.subject, c.check, c.result, "ok" if c.ok else "LEAK")
    table.caption = f"model: states at steps <= t may change by at most {TOLERANCE:g} (float64)"
    return table
