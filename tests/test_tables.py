"""Tests for seqbench.results.tables: the result table `train` prints (and the report shows per run)."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

from seqbench.results.tables import forecast_caption, forecast_score_rows, result_table, seeds_table


def _forecast(**extra: object) -> dict:
    """A horizon-1 forecast's metrics.json from before seasonal persistence and `scaled`."""
    metrics = {
        "name": "aapl", "model": "mingru", "dataset": "AAPL", "seed": 0,
        "test": {"rmse": 2.0, "mae": 1.0, "r2": 0.9, "mape": 1.2, "direction_accuracy": 0.5},
        "baselines": {"persistence": {"rmse": 2.5, "mae": 1.2}, "linear": {"rmse": 2.2, "mae": 1.1}},
    }  # fmt: skip
    return {**metrics, **extra}


def _ett(**extra: object) -> dict:
    baselines = {"persistence": {"rmse": 5.587}, "seasonal": {"rmse": 3.222}, "linear": {"rmse": 2.907}}
    scaled = {"model": {"mse": 0.659, "mae": 0.54}, "persistence": {"mse": 1.294, "mae": 0.713},
              "seasonal": {"mse": 0.512, "mae": 0.433}, "linear": {"mse": 0.388, "mae": 0.395}}  # fmt: skip
    return _forecast(test={"rmse": 3.965}, baselines=baselines, scaled=scaled, **extra)


def _text(table: object) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(table)
    return console.file.getvalue()


def test_a_horizon_1_run_has_skill_best_and_no_scaled_columns() -> None:
    header, rows = forecast_score_rows(_forecast())
    assert header[-2:] == ["skill", "skill_best"] and "scaled_mse" not in header
    by_name = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert list(by_name) == ["mingru", "persistence", "linear"]
    assert (by_name["mingru"]["skill"], by_name["mingru"]["skill_best"]) == ("+0.200", "+0.091")  # vs linear
    assert by_name["linear"]["skill_best"] == "+0.000" and by_name["persistence"]["skill_best"] == "-0.136"
    caption = forecast_caption(_forecast())
    assert "best baseline (linear)" in caption and "scaled" not in caption


def test_an_ett_run_that_seasonal_and_ridge_beat_shows_it_and_the_papers_scores() -> None:
    header, rows = forecast_score_rows(_ett())
    assert header[-4:] == ["skill", "skill_best", "scaled_mse", "scaled_mae"]
    by_name = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert (by_name["mingru"]["skill"], by_name["mingru"]["skill_best"]) == ("+0.290", "-0.364")
    assert (by_name["mingru"]["scaled_mse"], by_name["seasonal"]["scaled_mae"]) == ("0.659", "0.433")
    assert by_name["seasonal"]["skill_best"] == "-0.108"  # seasonal persistence: worse than ridge
    text = " ".join(_text(result_table(_ett())).split())
    assert "best baseline (linear)" in text and "scaler's units" in text


def test_undefined_skills_read_nan() -> None:
    _, rows = forecast_score_rows(_forecast(test=None, baselines={"persistence": {"rmse": None}}))
    assert [row[-2:] for row in rows] == [["nan", "nan"], ["nan", "nan"]]
    assert "best baseline," in forecast_caption(_forecast(baselines={}))  # no baseline to name


def test_a_scaled_score_a_forecaster_lacks_is_nan() -> None:
    metrics = _ett()
    metrics["scaled"]["model"] = None  # a run stopped before its first epoch
    _, rows = forecast_score_rows(metrics)
    assert rows[0][-2:] == ["nan", "nan"] and rows[1][-2:] == ["1.294", "0.713"]


def test_seeds_table_has_skill_best() -> None:
    done = [
        SimpleNamespace(metrics=_ett(seed=seed), status="completed", run_dir=Path(f"r{seed}"))
        for seed in (0, 1)
    ]
    text = _text(seeds_table(done))
    assert "skill_best" in text and text.count("-0.364") == 2 and text.count("+0.290") == 2


def test_an_lm_result_table_is_unchanged() -> None:
    metrics = {
        "name": "lm", "model": "mingru", "dataset": "plays", "task": "lm", "headline": {"split": "test"},
        "test": {"bits_per_byte": 2.3, "nats": 1.6, "perplexity": 4.9},
        "baselines": {"ngram": {"bits_per_byte": 2.4, "order": 7}},
    }  # fmt: skip
    text = _text(result_table(metrics))
    assert "7-gram" in text and "skill" not in text
