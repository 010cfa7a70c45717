"""What a run prints: a live bar on a terminal, one plain line per epoch elsewhere, --quiet, --json."""

import io
import json

import pytest
from typer.testing import CliRunner

from seqbench.cli import app
from seqbench.run.experiment import RunLog, run_experiment
from seqbench.spec import Spec

runner = CliRunner()
SPEC = "dataset: {source: synthetic, name: sine, length: 300}\nmodel: {hidden_size: 4}\ntrain: {epochs: 2}\n"


class Terminal(io.StringIO):
    def isatty(self):
        return True


def small_spec():
    return Spec.model_validate(
        {
            "name": "bar",
            "dataset": {"source": "synthetic", "name": "sine", "length": 300},
            "train": {"epochs": 3},
        }
    )


def test_on_a_terminal_a_live_bar_shows_epoch_batch_losses_and_eta(tmp_path):
    terminal = Terminal()
    log = RunLog(terminal)
    assert log.live
    result = run_experiment(small_spec(), tmp_path / "results", tmp_path / "data", log)
    shown = terminal.getvalue()
    for text in ("epoch 3/3", "batch 6/6", "train 0.", "val 0.", "eta"):
        assert text in shown, text
    assert "epoch   3/3  train" in shown  # the epoch lines are printed above the bar
    run_log = (result.run_dir / "run.log").read_text()
    assert "\x1b[" not in run_log and "batch" not in run_log and "epoch   3/3  train" in run_log


def test_elsewhere_one_plain_line_per_epoch(tmp_path):
    stream = io.StringIO()
    log = RunLog(stream)
    assert not log.live
    run_experiment(small_spec(), tmp_path / "results", tmp_path / "data", log)
    lines = stream.getvalue().splitlines()
    assert [line[:12] for line in lines if line.startswith("epoch")] == [
        "epoch   1/3 ",
        "epoch   2/3 ",
        "epoch   3/3 ",
    ]
    assert "\x1b[" not in stream.getvalue() and "batch" not in stream.getvalue()


@pytest.fixture
def workdir(workdir):
    (workdir / "s.yaml").write_text(SPEC)
    return workdir


def test_quiet_prints_only_the_result(workdir):
    result = runner.invoke(app, ["train", "-c", "s.yaml", "--quiet"])
    assert result.exit_code == 0 and result.stderr == ""
    assert "persistence" in result.stdout and "run folder: results/s/" in result.stdout


def test_json_prints_metrics_json_and_nothing_else_on_stdout(workdir):
    result = runner.invoke(app, ["train", "-c", "s.yaml", "--json"])
    assert result.exit_code == 0
    printed = json.loads(result.stdout)
    (run_dir,) = (workdir / "results" / "s").iterdir()
    assert printed == json.loads((run_dir / "metrics.json").read_text())
    assert "epoch   2/2" in result.stderr


def test_compare_json_is_format_json(workdir):
    assert runner.invoke(app, ["train", "-c", "s.yaml", "-q"]).exit_code == 0
    as_json = runner.invoke(app, ["compare", "--json"])
    assert as_json.exit_code == 0
    assert as_json.stdout == runner.invoke(app, ["compare", "--format", "json"]).stdout
    assert json.loads(as_json.stdout)[0]["status"] == "completed"
