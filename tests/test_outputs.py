"""`-o` of convert, predict and report: never into a run folder, never over a file without --force.

Each refusal is one `error:` line, exit 2, and leaves every file as it was (bytes and mtimes).
"""

import os

import pytest
from cli_helpers import files_of, invoke, one_line_error

SPEC = (
    "name: s\ndataset: {source: synthetic, name: sine, length: 300, seq_len: 8}\n"
    "model: {name: mingru, hidden_size: 4, mingru: {variant: log_space}}\ntrain: {epochs: 1}\n"
)
COMMANDS = {  # each writes its -o file from the run folder
    "convert": lambda run, out: ["convert", run, "--to", "mingru_pytorch", "-o", out],
    "predict": lambda run, out: ["predict", run, "-o", out],
    "report": lambda run, out: ["report", run, "-o", out],
}
SUFFIX = {"convert": ".npz", "predict": ".csv", "report": ".html"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    (root / "s.yaml").write_text(SPEC)
    result = invoke("train", "-q", "-c", root / "s.yaml", "--results", root / "results")
    assert result.exit_code == 0, result.output
    (run,) = (root / "results" / "s").iterdir()
    return run


@pytest.mark.parametrize("command", COMMANDS)
def test_no_command_writes_into_a_run_folder_even_with_force(run_dir, workdir, command):
    (workdir / "link").symlink_to(run_dir)  # a link to the run folder is the run folder
    before = files_of(run_dir.parent.parent)
    for target in [
        run_dir / "model.npz",
        run_dir / "predictions.csv",
        run_dir / "metrics.json",
        run_dir / f"new{SUFFIX[command]}",
        run_dir / "sub" / "deeper" / f"new{SUFFIX[command]}",
        workdir / "link" / f"new{SUFFIX[command]}",
    ]:
        for force in ([], ["--force"]):
            result = invoke(*COMMANDS[command](run_dir, target), *force)
            one_line_error(result, f"is inside the run folder {run_dir}")
    assert files_of(run_dir.parent.parent) == before
    assert not (run_dir / "sub").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_an_existing_file_needs_force(run_dir, workdir, command):
    out = workdir / f"out{SUFFIX[command]}"
    out.write_text("keep me")
    one_line_error(invoke(*COMMANDS[command](run_dir, out)), f"{out} exists; add --force to replace it")
    assert out.read_text() == "keep me"
    result = invoke(*COMMANDS[command](run_dir, out), "--force")
    assert result.exit_code == 0, result.output
    assert out.read_bytes() != b"keep me"
    one_line_error(invoke(*COMMANDS[command](run_dir, workdir)), "is a folder; give -o a file name")
    assert sorted(os.listdir(workdir)) == [out.name]


def test_a_folder_above_the_runs_is_not_a_run_folder(run_dir, workdir):
    out = run_dir.parent / "forecast.csv"  # results/s/: the runs of one name, not a run
    try:
        result = invoke("predict", run_dir, "-o", out)
        assert result.exit_code == 0, result.output
    finally:
        out.unlink(missing_ok=True)


def test_force_is_for_an_export(run_dir, workdir):
    one_line_error(
        invoke("convert", "w.npz", "--config", run_dir / "spec.yaml", "--force"), "are for an export"
    )
