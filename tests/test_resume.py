"""Interrupt a run (SIGINT, SIGTERM), keep what it had, resume it, and get the uninterrupted result."""

import hashlib
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from cli_helpers import invoke

from seqbench.models.numpy.learner import NumpyLearner

BATCHES = 65  # per epoch: 1026 training windows of SPEC in batches of 16
TIMINGS = {"run_id", "train_seconds", "seconds_per_epoch", "samples_per_second", "val_seconds"}
SPEC = """
name: sig
seed: 3
dataset: {source: synthetic, name: sine, length: 1500, seq_len: 24}
model: {name: gru, hidden_size: 16}
train: {epochs: EPOCHS, batch_size: 16, patience: 0, schedule: cosine}
"""


def write_spec(folder, epochs, name="sig.yaml"):
    path = folder / name
    path.write_text(SPEC.replace("EPOCHS", str(epochs)))
    return path


def numbers(metrics):
    """metrics.json without its timings and run id."""
    return {k: v for k, v in metrics.items() if k not in TIMINGS}


def losses(run_dir):
    return pd.read_csv(run_dir / "history.csv").drop(columns="seconds")


def only_run(results, name="sig"):
    (run_dir,) = (results / name).iterdir()
    return run_dir


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_sigint_mid_epoch_then_resume_reproduces_the_uninterrupted_run(workdir):
    """A real process, a real Ctrl-C after the first epoch line, then --resume: identical metrics."""
    spec = write_spec(workdir, epochs=20)  # the signal has 19 epochs to land in
    command = [sys.executable, "-m", "seqbench", "train", "--config", str(spec), "--results", "stopped"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith("epoch   1/20"):
            process.send_signal(signal.SIGINT)
            break
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, "".join(seen) + err
    assert "interrupted: stopped by SIGINT in epoch" in err and "Traceback" not in err
    assert "resume with: seqbench train --resume stopped/sig/" in err

    run_dir = only_run(workdir / "stopped")
    stopped = json.loads((run_dir / "metrics.json").read_text())
    assert stopped["status"] == "interrupted" and 1 <= stopped["epochs_run"] < 20
    assert len(losses(run_dir)) == stopped["epochs_run"]
    for kept in ("spec.yaml", "history.csv", "model.npz", "predictions.csv", "run.log", "checkpoint.json"):
        assert (run_dir / kept).is_file(), kept
    assert [p.name for p in run_dir.glob("checkpoint-*.npz")] == [
        f"checkpoint-{stopped['epochs_run']:04d}.npz"
    ]

    resumed = invoke("train", "--resume", run_dir, "--json")
    assert resumed.exit_code == 0, resumed.output
    straight = invoke("train", "--config", spec, "--results", "straight", "--json")
    assert straight.exit_code == 0, straight.output

    resumed_metrics, straight_metrics = json.loads(resumed.stdout), json.loads(straight.stdout)
    assert resumed_metrics["status"] == "completed" and resumed_metrics["epochs_run"] == 20
    assert numbers(resumed_metrics) == numbers(straight_metrics)
    assert numbers(json.loads((run_dir / "metrics.json").read_text())) == numbers(straight_metrics)
    pd.testing.assert_frame_equal(losses(run_dir), losses(only_run(workdir / "straight")))
    assert not (run_dir / "checkpoint.json").exists() and not list(run_dir.glob("checkpoint-*"))
    log = (run_dir / "run.log").read_text()
    assert "stopped by SIGINT" in log and f"resume {run_dir} after epoch {stopped['epochs_run']}" in log


def send_signal_at_step(monkeypatch, signum, step):
    """Make the NumPy learner send `signum` to this process during its `step`-th training step."""
    original = NumpyLearner.train_step
    steps = []

    def train_step(self, x, y):
        steps.append(1)
        if len(steps) == step:
            os.kill(os.getpid(), signum)
        return original(self, x, y)

    monkeypatch.setattr(NumpyLearner, "train_step", train_step)


@pytest.mark.parametrize(
    ("signum", "step"),
    [(signal.SIGTERM, 100), (signal.SIGINT, 5)],
    ids=["SIGTERM in epoch 2", "SIGINT in epoch 1"],
)
def test_a_signal_stops_the_run_at_the_next_batch_and_resume_finishes_it(workdir, monkeypatch, signum, step):
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    spec = write_spec(workdir, epochs=3)
    send_signal_at_step(monkeypatch, signum, step)  # BATCHES batches per epoch

    result = invoke("train", "--config", spec, "--results", "stopped", "--json")

    assert result.exit_code == 130, result.output
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers  # restored after the run
    run_dir = only_run(workdir / "stopped")
    metrics = json.loads(result.stdout)
    assert metrics["status"] == "interrupted"
    assert metrics["epochs_run"] == step // BATCHES and metrics["best_epoch"] == step // BATCHES
    name = signal.Signals(signum).name
    assert f"interrupted: stopped by {name} in epoch {step // BATCHES + 1}" in result.stderr
    assert json.loads((run_dir / "checkpoint.json").read_text())["epoch"] == step // BATCHES

    monkeypatch.undo()
    monkeypatch.chdir(workdir)
    resumed = invoke("train", "--resume", run_dir, "--json", "--quiet")
    straight = invoke("train", "--config", spec, "--results", "straight", "--json", "--quiet")
    assert resumed.exit_code == 0 and straight.exit_code == 0, resumed.output + straight.output
    assert numbers(json.loads(resumed.stdout)) == numbers(json.loads(straight.stdout))


@pytest.fixture
def finished_run(workdir):
    spec = write_spec(workdir, epochs=2)
    assert invoke("train", "--config", spec, "--quiet").exit_code == 0
    return only_run(workdir / "results")


def test_resuming_a_completed_run_is_refused_and_changes_nothing(finished_run):
    before = digest(finished_run)
    result = invoke("train", "--resume", finished_run)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: cannot resume {finished_run}: it completed, and a finished run is never overwritten; "
        f"to run it again: seqbench train --config {finished_run / 'spec.yaml'}\n"
    )
    assert digest(finished_run) == before


