"""One row per config: grouping runs by config id, mean ± std and n, and every output format."""

from __future__ import annotations

import io
import json
import statistics
from pathlib import Path

import pandas as pd
import pytest
import yaml

from seqbench.results.compare import SCALED_COLUMNS
from seqbench.results.groups import (
    GROUP_COLUMNS,
    GROUP_DATA_COLUMNS,
    display_rows,
    group_rows,
    group_runs,
    has_repeats,
    render_groups,
    rich_group_table,
    run_config_id,
    sort_groups,
)


def run(config: str | None, seed: int, rmse: float | None, persistence: float = 2.0, **extra: object) -> dict:
    """A metrics.json of a finished run, as `runs.load_run` gives it."""
    metrics = {
        "run_id": f"2026-{config}-{seed}", "name": f"sweep-{config}", "status": "completed",
        "model": "mingru", "backend": "numpy", "dataset": "AAPL", "seed": seed, "params": 100,
        "epochs_run": 3, "seconds_per_epoch": 0.1, "config": {"hidden_size": 32, "lr": 0.001},
        "test": None if rmse is None else {"rmse": rmse, "mae": rmse / 2, "r2": 0.5},
        "baselines": {"persistence": {"rmse": persistence}, "linear": {"rmse": 2.1}},
    }  # fmt: skip
    if config is not None:
        metrics["config_id"] = config
    metrics.update(extra)
    return metrics


@pytest.fixture
def runs() -> list[dict]:
    return [
        run("aaa", 0, 1.8),
        run("bbb", 0, 2.4, model="mamba"),
        run("aaa", 1, 2.2),
        run("aaa", 2, 1.9),
        run("bbb", 1, None, status="diverged", model="mamba"),
    ]


def test_runs_of_one_config_are_one_group_in_order_of_their_first_run(runs):
    groups = group_runs(runs)
    assert [[r["seed"] for r in g] for g in groups] == [[0, 1, 2], [0, 1]]
    assert has_repeats(runs) and not has_repeats([runs[0], runs[1]])


def test_mean_std_n_and_seeds_beating_persistence(runs):
    first, _ = group_rows(runs)
    assert list(first) == GROUP_DATA_COLUMNS
    assert (first["config_id"], first["config"], first["model"], first["n"], first["runs"]) == (
        "aaa", "sweep-aaa", "mingru", 3, 3
    )  # fmt: skip
    assert first["seeds"] == [0, 1, 2]
    assert first["rmse"] == pytest.approx(statistics.fmean([1.8, 2.2, 1.9]))
    assert first["rmse_std"] == pytest.approx(statistics.stdev([1.8, 2.2, 1.9]))  # sample std (n - 1)
    assert first["mae"] == pytest.approx(statistics.fmean([0.9, 1.1, 0.95]))
    assert first["persistence_rmse"] == 2.0 and first["persistence_rmse_std"] == 0.0
    assert first["skill"] == pytest.approx(statistics.fmean([1 - 1.8 / 2, 1 - 2.2 / 2, 1 - 1.9 / 2]))
    assert first["beats_persistence"] == 2  # 1.8 and 1.9 beat 2.0; 2.2 does not
    assert first["status"] == "3 completed"


def test_a_diverged_run_counts_in_status_not_in_the_statistics(runs):
    _, second = group_rows(runs)
    assert (second["n"], second["runs"], second["status"]) == (1, 2, "1 completed, 1 diverged")
    assert second["rmse"] == 2.4 and second["rmse_std"] is None  # no spread from one run
    assert second["beats_persistence"] == 0


def test_dm_p_is_the_median_of_the_seeds_p_values():
    runs = [
        run("d", seed, 1.9, significance={"persistence": {"p_value": p}})
        for seed, p in enumerate([0.9, 0.2, 0.4])
    ]
    (row,) = group_rows(runs)
    assert row["dm_p"] == 0.4
    assert "| 0.4 | +0.050 | persistence | 3/3 |" in render_groups([row], "md")


