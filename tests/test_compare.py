"""Tests for seqbench.results.compare: discovery, loading, rows, sorting and every output format."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from seqbench.artifacts.runs import find_runs, load_run, load_runs
from seqbench.errors import SeqbenchError
from seqbench.results import compare
from seqbench.results.compare import COLUMNS, SCALED_COLUMNS, compare_rows, render, sort_rows

UNSCALED = [column for column in COLUMNS if column not in SCALED_COLUMNS]  # what a run without `scaled` shows


def _metrics(
    name: str,
    run_id: str,
    rmse: float | None = 2.0,
    persistence: float | None = 2.5,
    status: str = "completed",
    **overrides: object,
) -> dict:
    """A realistic metrics.json for a finished forecasting run."""
    scores = {"mse": rmse**2, "rmse": rmse, "mae": 0.8 * rmse, "r2": 0.91} if rmse is not None else None
    test = scores and {**scores, "mape": 1.2, "direction_accuracy": 0.52}
    metrics = {
        "run_id": run_id, "name": name, "status": status, "model": "mingru", "backend": "numpy",
        "dataset": "AAPL", "seed": 0, "params": 12345, "epochs_run": 20, "best_epoch": 14,
        "train_seconds": 12.3, "seconds_per_epoch": 0.615, "samples_per_second": 5700,
        "config": {"hidden_size": 128, "n_layers": 1, "lr": 0.001, "batch_size": 32, "optimizer": "adam",
                   "seq_len": 20, "horizon": 1, "targets": ["Close"], "transform": "log_return",
                   "normalize": "global"},
        "test": test,
        "test_scaled": {"mse": 0.01, "rmse": 0.1, "mae": 0.08, "r2": 0.9},
        "val": {"mse": 0.02, "rmse": 0.14, "mae": 0.1, "r2": 0.88},
        "baselines": {"persistence": {"rmse": persistence, "mae": 2.0}, "linear": {"rmse": 2.2, "mae": 1.9}},
        "data": {"sha256": "ab" * 32, "source": "yahoo", "label": "AAPL",
                 "first_date": "2010-01-04", "last_date": "2023-12-29"},
        "versions": {"seqbench": "0.1.0", "numpy": "2.1.0", "torch": None},
    }  # fmt: skip
    metrics.update(overrides)
    return metrics


def _write_run(results: Path, name: str, run_id: str, **kwargs: object) -> Path:
    run_dir = results / name / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps(_metrics(name, run_id, **kwargs)))
    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.5, 0.3, 0.2], "val_loss": [0.6, 0.4, 0.35],
                            "lr": [1e-3] * 3, "seconds": [0.6, 0.6, 0.6]})  # fmt: skip
    history.to_csv(run_dir / "history.csv", index=False)
    return run_dir


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Three runs under two names: aapl-mingru (two runs) and aapl-gru (one)."""
    root = tmp_path / "results"
    _write_run(root, "aapl-mingru", "20261122-153012-3f9a", rmse=2.0)
    _write_run(root, "aapl-mingru", "20261122-160000-0b1c", rmse=3.0)
    _write_run(root, "aapl-gru", "20261121-090000-aaaa", rmse=2.4, model="gru", backend="torch")
    return root


# --- discovery ---------------------------------------------------------------------------------


def test_no_targets_finds_every_run_sorted_by_run_id(results: Path) -> None:
    runs = find_runs([], results)
    assert [run.name for run in runs] == [
        "20261121-090000-aaaa", "20261122-153012-3f9a", "20261122-160000-0b1c",
    ]  # fmt: skip


def test_folder_above_runs_is_searched_recursively(results: Path) -> None:
    assert len(find_runs([str(results / "aapl-mingru")], results)) == 2
    assert len(find_runs([str(results.parent)], results)) == 3


def test_run_dir_and_its_metrics_file(results: Path) -> None:
    run_dir = results / "aapl-gru" / "20261121-090000-aaaa"
    assert find_runs([str(run_dir)], results) == [run_dir]
    assert find_runs([str(run_dir / "metrics.json")], results) == [run_dir]


def test_glob_pattern(results: Path) -> None:
    runs = find_runs([str(results / "aapl-*" / "20261122-*")], results)
    assert [run.parent.name for run in runs] == ["aapl-mingru", "aapl-mingru"]
    assert len(find_runs([str(results / "**" / "metrics.json")], results)) == 3