def test_resuming_a_diverged_run_is_refused(workdir):
    spec = workdir / "div.yaml"
    spec.write_text(
        "dataset: {source: synthetic, name: sine, length: 300}\nmodel: {name: mingru, hidden_size: 4}\n"
        "train: {epochs: 3, optimizer: sgd, momentum: 0, lr: 1000, grad_clip: 0}\n"
    )
    assert invoke("train", "--config", spec, "--quiet").exit_code == 1
    run_dir = only_run(workdir / "results", "div")
    result = invoke("train", "--resume", run_dir)
    assert result.exit_code == 2 and "it diverged, and would diverge again" in result.stderr


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda run: None, "no such run folder"),
        (lambda run: run.mkdir(parents=True), "not a run folder (it has no spec.yaml)"),
    ],
    ids=["missing", "not a run folder"],
)
def test_resuming_something_that_is_not_a_run_is_refused(workdir, damage, message):
    run_dir = workdir / "results" / "x" / "20260101-000000-abcdef"
    damage(run_dir)
    result = invoke("train", "--resume", run_dir)
    assert result.exit_code == 2 and message in result.stderr
    assert "Traceback" not in result.output


@pytest.fixture
def interrupted_run(workdir, monkeypatch):
    spec = write_spec(workdir, epochs=3)
    send_signal_at_step(monkeypatch, signal.SIGTERM, 70)
    assert invoke("train", "--config", spec, "--quiet").exit_code == 130
    monkeypatch.undo()
    monkeypatch.chdir(workdir)
    return only_run(workdir / "results")


def pickled_npz(path, sentinel):
    """An .npz whose one array is a pickled object that would create `sentinel` if unpickled."""

    class Payload:
        def __reduce__(self):
            return (open, (str(sentinel), "w"))

    array = np.empty(1, dtype=object)
    array[0] = Payload()
    np.savez(path, **{"learner/params/head.weight": array})


def point_checkpoint_at(run_dir, npz_name):
    record = json.loads((run_dir / "checkpoint.json").read_text())
    record["sha256"] = hashlib.sha256((run_dir / npz_name).read_bytes()).hexdigest()
    record["arrays"] = npz_name
    (run_dir / "checkpoint.json").write_text(json.dumps(record))