def test_a_config_with_no_completed_run_has_blank_scores():
    (row,) = group_rows([run("x", 0, None, status="diverged")])
    assert row["n"] == 0 and row["rmse"] is None and row["skill"] is None
    assert display_rows([row])[0]["beats_persistence"] == "0/0"


def test_a_run_without_config_id_stands_alone():
    rows = group_rows([run(None, 0, 1.0), run(None, 1, 1.0)])
    assert [row["n"] for row in rows] == [1, 1]


def test_config_id_of_an_older_run_comes_from_its_spec_yaml(tmp_path):
    from seqbench.spec import config_id, load_spec

    spec_text = "dataset: sp500\nmodel: {name: gru, hidden_size: 8}\n"
    (tmp_path / "spec.yaml").write_text(spec_text)
    expected = config_id(load_spec(tmp_path / "spec.yaml"))
    for seed in (0, 1):
        folder = tmp_path / f"run{seed}"
        folder.mkdir()
        (folder / "spec.yaml").write_text(yaml.safe_dump({**yaml.safe_load(spec_text), "seed": seed}))
    older = [run(None, seed, 1.0, run_dir=str(tmp_path / f"run{seed}")) for seed in (0, 1)]
    assert [run_config_id(r) for r in older] == [expected, expected]
    assert [row["n"] for row in group_rows(older)] == [2]
    broken = run(None, 0, 1.0, run_dir=str(tmp_path / "missing"))
    assert run_config_id(broken) is None


def test_sorting_groups_by_mean_and_by_n(runs):
    rows = group_rows(runs)
    assert [row["config_id"] for row in sort_groups(rows, "rmse")] == ["aaa", "bbb"]
    assert [row["config_id"] for row in sort_groups(rows, "-rmse")] == ["bbb", "aaa"]
    assert [row["config_id"] for row in sort_groups(rows, "n")] == ["bbb", "aaa"]
    from seqbench.errors import SeqbenchError

    with pytest.raises(SeqbenchError, match="did you mean 'rmse'"):
        sort_groups(rows, "rmes")


def test_markdown_and_table_show_mean_plus_minus_std(runs):
    rows = group_rows(runs)
    lines = render_groups(rows, "md").strip().splitlines()
    assert [cell.strip() for cell in lines[0].strip("|").split("|")] == [
        column for column in GROUP_COLUMNS if column not in SCALED_COLUMNS
    ]  # no run has `scaled`: its columns are hidden
    assert len(lines) == 2 + len(rows)
    std = statistics.stdev([1.8, 2.2, 1.9])
    assert f"| {statistics.fmean([1.8, 2.2, 1.9]):.4g} ± {std:.2g} |" in lines[2]
    assert "| 2/3 |" in lines[2] and "| 0/1 |" in lines[3]
    text = render_groups(rows, "table")
    assert "±" in text and "sweep-aaa" in text
    assert rich_group_table(rows).row_count == 2


def test_csv_and_json_give_mean_and_std_as_numbers(runs):
    rows = group_rows(runs)
    frame = pd.read_csv(io.StringIO(render_groups(rows, "csv")))
    assert list(frame.columns) == GROUP_DATA_COLUMNS
    assert frame["rmse"].iloc[0] == pytest.approx(statistics.fmean([1.8, 2.2, 1.9]))
    assert frame["beats_persistence"].tolist() == [2, 0]
    records = json.loads(render_groups(rows, "json"))
    assert records[0]["seeds"] == [0, 1, 2] and records[0]["n"] == 3
    assert isinstance(records[0]["rmse_std"], float) and records[1]["rmse_std"] is None


def test_narrow_terminal_keeps_the_scores(runs):
    headers = [c.header.replace("\n", "_") for c in rich_group_table(group_rows(runs), width=100).columns]
    assert {"config", "n", "rmse", "persistence_rmse", "skill", "beats_persistence"} <= set(headers)
    assert "config_id" not in headers