def test_relative_target_is_also_tried_under_results_dir(results: Path) -> None:
    assert len(find_runs(["aapl-gru"], results)) == 1
    assert len(find_runs(["aapl-*"], results)) == 3


def test_targets_are_deduplicated(results: Path) -> None:
    run_dir = results / "aapl-gru" / "20261121-090000-aaaa"
    assert len(find_runs([str(run_dir), str(results / "aapl-gru"), str(results)], results)) == 3


def test_target_that_matches_nothing_is_an_error(results: Path) -> None:
    with pytest.raises(SeqbenchError, match="no runs found for 'nope-\\*'"):
        find_runs(["nope-*"], results)
    with pytest.raises(SeqbenchError, match="no runs found for"):
        find_runs([str(results / "missing")], results)


@pytest.mark.parametrize("make_dir", [True, False])
def test_empty_results_dir_says_how_to_make_a_run(tmp_path: Path, make_dir: bool) -> None:
    root = tmp_path / "results"
    if make_dir:
        root.mkdir()
    with pytest.raises(SeqbenchError, match=r"`seqbench train --config experiments/quickstart\.yaml`"):
        find_runs([], root)


# --- loading -----------------------------------------------------------------------------------


def test_load_run_adds_run_dir(results: Path) -> None:
    run_dir = results / "aapl-gru" / "20261121-090000-aaaa"
    run = load_run(run_dir)
    assert run is not None
    assert run["model"] == "gru"
    assert run["run_dir"] == str(run_dir)


def test_malformed_metrics_is_skipped_with_a_warning(results: Path) -> None:
    broken = results / "aapl-gru" / "20261123-000000-dead"
    broken.mkdir()
    (broken / "metrics.json").write_text('{"run_id": "20261123-')
    with pytest.warns(UserWarning, match="skipping"):
        assert load_run(broken) is None
    with pytest.warns(UserWarning, match="skipping"):
        runs = load_runs(find_runs([], results))
    assert len(runs) == 3
    assert len(compare_rows([*runs, None])) == 3


def test_load_val_curves(results: Path) -> None:
    curves = compare.load_val_curves(load_runs(find_runs([], results)))
    assert list(curves) == [
        "aapl-gru/20261121-090000-aaaa",
        "aapl-mingru/20261122-153012-3f9a",
        "aapl-mingru/20261122-160000-0b1c",
    ]
    assert list(curves["aapl-gru/20261121-090000-aaaa"]["val_loss"]) == [0.6, 0.4, 0.35]


# --- rows --------------------------------------------------------------------------------------


def test_row_has_every_column_and_the_right_values() -> None:
    (row,) = compare_rows([_metrics("aapl-mingru", "20261122-153012-3f9a", rmse=2.0, persistence=2.5)])
    assert list(row) == COLUMNS
    assert row["run"] == "aapl-mingru/20261122-153012-3f9a"
    assert (row["hidden"], row["lr"], row["params"], row["epochs"]) == (128, 0.001, 12345, 20)
    assert row["s/epoch"] == 0.615
    assert (row["rmse"], row["persistence_rmse"], row["linear_rmse"]) == (2.0, 2.5, 2.2)
    assert row["skill"] == pytest.approx(1 - 2.0 / 2.5)


@pytest.mark.parametrize(("rmse", "persistence"), [(None, 2.5), (2.0, None), (2.0, 0.0), (float("nan"), 2.5)])
def test_skill_is_blank_when_it_cannot_be_computed(rmse: float | None, persistence: float | None) -> None:
    (row,) = compare_rows([_metrics("a", "1", rmse=rmse, persistence=persistence)])
    assert row["skill"] is None


def test_diverged_run_with_null_metrics() -> None:
    metrics = _metrics("a", "20261122-153012-3f9a", status="diverged", rmse=None, val=None,
                       baselines=None, epochs_run=3, seconds_per_epoch=None)  # fmt: skip
    (row,) = compare_rows([metrics])
    assert row["status"] == "diverged"
    for column in ("rmse", "mae", "r2", "persistence_rmse", "linear_rmse", "skill", "s/epoch"):
        assert row[column] is None
    for fmt in ("md", "csv", "json", "table"):
        assert "diverged" in render([row], fmt)