def test_a_checkpoint_is_never_unpickled(interrupted_run, workdir):
    pickled_npz(interrupted_run / "checkpoint-0009.npz", workdir / "pwned")
    point_checkpoint_at(interrupted_run, "checkpoint-0009.npz")
    result = invoke("train", "--resume", interrupted_run)
    assert result.exit_code == 2
    assert "unreadable checkpoint (" in result.stderr
    assert "holds object values, not real numbers" in result.stderr
    assert not (workdir / "pwned").exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda run: (run / "checkpoint.json").unlink(), "it has no checkpoint (checkpoint.json)"),
        (lambda run: (run / "checkpoint.json").write_text("{not json"), "unreadable checkpoint"),
        (lambda run: [p.unlink() for p in run.glob("checkpoint-*.npz")], "missing checkpoint-0001.npz"),
        (
            lambda run: [p.write_bytes(p.read_bytes()[:-9] + b"012345678") for p in run.glob("checkpoint-*")],
            "does not match its sha256",
        ),
        (
            lambda run: (run / "spec.yaml").write_text(
                (run / "spec.yaml").read_text().replace("lr: 0.001", "lr: 0.1")
            ),
            "its spec.yaml changed since the run started",
        ),
    ],
    ids=["no checkpoint", "bad json", "missing arrays", "corrupt arrays", "spec edited"],
)
def test_a_damaged_checkpoint_is_a_clear_error_and_writes_nothing(interrupted_run, damage, message):
    damage(interrupted_run)
    before = digest(interrupted_run)
    result = invoke("train", "--resume", interrupted_run)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert digest(interrupted_run) == before


def test_changed_data_is_refused(interrupted_run, monkeypatch):
    from seqbench.data import synthetic

    original = synthetic.GENERATORS["sine"]
    monkeypatch.setitem(synthetic.GENERATORS, "sine", lambda n, seed, freq: original(n, seed, freq) * 1.01)
    result = invoke("train", "--resume", interrupted_run)
    assert result.exit_code == 2 and "the data of sine changed since the run started" in result.stderr


HOLD_LOCK = """
import sys, time
from pathlib import Path
from seqbench.artifacts.runs import run_lock
with run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(30)
"""


def test_a_run_locked_by_a_live_process_is_refused_and_a_stale_lock_file_is_not(interrupted_run):
    """The lock is an OS lock: a held one refuses, a leftover .lock naming a live pid does not."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:  # a stale .lock whose pid now belongs to another, live process: no longer blocks
        (interrupted_run / ".lock").write_text(str(sleeper.pid))
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(interrupted_run)], stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout.readline().strip() == "locked"  # it took over the stale file
        result = invoke("train", "--resume", interrupted_run)
        assert result.exit_code == 2
        assert f"is in use by another seqbench process (pid {holder.pid})" in result.stderr
        holder.kill()  # kill -9: the kernel releases its lock, the file stays behind
        holder.wait()
        assert (interrupted_run / ".lock").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    result = invoke("train", "--resume", interrupted_run, "--quiet")
    assert result.exit_code == 0, result.output
    assert not (interrupted_run / ".lock").exists()


def test_a_run_started_by_an_older_seqbench_resumes(interrupted_run):
    """Its spec.yaml lacks a key added since (here train.batches_per_epoch): the default fills it in,
    and the checkpoint, made from that file as it was written, still fits."""
    spec_file = interrupted_run / "spec.yaml"
    older = "".join(
        line for line in spec_file.read_text().splitlines(True) if "batches_per_epoch" not in line
    )
    spec_file.write_text(older)
    record = json.loads((interrupted_run / "checkpoint.json").read_text())
    record["spec_sha256"] = hashlib.sha256(older.encode()).hexdigest()  # what that version recorded
    (interrupted_run / "checkpoint.json").write_text(json.dumps(record))
    result = invoke("train", "--resume", interrupted_run, "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads((interrupted_run / "metrics.json").read_text())["status"] == "completed"