def test_group_rows_from_real_run_folders(tmp_path: Path):
    from seqbench.artifacts.runs import find_runs, load_runs

    for seed, rmse in ((0, 1.0), (1, 3.0)):
        folder = tmp_path / "results" / "x" / f"run{seed}"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(run("ccc", seed, rmse)))
    (row,) = group_rows(load_runs(find_runs([], tmp_path / "results")))
    assert (row["n"], row["rmse"], row["rmse_std"]) == (2, 2.0, pytest.approx(2**0.5))


def ett_run(seed: int, rmse: float, mse: float, **extra: object) -> dict:
    """A seed of a long-horizon config: seasonal persistence and ridge beat it, persistence does not."""
    scaled = {"model": {"mse": mse, "mae": mse - 0.1}, "persistence": {"mse": 1.294, "mae": 0.713},
              "seasonal": {"mse": 0.512, "mae": 0.433}, "linear": {"mse": 0.388, "mae": 0.395}}  # fmt: skip
    baselines = {"persistence": {"rmse": 5.6}, "seasonal": {"rmse": 3.2}, "linear": {"rmse": 2.9}}
    return run("ett", seed, rmse, persistence=5.6, baselines=baselines, scaled=scaled, **extra)


def test_grouped_rows_carry_skill_best_and_the_scaled_scores():
    (row,) = group_rows([ett_run(0, 4.0, 0.65), ett_run(1, 3.8, 0.61), ett_run(2, 4.2, 0.69)])
    assert row["beats_persistence"] == 3 and row["skill"] > 0  # every seed beats persistence ...
    assert row["best_baseline"] == "linear"
    assert row["skill_best"] == pytest.approx(statistics.fmean([1 - r / 2.9 for r in (4.0, 3.8, 4.2)]))
    assert row["skill_best"] < 0 and row["skill_best_std"] > 0  # ... and none beats ridge
    assert (row["scaled_mse"], row["scaled_mse_std"]) == (pytest.approx(0.65), pytest.approx(0.04))
    assert (row["seasonal_scaled_mse"], row["seasonal_scaled_mse_std"]) == (pytest.approx(0.512), 0.0)
    assert (row["best_scaled_mse"], row["best_scaled_mae"]) == (pytest.approx(0.388), pytest.approx(0.395))
    cells = display_rows([row])[0]
    assert cells["scaled_mse"] == "0.65 ± 0.04" and cells["seasonal_scaled_mse"] == "0.512"
    assert cells["skill_best"].startswith("-0.379 ± ")
    md = render_groups([row], "md")
    assert "| scaled_mse | scaled_mae |" in md and "| linear | 0.65 ± 0.04 |" in md
    record = json.loads(render_groups([row], "json"))[0]
    assert record["best_scaled_mae"] == pytest.approx(0.395) and record["scaled_mae_std"] == pytest.approx(
        0.04
    )
    table = rich_group_table([row])
    assert "scaler's units" in str(table.caption) and "skill_best" in str(table.caption)


def test_scaled_group_columns_are_hidden_when_no_config_has_them(runs):
    rows = group_rows([*runs, ett_run(0, 4.0, 0.65)])
    assert "scaled_mse" in render_groups(rows, "md") and "scaled" in str(rich_group_table(rows).caption)
    plain = group_rows(runs)
    assert "scaled" not in render_groups(plain, "md") and "scaled" not in render_groups(plain, "table")
    assert "scaled" not in str(rich_group_table(plain).caption)
    assert "scaled_mse" in render_groups(plain, "csv").splitlines()[0]  # csv keeps every column, empty


def test_best_baseline_of_a_group_is_mixed_when_its_runs_disagree():
    other = {"persistence": {"rmse": 2.0}, "seasonal": {"rmse": 1.5}}
    (row,) = group_rows([run("m", 0, 1.8), run("m", 1, 1.8, baselines=other)])
    assert row["best_baseline"] == "mixed" and row["skill_best"] is not None
