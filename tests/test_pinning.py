"""Data-pinned runs: metrics.json fingerprints the data and the split; compare warns or refuses."""

import json

import pytest
from typer.testing import CliRunner

from seqbench.cli import app
from seqbench.data.windows import split_id
from seqbench.errors import SeqbenchError
from seqbench.results.compare import check_pinned, data_mismatches
from seqbench.spec import DatasetSpec, Spec

runner = CliRunner()


def test_metrics_json_fingerprints_the_data_and_the_split(tmp_path, price_csv):
    from seqbench.run.experiment import run_experiment

    spec = Spec.model_validate(
        {
            "name": "pin",
            "dataset": {"source": "csv", "path": str(price_csv), "target": "Close", "seq_len": 8},
            "model": {"name": "gru", "hidden_size": 4},
            "train": {"epochs": 1},
        }
    )
    metrics = run_experiment(spec, tmp_path / "results").metrics
    data = metrics["data"]
    assert data["source"] == "csv" and data["path"] == str(price_csv)
    assert (data["first_date"], data["last_date"], data["rows"]) == ("2015-01-01", "2016-07-13", 400)
    assert data["adjusted"] is None  # a CSV file does not say
    assert len(data["sha256"]) == 64
    assert metrics["split_id"] == split_id(spec.dataset, ["Close"], ["Close"])


def test_builtin_and_synthetic_data_say_what_they_are():
    from seqbench.data.sources import load_frame

    info = load_frame(DatasetSpec(source="builtin", name="sp500")).info
    assert (info["source"], info["name"], info["adjusted"]) == ("builtin", "sp500", True)
    assert info["first_date"] == "1999-01-04" and len(info["sha256"]) == 64
    info = load_frame(DatasetSpec(source="synthetic", name="sine", length=50)).info
    assert (info["name"], info["adjusted"], info["data_seed"]) == ("sine", None, 0)


def test_yahoo_data_records_the_ticker_and_adjustment(tmp_path, price_csv):
    from seqbench.data.sources import load_frame

    (tmp_path / "AAPL.csv").write_text(price_csv.read_text())
    (tmp_path / "AAPL.json").write_text(json.dumps({"source": "yahoo", "adjusted": True, "interval": "1d"}))
    ds = DatasetSpec(source="yahoo", ticker="AAPL", start=None, end=None)
    info = load_frame(ds, tmp_path).info
    recorded = (info["source"], info["ticker"], info["adjusted"], info["interval"])
    assert recorded == ("yahoo", "AAPL", True, "1d")


def test_split_id_covers_the_windowing_and_nothing_else():
    base = DatasetSpec(source="builtin", name="sp500")
    same = split_id(base, ["Close"], ["Close"])
    other_data = DatasetSpec(source="builtin", name="nasdaq")
    assert same == split_id(other_data, ["Close"], ["Close"])  # the data is sha256's job
    changed = [
        split_id(base.model_copy(update={key: value}), ["Close"], ["Close"])
        for key, value in [
            ("seq_len", 30),
            ("horizon", 2),
            ("split", (0.6, 0.2, 0.2)),
            ("transform", "diff"),
            ("scaler", "standard"),
            ("normalize", "window"),
        ]
    ]
    changed += [split_id(base, ["Close", "Open"], ["Close"]), split_id(base, ["Close"], ["Open"])]
    assert same not in changed and len(set(changed)) == len(changed)


# --- compare -------------------------------------------------------------------------------------


def run(name, sha="a" * 64, split="s1", label="AAPL"):
    return {
        "name": name,
        "run_id": "r",
        "data": {"sha256": sha, "source": "yahoo", "ticker": label, "rows": 10,
                 "first_date": "2020-01-01", "last_date": "2020-01-14"},
        "split_id": split,
        "config": {"seq_len": 20, "horizon": 1},
    }  # fmt: skip


def test_same_data_and_split_is_quiet():
    assert data_mismatches([run("a"), run("b"), {"name": "old", "run_id": "r"}]) == []


def test_one_line_per_distinct_mismatch():
    lines = data_mismatches([run("a"), run("b", sha="b" * 64), run("c", sha="b" * 64), run("d")])
    assert len(lines) == 1
    assert lines[0].startswith("different data: a/r (+1 more) [yahoo AAPL 2020-01-01..2020-01-14")
    assert "b/r (+1 more)" in lines[0] and "sha256 bbbbbbbbbbbb" in lines[0]
    lines = data_mismatches([run("a"), run("b", sha="b" * 64), run("c", sha="c" * 64)])
    assert [line.split(":")[0] for line in lines] == ["different data", "different data"]
    lines = data_mismatches([run("a"), run("b", split="s2"), run("c", split="s2")])
    assert lines == [
        "different splits: a/r [seq_len 20, horizon 1, split_id s1] vs b/r (+1 more) [seq_len 20, horizon 1, "
        "split_id s2]"
    ]


def test_strict_refuses():
    assert check_pinned([run("a"), run("b")], strict=True) == []
    with pytest.raises(SeqbenchError, match=r"^--strict: refusing to compare runs on different splits: a/r"):
        check_pinned([run("a"), run("b", split="s2")], strict=True)


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, sha, split in (("a", "a", "s1"), ("b", "b", "s1"), ("c", "a", "s2"), ("d", "a", "s1")):
        run_dir = tmp_path / "results" / name / f"2026-{name}"
        run_dir.mkdir(parents=True)
        metrics = {**run(name, sha * 64, split), "run_id": run_dir.name}
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return tmp_path / "results"


def test_cli_compare_warns_once_per_mismatch(results):
    result = runner.invoke(app, ["compare", "--format", "csv"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, result.stderr
    assert warnings[0].startswith("warning: different data: a/2026-a (+2 more)")
    assert warnings[1].startswith("warning: different splits: a/2026-a (+1 more)")
    assert len(result.stdout.strip().splitlines()) == 5  # header + 4 runs

    result = runner.invoke(app, ["compare", "results/a", "results/d"])
    assert result.exit_code == 0 and "warning" not in result.stderr


def test_cli_compare_strict_refuses_in_one_line(results):
    result = runner.invoke(app, ["compare", "--strict"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --strict: refusing to compare runs on different data: a/2026-a")
    assert "b/2026-b" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not result.stdout
    assert runner.invoke(app, ["compare", "--strict", "results/a", "results/d"]).exit_code == 0