def test_minimal_metrics_do_not_crash() -> None:
    (row,) = compare_rows([{"run_id": "20261122-153012-3f9a", "status": "failed"}])
    assert row["run"] == "?/20261122-153012-3f9a"
    assert row["model"] is None
    assert "failed" in render([row], "md")


def _ett_metrics(name: str = "etth1-96", run_id: str = "20261205-070308-21920f", **overrides: object) -> dict:
    """A long-horizon run that beats persistence but not seasonal persistence or ridge: `scaled` holds
    the papers' MSE and MAE (scaler units) of the model and each baseline."""
    return _metrics(
        name, run_id, rmse=3.965, persistence=5.587, dataset="ETTh1",
        baselines={"persistence": {"rmse": 5.587}, "seasonal": {"rmse": 3.222}, "linear": {"rmse": 2.907}},
        scaled={"model": {"mse": 0.659, "mae": 0.540}, "persistence": {"mse": 1.294, "mae": 0.713},
                "seasonal": {"mse": 0.512, "mae": 0.433}, "linear": {"mse": 0.388, "mae": 0.395}},
        **overrides,
    )  # fmt: skip


def test_a_run_that_seasonal_persistence_beats_has_negative_skill_best() -> None:
    baselines = {"persistence": {"rmse": 2.5}, "seasonal": {"rmse": 1.8}, "linear": {"rmse": 2.2}}
    (row,) = compare_rows([_metrics("a", "1", rmse=2.0, persistence=2.5, baselines=baselines)])
    assert row["skill"] == pytest.approx(1 - 2.0 / 2.5)  # beats persistence ...
    assert row["best_baseline"] == "seasonal"
    assert row["skill_best"] == pytest.approx(1 - 2.0 / 1.8) and row["skill_best"] < 0  # ... not seasonal
    assert "| +0.200 |  | -0.111 | seasonal |" in render([row], "md")


def test_skill_best_of_an_old_run_is_over_the_baselines_it_has() -> None:
    (row,) = compare_rows([_metrics("a", "1", rmse=2.0, persistence=2.5)])  # persistence and linear only
    assert (row["best_baseline"], row["skill_best"]) == ("linear", pytest.approx(1 - 2.0 / 2.2))
    assert all(row[column] is None for column in SCALED_COLUMNS)
    worse = {"persistence": {"rmse": 2.5}, "linear": {"rmse": 3.0}}  # a horizon-1 series: persistence is best
    (row,) = compare_rows([_metrics("a", "1", rmse=2.0, persistence=2.5, baselines=worse)])
    assert (row["best_baseline"], row["skill_best"]) == ("persistence", pytest.approx(row["skill"]))


@pytest.mark.parametrize(
    "baselines",
    [
        None,
        {},
        {"persistence": {"rmse": None}},
        {"persistence": {"rmse": float("nan")}},
        {"other": {"rmse": 1.0}},
    ],
)
def test_skill_best_is_blank_without_a_baseline_rmse(baselines: object) -> None:
    (row,) = compare_rows([_metrics("a", "1", baselines=baselines)])
    assert row["best_baseline"] is None and row["skill_best"] is None


def test_a_baseline_without_a_finite_rmse_is_never_the_best() -> None:
    baselines = {"persistence": {"rmse": 2.5}, "seasonal": {"rmse": float("nan")}, "linear": {"rmse": 0.0}}
    (row,) = compare_rows([_metrics("a", "1", rmse=2.0, baselines=baselines)])
    assert row["best_baseline"] == "linear" and row["skill_best"] is None  # an RMSE of 0: no ratio


def test_an_ett_run_shows_the_papers_scaled_scores() -> None:
    (row,) = compare_rows([_ett_metrics()])
    assert (row["scaled_mse"], row["scaled_mae"]) == (0.659, 0.540)
    assert (row["seasonal_scaled_mse"], row["seasonal_scaled_mae"]) == (0.512, 0.433)
    assert row["best_baseline"] == "linear" and (row["best_scaled_mse"], row["best_scaled_mae"]) == (
        0.388,
        0.395,
    )
    assert row["skill"] > 0 > row["skill_best"]


