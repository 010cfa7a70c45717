"""Expectations: parsing, judging, and `seqbench train --expect` on both tasks."""

import json

import pytest
from ci_helpers import EXAMPLES, only_run
from cli_helpers import invoke, one_line_error

from seqbench.ci.expect import Expectation, judge, metric_value, numeric_paths, parse_expectation
from seqbench.errors import SeqbenchError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("skill > 0", Expectation("skill", ">", 0.0)),
        ("scaled.model.mse<=0.38", Expectation("scaled.model.mse", "<=", 0.38)),
        ("  bits_per_byte <  2.5 ", Expectation("bits_per_byte", "<", 2.5)),
        ("r2 >= -1e-3", Expectation("r2", ">=", -0.001)),
        ("epochs_run == 20", Expectation("epochs_run", "==", 20.0)),
    ],
)
def test_an_expectation_reads_as_metric_op_number(text, expected):
    assert parse_expectation(text) == expected


@pytest.mark.parametrize(
    "text", ["skill", "skill >", "> 0", "skill => 0", "skill > nan", "skill > x", "a b > 1", 3]
)
def test_anything_else_is_refused(text):
    with pytest.raises(SeqbenchError, match="METRIC OP NUMBER"):
        parse_expectation(text)


def run(**values):
    return {"name": "r", "run_id": "1", "status": "completed", "task": "forecast", **values}


def test_a_verdict_gives_the_value_the_bound_and_by_how_much():
    metrics = run(
        test={"rmse": 2.0}, baselines={"persistence": {"rmse": 2.5}}, scaled={"model": {"mse": 0.412}}
    )
    held, failed = judge(
        [parse_expectation("skill > 0"), parse_expectation("scaled.model.mse <= 0.38")], [metrics], "forecast"
    )
    assert held.passed and held.message == "skill > 0: 0.2, passes by 0.2"
    assert not failed.passed
    assert failed.message == "scaled.model.mse <= 0.38: 0.412, above the bound by 0.032 (8.4%)"


def test_several_seeds_are_judged_on_their_mean():
    runs = [run(test={"rmse": value}) for value in (1.0, 2.0, 4.0)]
    (verdict,) = judge([parse_expectation("rmse < 2")], runs, "forecast")
    assert not verdict.passed and "2.33333" in verdict.message and "mean of 3 seeds" in verdict.run


def test_a_run_without_the_value_fails_its_expectation():
    (verdict,) = judge([parse_expectation("rmse < 2.5")], [run(status="diverged", test=None)], "forecast")
    assert not verdict.passed and "no value" in verdict.message and "diverged" in verdict.message


def test_an_unknown_path_names_the_nearest_one():
    metrics = run(scaled={"model": {"mse": 0.4, "mae": 0.5}})
    assert set(numeric_paths(metrics)) == {"scaled.model.mse", "scaled.model.mae"}
    with pytest.raises(SeqbenchError, match=r"did you mean 'scaled\.model\.mse'"):
        metric_value(metrics, "scaled.model.mes", "forecast")


def test_the_known_metrics_keys_match_a_real_run(smoke_runs, lm_runs):
    """METRICS_KEYS (checked before a run) are the top-level keys of a real run that hold numbers."""
    from seqbench.ci.expect import METRICS_KEYS

    for task, run_dir in (("forecast", smoke_runs["ref"]), ("lm", lm_runs["good"])):
        metrics = json.loads((run_dir / "metrics.json").read_text())
        with_numbers = {path.split(".")[0] for path in numeric_paths(metrics)} - {"seed"}
        assert with_numbers == set(METRICS_KEYS[task]), task


def test_train_judges_expectations_and_exits_1_when_one_fails(tmp_path):
    result = invoke(
        "train", "-q", "-c", EXAMPLES / "smoke.yaml", "--set", "train.epochs=1", "--results", tmp_path,
        "--expect", "rmse < 1000", "--expect", "scaled.model.mse <= 0", "--junit", tmp_path / "j.xml",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith("expect ok: ci-smoke/") and "rmse < 1000" in line for line in lines)
    assert any(line.startswith("expect FAILED: ci-smoke/") and "above the bound by" in line for line in lines)
    assert any("skill > 0" in line for line in lines)  # the spec's own expectation is judged too
    assert lines[-1].startswith("error: ") and "scaled.model.mse <= 0" in lines[-1]
    assert (tmp_path / "j.xml").is_file() and only_run(tmp_path / "ci-smoke").is_dir()


def test_an_unknown_metric_is_exit_2_before_training(tmp_path):
    result = invoke(
        "train", "-q", "-c", EXAMPLES / "smoke.yaml", "--results", tmp_path, "--expect", "skil > 0"
    )
    one_line_error(result, "unknown metric 'skil'")
    assert "did you mean 'skill'" in result.stderr and not (tmp_path / "ci-smoke").exists()


def test_a_malformed_expectation_in_a_spec_is_exit_2(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text((EXAMPLES / "smoke.yaml").read_text().replace("skill > 0", "skill is positive"))
    one_line_error(invoke("train", "-q", "-c", spec, "--results", tmp_path), "is not METRIC OP NUMBER")


def test_expectations_on_an_lm_run(lm_runs):
    root = lm_runs["root"]
    args = ("train", "-q", "-c", root / "lm.yaml", "--results", root / "again", "--set", "train.epochs=1")
    passed = invoke(*args, "--expect", "bits_per_byte < 8", "--expect", "test.nats > 0")
    assert passed.exit_code == 0, passed.output
    assert "expect ok: " in passed.stderr and "bits_per_byte < 8" in passed.stderr
    failed = invoke(*args, "--expect", "bits_per_byte < 0.1")
    assert failed.exit_code == 1 and "bits_per_byte < 0.1" in failed.stderr
    one_line_error(
        invoke(*args, "--expect", "skill > 0"), "unknown metric 'skill' in an expectation for lm runs"
    )
