"""`seqbench reference`: a small, diff-able file, read back exactly; damaged files refused."""

import json

import numpy as np
import pandas as pd
import pytest
from ci_helpers import copy_run
from cli_helpers import files_of, invoke, one_line_error

from seqbench.ci.reference import read_reference, reference_from_run


def test_a_reference_reads_back_as_the_run_it_came_from(smoke_runs, tmp_path):
    path = tmp_path / "ref.json"
    result = invoke("reference", smoke_runs["ref"], "-o", path)
    assert result.exit_code == 0 and "219 test losses" in result.stderr
    made, read = reference_from_run(smoke_runs["ref"]), read_reference(path)
    assert read.losses == made.losses and read.metrics == made.metrics and read.h == made.h == 1
    assert read.headline == made.headline and read.headline[0] == "rmse"
    lines = path.read_text().splitlines()
    assert sum(line.lstrip().startswith('["') for line in lines) == len(made.losses) == 219  # one per line
    assert path.stat().st_size < 40_000


def test_a_window_loss_is_the_mean_squared_error_of_its_forecasts(smoke_runs):
    """The losses the gate pairs: per test window, the mean over its steps and series."""
    frame = pd.read_csv(smoke_runs["ref"] / "predictions.csv", dtype={"date": str})
    losses = reference_from_run(smoke_runs["ref"]).losses
    expected = ((frame["prediction"] - frame["target"]) ** 2).to_numpy()
    assert np.allclose(list(losses.values()), expected) and list(losses) == list(frame["date"])


def test_the_lm_blocks_add_up_to_the_held_out_score(lm_runs):
    blocks = pd.read_csv(lm_runs["good"] / "heldout_losses.csv")
    metrics = json.loads((lm_runs["good"] / "metrics.json").read_text())
    assert blocks["bytes"].sum() == metrics["test"]["bytes"] and (blocks["start"].diff().dropna() == 64).all()
    mean = (blocks["nats"] * blocks["bytes"]).sum() / blocks["bytes"].sum()
    assert mean == pytest.approx(metrics["test"]["nats"], rel=1e-12)


def test_reference_needs_force_and_never_writes_into_a_run(smoke_runs, tmp_path):
    path = tmp_path / "ref.json"
    path.write_text("keep")
    one_line_error(invoke("reference", smoke_runs["ref"], "-o", path), "exists; add --force")
    assert path.read_text() == "keep"
    assert invoke("reference", smoke_runs["ref"], "-o", path, "--force").exit_code == 0
    before = files_of(smoke_runs["ref"])
    one_line_error(
        invoke("reference", smoke_runs["ref"], "-o", smoke_runs["ref"] / "r.json"), "never writes into"
    )
    assert files_of(smoke_runs["ref"]) == before


def test_a_run_that_did_not_complete_is_no_reference(smoke_runs, tmp_path):
    run_dir = copy_run(smoke_runs["ref"], tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    (run_dir / "metrics.json").write_text(json.dumps({**metrics, "status": "diverged"}))
    one_line_error(
        invoke("reference", run_dir, "-o", tmp_path / "r.json"), "only a completed run can be a reference"
    )
    assert not (tmp_path / "r.json").exists()


def sparse(path):
    with open(path, "ab") as f:
        f.truncate(3 * 2**30)  # 3 GiB that cost no disk


def extra_field(path):
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:5], lines[5] + ",x", *lines[6:]]) + "\n")


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (sparse, "predictions.csv is 3,221,225,472 bytes, over the limit of 268,435,456"),
        (extra_field, "C error: Expected 7 fields in line 6, saw 8"),
    ],
    ids=["3 GiB sparse", "a row with an extra field"],
)
@pytest.mark.parametrize("against", [False, True], ids=["reference", "compare --against"])
def test_a_spoiled_predictions_csv_is_one_line(smoke_runs, tmp_path, spoil, message, against):
    """Once minutes of pandas on 3 GiB (a hang), and pandas' three-line error message (found by
    tests/test_fuzz_files.py)."""
    run_dir = copy_run(smoke_runs["ref"], tmp_path)
    spoil(run_dir / "predictions.csv")
    before = files_of(tmp_path)
    if against:
        args = ("compare", run_dir, "--against", smoke_runs["ref"], "--fail-if-worse", "5%")
    else:
        args = ("reference", run_dir, "-o", tmp_path / "r.json")
    result = invoke(*args)
    one_line_error(result, message)
    assert result.stderr.count("\n") == 1, repr(result.stderr)  # no blank lines after it
    assert files_of(tmp_path) == before


@pytest.mark.parametrize("test", ["abc", None, [1], {}])
def test_a_run_without_a_test_score_is_no_reference(lm_runs, tmp_path, test):
    """Once a TypeError traceback printing a None score (found by tests/test_fuzz_files.py)."""
    run_dir = copy_run(lm_runs["good"], tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    (run_dir / "metrics.json").write_text(json.dumps({**metrics, "test": test}))
    one_line_error(
        invoke("reference", run_dir, "-o", tmp_path / "r.json"),
        "has no test bits_per_byte in its metrics.json",
    )
    assert not (tmp_path / "r.json").exists()


def set_rows(rows):
    return lambda ref: ref["losses"].update(rows=rows)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("not json", "cannot read the reference"),
        ("[" * 5000 + "]" * 5000, "nested too deeply to read"),  # once a RecursionError traceback
        ('{"seqbench_reference": 99}', "is not a seqbench reference file"),
        ("[1, 2]", "is not a seqbench reference file"),
        (set_rows([["2015-01-01", float("nan")]]), "is not a seqbench reference file"),
        (set_rows([["2015-01-01"]]), "is not a seqbench reference file"),
        (set_rows([["2015-01-01", True]]), "is not a seqbench reference file"),
        (lambda ref: ref["losses"].update(h=0), "is not a seqbench reference file"),
        (set_rows([["2015-01-01", 10**400]]), "int too large to convert to float"),  # once a traceback
        (lambda ref: ref.pop("metrics"), "is not a seqbench reference file"),
    ],
)
def test_a_damaged_reference_is_one_line_exit_2(smoke_runs, tmp_path, damage, message):
    path = tmp_path / "damaged.json"
    assert invoke("reference", smoke_runs["ref"], "-o", path).exit_code == 0
    if callable(damage):
        reference = json.loads(path.read_text())
        damage(reference)
        damage = json.dumps(reference)
    path.write_text(damage)
    one_line_error(invoke("compare", smoke_runs["ref"], "--against", path, "--fail-if-worse", "5%"), message)


def test_a_huge_or_missing_reference_is_refused_before_reading(smoke_runs, tmp_path):
    huge = tmp_path / "huge.json"
    with huge.open("wb") as f:
        f.truncate(200 * 2**20)  # sparse: no disk used
    one_line_error(invoke("compare", smoke_runs["ref"], "--against", huge), "larger than 64 MB")
    one_line_error(
        invoke("compare", smoke_runs["ref"], "--against", tmp_path / "no.json"), "is not a reference file"
    )