def test_scaled_columns_are_hidden_unless_a_shown_run_has_them() -> None:
    aapl, ett = compare_rows([_metrics("aapl", "1"), _ett_metrics()])
    for fmt in ("md", "table"):
        assert "scaled" not in render([aapl], fmt) and "scaled" in render([aapl, ett], fmt)
    assert "| best_scaled_mse | best_scaled_mae | status |" in render([aapl, ett], "md")
    assert compare.shown_columns([aapl]) == UNSCALED and compare.shown_columns([aapl, ett]) == COLUMNS
    header = render([aapl], "csv").splitlines()[0]  # csv and json keep every column, for scripts
    assert header.split(",") == COLUMNS
    assert json.loads(render([aapl], "json"))[0]["scaled_mse"] is None
    headers = [column.header.replace("\n", "_") for column in compare.rich_table([aapl]).columns]
    assert "scaled_mse" not in headers
    assert compare.hidden_columns([aapl], 300) == []  # an empty column is not "hidden to fit"


def test_run_caption_explains_skill_best_and_the_scaled_columns_when_shown() -> None:
    aapl, ett = compare_rows([_metrics("aapl", "1"), _ett_metrics()])
    assert "skill_best = 1 - RMSE / RMSE of best_baseline" in compare.run_caption([aapl])
    assert "scaled_mse" not in compare.run_caption([aapl])
    assert "scaler's units" in compare.run_caption([aapl, ett])


# --- sorting -----------------------------------------------------------------------------------


def _rows_with_rmse(values: list[float | None]) -> list[dict]:
    return compare_rows([_metrics("r", f"run{i}", rmse=value) for i, value in enumerate(values)])


def test_sort_ascending_and_descending_with_missing_last() -> None:
    rows = _rows_with_rmse([3.0, None, 1.0, 2.0])
    assert [row["rmse"] for row in sort_rows(rows, "rmse")] == [1.0, 2.0, 3.0, None]
    assert [row["rmse"] for row in sort_rows(rows, "-rmse")] == [3.0, 2.0, 1.0, None]
    assert [row["skill"] is None for row in sort_rows(rows, "-skill")] == [False, False, False, True]


def test_sort_by_text_column() -> None:
    rows = compare_rows([_metrics("b", "2"), _metrics("a", "1"), _metrics("c", "3", model="gru")])
    assert [row["run"] for row in sort_rows(rows, "run")] == ["a/1", "b/2", "c/3"]
    assert [row["model"] for row in sort_rows(rows, "-model")] == ["mingru", "mingru", "gru"]


def test_unknown_sort_key_lists_valid_keys() -> None:
    with pytest.raises(SeqbenchError, match=r"did you mean 'rmse'.*valid keys: run, model"):
        sort_rows(_rows_with_rmse([1.0]), "-rmes")


# --- rendering ---------------------------------------------------------------------------------


@pytest.fixture
def rows(results: Path) -> list[dict]:
    diverged = _metrics("aapl-mamba", "20261122-170000-beef", status="diverged", rmse=None)
    return [*compare_rows(load_runs(find_runs([], results))), *compare_rows([diverged])]


def test_csv_parses_back(rows: list[dict]) -> None:
    frame = pd.read_csv(io.StringIO(render(rows, "csv")))
    assert list(frame.columns) == COLUMNS
    assert len(frame) == len(rows)
    assert frame["rmse"].iloc[0] == pytest.approx(2.4)
    assert frame["skill"].iloc[0] == pytest.approx(1 - 2.4 / 2.5)  # full precision, not rounded
    assert pd.isna(frame["rmse"].iloc[-1])


def test_json_parses_back_with_numbers_as_numbers(rows: list[dict]) -> None:
    records = json.loads(render(rows, "json"))
    assert isinstance(records, list)
    assert len(records) == len(rows)
    assert list(records[0]) == COLUMNS
    assert records[0]["params"] == 12345
    assert isinstance(records[0]["rmse"], float)
    assert records[-1]["rmse"] is None
    assert records[-1]["status"] == "diverged"


def test_markdown_has_header_rule_and_one_row_per_run(rows: list[dict]) -> None:
    lines = render(rows, "md").strip().splitlines()
    assert [cell.strip() for cell in lines[0].strip("|").split("|")] == UNSCALED  # no run has `scaled`
    assert set(lines[1].replace("|", "").replace(":", "")) == {"-"}
    assert len(lines) == 2 + len(rows)
    assert all(line.count("|") == len(UNSCALED) + 1 for line in lines)
    assert "+0.040" in lines[2]  # skill 1 - 2.4 / 2.5, signed


