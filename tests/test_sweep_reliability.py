"""Sweeps that are killed, interrupted while starting, asked for too many workers, or given a
grid whose values are the same once validated."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

import seqbench.sweeps.executors
import seqbench.sweeps.sweep
from seqbench.cli import app
from seqbench.errors import SeqbenchError, SpecError
from seqbench.sweeps.executors import local_workers, run_task
from seqbench.sweeps.sweep import plan_sweep

TINY = """
name: tiny
dataset: {source: synthetic, name: sine, length: 300, seq_len: 10}
model: {name: mingru, hidden_size: 4}
train: {epochs: 2, batch_size: 16, patience: 0}
"""
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def workdir(workdir):
    (workdir / "tiny.yaml").write_text(TINY)
    return workdir


def sweep(*args):
    return CliRunner().invoke(app, ["sweep", "--config", "tiny.yaml", *map(str, args)])


def run_folders(sweep_dir):
    return sorted(p.parent for p in sweep_dir.glob("*/*/spec.yaml"))


def with_this_seqbench():
    """The environment of a subprocess that imports this checkout's seqbench."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def seqbench_process(workdir, *args):
    """`python -m seqbench ARGS` in its own session (a Ctrl-C to its group reaches its workers too)."""
    return subprocess.Popen(
        [sys.executable, "-m", "seqbench", *args],
        cwd=workdir,
        env=with_this_seqbench(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def children(pid):
    """The pids of a process's children, from /proc (no psutil)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in task.read_text().split()]
    return found


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited (its new parent may not reap it)


# --- kill -9 of the sweep ----------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc (Linux)")
def test_a_killed_sweep_leaves_no_worker_behind_and_its_rerun_completes_every_run(workdir):
    args = ["sweep", "-c", "tiny.yaml", "--grid", "model.hidden_size=4,6", "--workers", "2",
            "--set", "train.epochs=150"]  # fmt: skip
    sweep_dir = workdir / "results" / "sweeps" / "tiny"
    proc = seqbench_process(workdir, *args)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until both runs have started and finished an epoch
            marks = [{"checkpoint.json", "metrics.json"} & set(os.listdir(r)) for r in run_folders(sweep_dir)]
            if sum(map(bool, marks)) == 2:
                break
            time.sleep(0.05)
        workers = children(proc.pid)
        assert len(workers) >= 2, proc.stderr.read() if proc.poll() is not None else "no workers"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 15
        while any(map(alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(map(alive, workers)), "worker processes outlived the killed sweep"
    finally:
        for pid in filter(alive, workers):
            os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.communicate()

    again = CliRunner().invoke(app, [*args[:5], "--workers", "1", *args[7:]])  # the same sweep, here
    assert again.exit_code == 0, again.output
    assert "failed" not in again.stderr and "failed" not in (sweep_dir / "summary.md").read_text()
    assert "0 to start" in again.stderr.splitlines()[0]  # both runs resumed (or skipped had they completed)
    metrics = [json.loads((r / "metrics.json").read_text()) for r in run_folders(sweep_dir)]
    assert sorted(m["status"] for m in metrics) == ["completed", "completed"]


def test_a_run_to_resume_that_completed_meanwhile_is_completed_not_failed(workdir):
    assert sweep("--grid", "model.hidden_size=4", "--workers", "1", "-q").exit_code == 0
    (run_dir,) = run_folders(workdir / "results" / "sweeps" / "tiny")
    plan = plan_sweep(workdir / "tiny.yaml", ["model.hidden_size=4"], name="again")
    task = seqbench.sweeps.sweep._with_resume(plan.tasks[0], run_dir)  # planned while a worker still ran it
    outcome = run_task(task, str(plan.sweep_dir), "data")
    assert outcome.status == "completed" and outcome.run_dir == str(run_dir.resolve())
    assert outcome.score == json.loads((run_dir / "metrics.json").read_text())["test"]["rmse"]


HOLD_LOCK = """
import sys, time
from pathlib import Path
from seqbench.artifacts.runs import run_lock

run_dir, seconds, metrics = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
with run_lock(run_dir):
    print("locked", flush=True)
    time.sleep(seconds)
    if metrics:  # the run ends: its metrics.json is written, then the lock released
        (run_dir / "metrics.json").write_text(Path(metrics[0]).read_text())
"""


def hold_lock(run_dir, seconds, *metrics):
    """Another process that writes into `run_dir` for `seconds` (a worker left by a killed sweep)."""
    args = [sys.executable, "-c", HOLD_LOCK, str(run_dir), str(seconds), *map(str, metrics)]
    holder = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=with_this_seqbench())
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_rerun_waits_for_a_run_still_written_by_another_process(workdir, monkeypatch):
    assert sweep("--grid", "model.hidden_size=4", "--workers", "1", "-q").exit_code == 0
    sweep_dir = workdir / "results" / "sweeps" / "tiny"
    (run_dir,) = run_folders(sweep_dir)
    finished = workdir / "metrics.json"
    (run_dir / "metrics.json").rename(finished)  # as it is while a worker still trains it
    holder = hold_lock(run_dir, 1.0, finished)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            plan = plan_sweep(workdir / "tiny.yaml", ["model.hidden_size=4"])
    finally:
        holder.wait(30)
    assert plan.todo == [] and plan.done[0].status == "completed"  # skipped, not run a second time
    assert "still being written by another process" in str(caught[0].message)

    monkeypatch.setattr(seqbench.sweeps.sweep, "BUSY_WAIT_S", 0.5)
    (run_dir / "metrics.json").unlink()
    holder = hold_lock(run_dir, 60)
    try:
        busy = pytest.raises(SeqbenchError, match="still in use by another seqbench process")
        with busy, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plan_sweep(workdir / "tiny.yaml", ["model.hidden_size=4"])
    finally:
        holder.kill()
        holder.wait()


# --- Ctrl-C while the workers start ------------------------------------------------------------


def test_ctrl_c_while_the_workers_start_is_an_interruption_not_a_failure(workdir):
    proc = seqbench_process(workdir, "sweep", "-c", "tiny.yaml", "--grid", "model.hidden_size=4,6",
                            "--seeds", "2", "--workers", "2", "--set", "train.epochs=200")  # fmt: skip
    try:
        first = proc.stderr.readline()
        assert first.startswith("sweep tiny: 2 grid points x 2 seeds"), first
        time.sleep(0.3)  # the workers are starting (importing)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "failed" not in err and "KeyboardInterrupt" not in err and "Traceback" not in err
    assert "sweep stopped by SIGINT" in err
    summary = workdir / "results" / "sweeps" / "tiny" / "summary.md"
    if summary.is_file():
        assert "failed" not in summary.read_text()


def test_a_keyboard_interrupt_in_a_run_is_interrupted(workdir, monkeypatch):
    import seqbench.run.experiment

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(seqbench.run.experiment, "run_experiment", interrupted)
    task = plan_sweep(workdir / "tiny.yaml", []).tasks[0]
    outcome = run_task(task, "results", "data")
    assert outcome.status == "interrupted" and "stopped by SIGINT" in outcome.message

    from concurrent.futures import Future

    from seqbench.sweeps.executors import _Processes

    future: Future = Future()
    future.set_exception(KeyboardInterrupt())
    executor = SimpleNamespace(stopping=None)  # a worker that had a KeyboardInterrupt of its own
    assert _Processes.result(executor, future, task).status == "interrupted"  # type: ignore[arg-type]


# --- --workers ---------------------------------------------------------------------------------


def test_workers_are_capped_at_the_runs_to_do_and_the_cores(monkeypatch):
    monkeypatch.setattr(seqbench.sweeps.executors, "cpu_cores", lambda: 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert local_workers(None, 10) == 4 and local_workers(None, 3) == 3 and local_workers(2, 10) == 2
        assert caught == []
        assert local_workers(10000, 3) == 3
        assert local_workers(10000, 100) == 4
        assert local_workers(8, 0) == 1  # nothing to do
    said = [str(w.message) for w in caught]
    assert said == [
        "--workers 10000 is more than the 3 runs to do: using 3 workers",
        "--workers 10000 is more than the 4 CPU cores here: using 4 workers",
    ]


def test_workers_10000_is_one_warning_line_and_a_bounded_pool(workdir, monkeypatch):
    monkeypatch.setattr(seqbench.sweeps.executors, "cpu_cores", lambda: 1)
    result = sweep("--grid", "model.hidden_size=4,6", "--workers", "10000")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert lines == ["warning: --workers 10000 is more than the 1 CPU core here: using 1 worker"]
    assert "[2/2] completed" in result.stderr


# --- grid values that are the same once validated -----------------------------------------------


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ('lr=1e-3,"1e-3"', 'the values 0.001 and "1e-3" are the same train.lr (0.001) once validated'),
        ('hidden_size=4,"4"', 'the values 4 and "4" are the same model.hidden_size (4) once validated'),
        ("model=mingru,{name: mingru}", "mingru and {name: mingru} give the same model once validated"),
    ],
)
def test_grid_values_that_validate_to_the_same_value_are_refused(workdir, grid, message):
    result = sweep("--grid", grid, "--workers", "1")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: --grid ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (workdir / "results").exists()


def test_grid_points_that_are_the_same_config_are_refused(workdir):
    grid = ["model.hidden_size=4,8", "model={name: mingru, hidden_size: 4}"]
    with pytest.raises(SpecError, match=r"--grid points .* are the same config \(config_id [0-9a-f]{12}\)"):
        plan_sweep(workdir / "tiny.yaml", grid, results_dir=workdir / "results")


def test_a_quoted_string_value_keeps_its_type_in_the_point_spec(workdir):
    """A grid string that reads as a number (e.g. a dataset name) stays a string in its spec."""
    plan = plan_sweep(workdir / "tiny.yaml", ['lr=1e-3,"2e-3"'], results_dir=workdir / "results")
    assert [task.spec["train"]["lr"] for task in plan.tasks] == [0.001, 0.002]
    override_text = seqbench.sweeps.sweep._override_text
    assert override_text("1e-3") == '"1e-3"' and override_text("abc") == "abc"
