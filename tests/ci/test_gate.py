"""The regression gate: `compare RUN --against REF --fail-if-worse M`, on both tasks."""

import json

import pytest
from ci_helpers import check_junit
from cli_helpers import invoke, one_line_error

MARGIN = "5%"  # the examples' margin: above the seed-to-seed spread of the smoke spec


@pytest.fixture(scope="module")
def reference(smoke_runs, tmp_path_factory):
    path = tmp_path_factory.mktemp("reference") / "ref.json"
    assert invoke("reference", smoke_runs["ref"], "-o", path).exit_code == 0
    return path


def gate(run_dir, reference, *args, env=None):
    return invoke("compare", run_dir, "--against", reference, "--fail-if-worse", MARGIN, *args, env=env)


def gate_line(result):
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("gate ")]
    return line


def test_the_reference_run_itself_passes(smoke_runs, reference):
    result = gate(smoke_runs["ref"], reference)
    assert result.exit_code == 0, result.output
    assert gate_line(result).startswith("gate ok: ref/") and "equal" in gate_line(result)


def test_a_planted_regression_fails_with_both_numbers(smoke_runs, reference):
    result = gate(smoke_runs["worse"], reference)
    assert result.exit_code == 1, result.output
    line = gate_line(result)
    assert line.startswith("gate FAILED: worse/") and "% worse (margin 5.0%)" in line
    assert "Diebold-Mariano p " in line and "(< 0.05); a regression" in line
    assert result.stderr.strip().splitlines()[-1].startswith("error: 1 of 1 checks failed")


def test_another_seed_is_noise_and_passes(smoke_runs, reference):
    result = gate(smoke_runs["seed1"], reference)
    assert result.exit_code == 0, result.output
    assert gate_line(result).startswith("gate ok: seed1/")


def test_worse_beyond_the_margin_but_not_significant_passes(smoke_runs, reference, tmp_path):
    """The same test losses (DM p = 1) but a reference RMSE 10% lower: worse by the margin, not by chance."""
    data = json.loads(reference.read_text())
    data["metrics"]["test"]["rmse"] *= 0.9
    edited = tmp_path / "ref.json"
    edited.write_text(json.dumps(data))
    result = gate(smoke_runs["ref"], edited)
    assert result.exit_code == 0, result.output
    assert "11.1% worse" in gate_line(result) and "not significant: within noise" in gate_line(result)


def test_a_run_folder_serves_as_the_reference_too(smoke_runs):
    assert gate(smoke_runs["worse"], smoke_runs["ref"]).exit_code == 1
    assert gate(smoke_runs["seed1"], smoke_runs["ref"]).exit_code == 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda m: m["data"].update(sha256="0" * 64),
            "refusing to compare against a reference on different data",
        ),
        (lambda m: m.update(split_id="other"), "refusing to compare against a reference on different splits"),
        (lambda m: m.update(task="lm"), "gate a run against a reference of its own task"),
    ],
)
def test_a_reference_from_other_data_splits_or_task_is_refused(
    smoke_runs, reference, tmp_path, edit, message
):
    data = json.loads(reference.read_text())
    edit(data["metrics"])
    edited = tmp_path / "ref.json"
    edited.write_text(json.dumps(data))
    one_line_error(gate(smoke_runs["ref"], edited), message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail-if-worse", "2%"], "--fail-if-worse needs --against REF"),
        (["--against", "REF", "--fail-if-worse", "-2%"], "is not a margin >= 0"),
        (["--against", "REF", "--fail-if-worse", "two"], "is not a margin >= 0"),
        (["--against", "REF", "--level", "1.5"], "--level 1.5 must be between 0 and 1"),
    ],
)
def test_bad_gate_options_are_exit_2(smoke_runs, reference, args, message):
    args = [str(reference) if arg == "REF" else arg for arg in args]
    one_line_error(invoke("compare", smoke_runs["ref"], *args), message)


def test_junit_and_the_step_summary(smoke_runs, reference, tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    runs = [smoke_runs["ref"], smoke_runs["worse"]]
    junit = tmp_path / "r" / "gate.xml"
    result = gate(runs[0], reference, runs[1], "--junit", junit, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 1, result.output
    cases = check_junit(junit)
    assert [case.get("classname").split("/")[0] for case in cases] == ["seqbench.ref", "seqbench.worse"]
    assert [case.find("failure") is None for case in cases] == [True, False]
    assert "a regression" in cases[1].find("failure").get("message")
    text = summary.read_text()
    assert text.startswith("earlier step\n### seqbench compare against ref/")
    assert "| run " in text and "✅ **gate**" in text and "❌ **gate**" in text


def test_junit_of_train_has_the_run_and_each_expectation(tmp_path, lm_runs):
    root = lm_runs["root"]
    result = invoke(
        "train", "-q", "-c", root / "lm.yaml", "--results", tmp_path, "--set", "train.epochs=1",
        "--expect", "bits_per_byte < 8", "--expect", "bits_per_byte < 0.1", "--junit", tmp_path / "train.xml",
    )  # fmt: skip
    assert result.exit_code == 1
    cases = check_junit(tmp_path / "train.xml")
    assert [case.get("name") for case in cases] == [
        "run: completed", "expect: bits_per_byte < 8", "expect: bits_per_byte < 0.1",
    ]  # fmt: skip
    assert [case.find("failure") is None for case in cases] == [True, True, False]


def test_the_lm_gate_pairs_held_out_blocks(lm_runs, tmp_path):
    ref = tmp_path / "lm-ref.json"
    assert invoke("reference", lm_runs["good"], "-o", ref).exit_code == 0
    same = gate(lm_runs["good"], ref)
    assert same.exit_code == 0 and "bits per byte" in gate_line(same)
    worse = gate(lm_runs["worse"], ref)
    assert worse.exit_code == 1, worse.output
    assert "a regression" in gate_line(worse)


def test_an_lm_reference_refuses_a_forecast_run(lm_runs, smoke_runs, tmp_path):
    ref = tmp_path / "lm-ref.json"
    assert invoke("reference", lm_runs["good"], "-o", ref).exit_code == 0
    one_line_error(gate(smoke_runs["ref"], ref), "gate a run against a reference of its own task")