def test_markdown_escapes_pipes() -> None:
    lines = render(compare_rows([_metrics("a|b", "1")]), "md").splitlines()
    assert lines[2].count("|") - lines[2].count("\\|") == len(UNSCALED) + 1


def test_rich_table_has_a_row_per_run(rows: list[dict]) -> None:
    table = compare.rich_table(rows)
    assert [column.header.replace("\n", "_") for column in table.columns] == UNSCALED
    assert table.row_count == len(rows)
    console = Console(file=io.StringIO(), width=300)
    console.print(table)
    assert "aapl-mamba/20261122-170000-beef" in console.file.getvalue()


def test_rich_table_drops_optional_columns_on_a_narrow_terminal(rows: list[dict]) -> None:
    headers = [column.header.replace("\n", "_") for column in compare.rich_table(rows, width=90).columns]
    assert {"run", "model", "rmse", "persistence_rmse", "skill"} <= set(headers)
    assert "backend" not in headers and len(headers) < len(COLUMNS)


def test_unknown_format_is_an_error(rows: list[dict]) -> None:
    with pytest.raises(SeqbenchError, match="unknown format 'xml'"):
        render(rows, "xml")


@pytest.mark.parametrize(
    ("column", "value", "text"),
    [
        ("rmse", 1.234567, "1.235"),
        ("rmse", 0.000123456, "0.0001235"),
        ("lr", 0.001, "0.001"),
        ("params", 12345, "12345"),
        ("rmse", 123456.7, "123457"),
        ("skill", 0.0123, "+0.012"),
        ("skill", -0.5, "-0.500"),
        ("rmse", None, ""),
        ("model", "mingru", "mingru"),
    ],
)
def test_format_value(column: str, value: object, text: str) -> None:
    assert compare.format_value(column, value) == text


def test_rows_show_the_data_fingerprint() -> None:
    run = {"run_id": "20261125-000000-abcd", "name": "x", "data": {"sha256": "0123456789abcdef" * 4}}
    other = {"run_id": "20261125-000001-abcd", "name": "y"}
    rows = compare_rows([run, other])
    assert rows[0]["data"] == "0123456789ab"
    assert rows[1]["data"] is None
    assert "0123456789ab" in render(rows, "md")


# --- what compare leaves out, and says so ------------------------------------------------------


def _cli(args: list[str], columns: int = 200):
    from typer.testing import CliRunner

    from seqbench import cli

    runner = CliRunner()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "stdout", Console(width=columns, file=io.StringIO()))
        result = runner.invoke(cli.app, args)
        table = cli.stdout.file.getvalue()
    return result, table


def test_a_narrow_terminal_notes_the_hidden_columns_on_stderr(results: Path) -> None:
    result, table = _cli(["compare", "--results", str(results)], columns=90)
    assert result.exit_code == 0, result.output
    note = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert len(note) == 1 and "hidden to fit 90 characters: backend, data" in note[0]
    assert "--format md, csv or json" in note[0] and "scaled" not in note[0]  # empty, not hidden
    assert "rmse" in table and "backend" not in table
    wide, _ = _cli(["compare", "--results", str(results)], columns=300)
    assert "note:" not in wide.stderr  # every column fits: nothing to say


def test_grouped_tables_note_hidden_columns_too(results: Path) -> None:
    result, _ = _cli(["compare", "--results", str(results), "--group"], columns=100)
    assert result.exit_code == 0, result.output
    assert "column(s) hidden to fit 100 characters: config_id" in result.stderr


def test_run_folders_without_metrics_are_skipped_with_a_warning(results: Path) -> None:
    killed = results / "aapl-mingru" / "20261123-000000-dead"
    killed.mkdir()
    (killed / "spec.yaml").write_text("name: aapl-mingru\n")
    (killed / "run.log").write_text("epoch 1/20 ...\n")
    (killed / "checkpoint.json").write_text("{}")
    with pytest.warns(UserWarning, match=r"skipped 1 run folder\(s\) without metrics.json") as caught:
        runs = find_runs([], results)
    assert killed not in runs and len(runs) == 3
    assert str(killed) in str(caught[0].message) and "--resume" in str(caught[0].message)
    result, _ = _cli(["compare", "--results", str(results)])
    assert result.exit_code == 0
    assert f"warning: skipped 1 run folder(s) without metrics.json (killed, or still running): {killed}" in (
        result.stderr
    )


