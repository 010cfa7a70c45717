"""Run folders: unique ids across processes, never overwritten, and write errors that lose nothing."""

import datetime as dt
import errno
import hashlib
import multiprocessing
import os
import pathlib

import pytest
from typer.testing import CliRunner

from seqbench.artifacts import runs
from seqbench.cli import app
from seqbench.errors import RunFailed

runner = CliRunner()
SPEC = "dataset: {source: synthetic, name: sine, length: 300}\nmodel: {hidden_size: 4}\ntrain: {epochs: 2}\n"


def make_run_dirs(results, count, barrier):
    """In a child process: wait for the others, then create `count` run folders in one second."""
    fixed = dt.datetime(2026, 1, 1, 12, 0, 0)
    runs.new_run_id.__defaults__ = (fixed,)  # every id in the same second
    suffixes = iter(os.urandom(4 * count * 8))
    runs.secrets.token_hex = lambda n: f"{next(suffixes) % 64:06x}"  # 64 suffixes: collisions happen
    barrier.wait()
    return [runs.create_run_dir(pathlib.Path(results), "same")[1] for _ in range(count)]


def test_run_ids_are_unique_for_processes_started_in_the_same_second(tmp_path):
    """Two processes create 25 folders each, in the same second, with only 64 possible ids."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(2)
        with context.Pool(2) as pool:
            jobs = [pool.apply_async(make_run_dirs, (str(tmp_path), 25, barrier)) for _ in range(2)]
            ids = [run_id for job in jobs for run_id in job.get(timeout=60)]
    assert len(ids) == len(set(ids)) == 50
    assert all(run_id.startswith("20260101-120000-") for run_id in ids)
    assert sorted(p.name for p in (tmp_path / "same").iterdir()) == sorted(ids)


def test_an_existing_folder_is_never_reused(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "new_run_id", iter(["a", "a", "a", "b"]).__next__)
    assert runs.create_run_dir(tmp_path, "x")[1] == "a"
    (tmp_path / "x" / "a" / "metrics.json").write_text("{}")
    assert runs.create_run_dir(tmp_path, "x")[1] == "b"
    assert (tmp_path / "x" / "a" / "metrics.json").read_text() == "{}"


def test_when_every_id_is_taken_the_run_fails_cleanly(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "new_run_id", lambda: "a")
    runs.create_run_dir(tmp_path, "x")
    with pytest.raises(RunFailed, match="could not create a new run folder"):
        runs.create_run_dir(tmp_path, "x")


@pytest.fixture
def workdir(workdir):
    (workdir / "s.yaml").write_text(SPEC)
    return workdir


def fingerprint(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def fail_writes_of(monkeypatch, name, error):
    """Make the atomic rename onto `name` fail as a full or read-only disk would."""
    from seqbench import io

    real_replace = os.replace

    def replace(source, target):
        if pathlib.Path(target).name == name:
            raise error
        return real_replace(source, target)

    monkeypatch.setattr(io.os, "replace", replace)


@pytest.mark.parametrize(
    ("name", "error", "hint"),
    [
        ("metrics.json", OSError(errno.ENOSPC, "No space left on device"), "free some disk space"),
        ("history.csv", PermissionError(errno.EACCES, "Permission denied"), "check the folder's permissions"),
        ("checkpoint.json", OSError(errno.EROFS, "Read-only file system"), "use --results DIR on a writable"),
    ],
    ids=["disk full", "permission denied", "read-only"],
)
def test_a_write_error_is_one_line_exit_1_and_earlier_runs_are_intact(
    workdir, monkeypatch, name, error, hint
):
    assert runner.invoke(app, ["train", "-c", "s.yaml", "-q"]).exit_code == 0
    earlier = fingerprint(workdir / "results")
    fail_writes_of(monkeypatch, name, error)

    result = runner.invoke(app, ["train", "-c", "s.yaml", "-q"])

    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: cannot write to results/s/20")
    assert f": {error.strerror}; {hint}" in result.stderr and "(earlier runs are untouched)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    now = fingerprint(workdir / "results")
    assert {k: v for k, v in now.items() if k in earlier} == earlier
    assert not [p for p in (workdir / "results").rglob("*") if p.name.endswith(".tmp") or p.name == ".lock"]


def test_an_unwritable_results_folder_is_one_line_exit_1(workdir, monkeypatch):
    real_mkdir = pathlib.Path.mkdir

    def mkdir(self, *args, **kwargs):
        if "results" in self.parts:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    result = runner.invoke(app, ["train", "-c", "s.yaml"])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: cannot write to results/s: Permission denied; check the folder's permissions or use "
        "--results DIR (earlier runs are untouched)\n"
    )


def test_a_run_that_could_not_write_its_results_resumes_once_there_is_room(workdir, monkeypatch):
    """Its checkpoint of the last epoch survives the failed write, so nothing is trained twice."""
    import json

    assert runner.invoke(app, ["train", "-c", "s.yaml", "-q"]).exit_code == 0
    fail_writes_of(monkeypatch, "metrics.json", OSError(errno.ENOSPC, "No space left on device"))
    assert runner.invoke(app, ["train", "-c", "s.yaml", "-q"]).exit_code == 1
    monkeypatch.undo()
    monkeypatch.chdir(workdir)
    # the two run ids may share their second, so tell the runs apart by what they hold
    failed, first = sorted(
        (workdir / "results" / "s").iterdir(), key=lambda run: (run / "metrics.json").exists()
    )
    assert not (failed / "metrics.json").exists() and (failed / "checkpoint.json").exists()

    result = runner.invoke(app, ["train", "--resume", str(failed), "--json"])

    assert result.exit_code == 0, result.output
    assert "after epoch 2 of 2" in result.stderr and "/2  train" not in result.stderr  # nothing retrained
    timings = {"run_id", "train_seconds", "seconds_per_epoch", "samples_per_second", "val_seconds"}
    resumed = {k: v for k, v in json.loads(result.stdout).items() if k not in timings}
    expected = json.loads((first / "metrics.json").read_text())
    assert resumed == {k: v for k, v in expected.items() if k not in timings}


def test_a_download_that_cannot_be_saved_is_one_line_exit_1(workdir, monkeypatch):
    import pandas as pd
    import yfinance

    frame = pd.DataFrame({"Close": [1.0, 2.0]}, index=pd.date_range("2020-01-01", periods=2))
    monkeypatch.setattr(yfinance, "download", lambda *args, **kwargs: frame)
    fail_writes_of(monkeypatch, "AAPL.json", OSError(errno.ENOSPC, "No space left on device"))
    result = runner.invoke(app, ["download", "AAPL"])
    assert result.exit_code == 1
    assert result.stderr == "error: data/AAPL.json: No space left on device\n"
    assert not [p for p in (workdir / "data").iterdir()]  # neither the CSV nor a temporary file


def test_an_older_run_s_test_scaled_is_read_as_test_model_space(tmp_path):
    import json

    old, new = tmp_path / "old" / "run", tmp_path / "new" / "run"
    scores = {"mse": 0.01, "rmse": 0.1, "mae": 0.08, "r2": 0.9}
    for folder, metrics in (
        (old, {"test_scaled": scores}),
        (new, {"test_model_space": scores, "test_scaled": {}}),
    ):
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(metrics))
    assert runs.load_run(old)["test_model_space"] == scores  # written before the new name
    assert runs.load_run(new)["test_model_space"] == scores  # the new name wins
    lm = tmp_path / "lm" / "run"
    lm.mkdir(parents=True)
    (lm / "metrics.json").write_text(json.dumps({"task": "lm", "test": {"bits_per_byte": 2.3}}))
    assert "test_model_space" not in runs.load_run(lm)  # a language model has no model space to speak of
