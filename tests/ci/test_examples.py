"""examples/ci: the workflows' own commands run here, so the examples cannot rot; the smoke run
they train repeats bit for bit."""

import io
import shlex
import shutil

import pandas as pd
import yaml
from ci_helpers import EXAMPLES, check_junit, only_run
from cli_helpers import invoke

INSTALL = "pip install seqbench"


def github_commands():
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    (job,) = workflow["jobs"].values()
    return [step["run"].strip() for step in job["steps"] if "run" in step]


def gitlab_commands():
    (job,) = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text()).values()
    return [line.strip() for line in job["script"]]


def test_both_workflows_run_the_same_commands():
    assert github_commands() == gitlab_commands()
    commands = github_commands()
    assert commands[0] == INSTALL and all(command.startswith("seqbench ") for command in commands[1:])
    assert any("--fail-if-worse" in command and "--junit" in command for command in commands)


def test_the_workflow_commands_pass_and_repeat_the_smoke_run_bit_for_bit(tmp_path, monkeypatch, smoke_runs):
    shutil.copytree(EXAMPLES, tmp_path / "examples" / "ci")
    monkeypatch.chdir(tmp_path)
    summary = tmp_path / "summary.md"
    for command in github_commands()[1:]:
        result = invoke(*shlex.split(command)[1:], env={"GITHUB_STEP_SUMMARY": str(summary)})
        assert result.exit_code == 0, f"{command}\n{result.output}"
    for report in ("train.xml", "gate.xml"):
        cases = check_junit(tmp_path / "reports" / report)
        assert cases and all(case.find("failure") is None for case in cases)
    assert summary.read_text().count("### seqbench") == 2
    run_dir = only_run(tmp_path / "ci-results" / "ci-smoke")
    for name in ("predictions.csv", "history.csv"):  # history: without the wall-clock column
        ours, again = (path.read_text() for path in (run_dir / name, smoke_runs["ref"] / name))
        assert strip_seconds(ours) == strip_seconds(again), name


def strip_seconds(csv_text):
    """history.csv without a column of seconds (which the clock, not the numbers, decides)."""
    frame = pd.read_csv(io.StringIO(csv_text))
    return frame.drop(columns=[c for c in frame.columns if "second" in c]).to_csv(index=False)