def test_only_unfinished_runs_is_still_no_runs_but_says_why(tmp_path: Path) -> None:
    killed = tmp_path / "results" / "x" / "20261123-000000-dead"
    killed.mkdir(parents=True)
    (killed / "spec.yaml").write_text("name: x\n")
    (killed / "run.log").write_text("")
    result, _ = _cli(["compare", "--results", str(tmp_path / "results")])
    assert result.exit_code == 2
    assert "skipped 1 run folder(s)" in result.stderr and "no runs found" in result.stderr


def test_symlinked_run_folders_are_found_and_links_above_are_not_walked(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    run = _write_run(elsewhere, "big-disk", "20261120-000000-abcd")
    results = tmp_path / "results"
    _write_run(results, "local", "20261121-000000-abcd")
    (results / "linked-run").symlink_to(run, target_is_directory=True)  # a run folder kept elsewhere
    (results / "linked-name").symlink_to(elsewhere / "big-disk", target_is_directory=True)
    (results / "root").symlink_to("/", target_is_directory=True)
    (results / "local" / "loop").symlink_to(results, target_is_directory=True)
    (results / "dangling").symlink_to(tmp_path / "missing")
    with pytest.warns(UserWarning) as caught:
        runs = find_runs([], results)
    # the linked run is found once (two links lead to it), and nothing below / was walked
    assert sorted(p.name for p in runs) == ["20261120-000000-abcd", "20261121-000000-abcd"]
    messages = sorted(str(w.message) for w in caught)
    assert messages == [
        f"not following {results / 'local' / 'loop'}: it links to {results}, a folder above it",
        f"not following {results / 'root'}: it links to /, a folder above it",
    ]


def test_control_characters_in_a_metrics_file_are_escaped_in_every_format(results: Path) -> None:
    _write_run(results, "evil", "20261124-000000-abcd", model="mingru\x1b[2J\x07", dataset="a\nb")
    for fmt in ("table", "md", "csv", "json"):
        result, table = _cli(["compare", "--results", str(results), "--format", fmt])
        out = table + result.stdout
        assert result.exit_code == 0, result.output
        assert "\x1b" not in out and "\x07" not in out and "a\nb" not in out
        assert "mingru\\x1b[2J\\x07" in out.replace("\\\\", "\\")


def test_json_output_is_strict(results: Path) -> None:
    _write_run(results, "nan", "20261124-000000-abcd", params=float("nan"), seconds_per_epoch=float("inf"))
    for args in (["--json"], ["--json", "--group"]):
        result, _ = _cli(["compare", "--results", str(results), *args])
        assert result.exit_code == 0, result.output
        json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"non-strict JSON: {name}"))


def test_compare_shows_an_ett_run_next_to_an_old_one(results: Path) -> None:
    run_dir = results / "etth1-96" / "20261205-070308-21920f"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps(_ett_metrics()))
    result, table = _cli(["compare", "--results", str(results), "--no-group"], columns=400)
    assert result.exit_code == 0, result.output
    assert "skill_best = 1 - RMSE / RMSE of best_baseline" in " ".join(table.split())  # the caption
    assert "scaler's units" in " ".join(table.split())
    result, _ = _cli(
        ["compare", "--results", str(results), "--no-group", "--format", "md", "--sort", "skill_best"]
    )
    lines = result.stdout.splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == COLUMNS  # one run has `scaled`: every column
    assert lines[2].startswith("| etth1-96/")  # the lowest skill_best first
    ett = dict(zip(header, (cell.strip() for cell in lines[2].strip("|").split("|")), strict=True))
    assert (ett["skill_best"], ett["best_baseline"], ett["scaled_mse"], ett["seasonal_scaled_mse"]) == (
        "-0.364", "linear", "0.659", "0.512"
    )  # fmt: skip
    aapl = dict(zip(header, (cell.strip() for cell in lines[3].strip("|").split("|")), strict=True))
    assert aapl["scaled_mse"] == "" and aapl["best_baseline"] == "linear"
