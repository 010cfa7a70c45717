"""Where a sweep's runs happen: in this process, in worker processes, or as Ray tasks.

Each executor takes `SweepTask`s and gives back `Outcome`s through the same four calls
(`submit`, `wait`, `result`, `stop`), so that `seqbench.sweep.run_sweep` drives them alike:

- `_Inline` (--workers 1): one run at a time in this process;
- `_Processes` (--workers N): a pool of N spawned processes, each with its share of the cores;
- `_Ray` (--executor ray): Ray tasks of one CPU each, on a local Ray instance or on a cluster
  (`--address`). A task on a machine that cannot see the sweep folder runs in a temporary
  folder and sends the run's files back; the driver writes them into the sweep folder.

A task never raises: `run_task` turns any failure of its run into the outcome's status.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from seqbench.errors import SeqbenchError
from seqbench.io import atomic_path
from seqbench.spec import Spec, shown
from seqbench.sweep import Outcome, SweepTask

EXECUTORS = ("local", "ray")
RAY_MISSING = (
    "--executor ray needs Ray, which is not installed; "
    'pip install -c constraints.txt "seqbench[ray]" (or use --executor local)'
)


def run_task(
    task: SweepTask, sweep_dir: str, data_dir: str, cwd: str | None = None, threads: int | None = None
) -> Outcome:
    """Run (or resume) one task in this process; any failure becomes the outcome's status."""
    from seqbench.experiment import RunLog, resume_experiment, run_experiment

    start = time.perf_counter()
    if cwd and Path(cwd).is_dir():
        os.chdir(cwd)  # relative paths in the spec (a CSV file) mean what they meant to the sweep
    try:
        with _thread_limit(threads):
            if task.resume_dir and Path(task.resume_dir).is_dir():
                result = resume_experiment(Path(task.resume_dir), Path(data_dir), RunLog(None))
            else:
                spec = Spec.model_validate(task.spec)
                result = run_experiment(spec, Path(sweep_dir), Path(data_dir), RunLog(None))
    except SeqbenchError as exc:
        return Outcome(task, "failed", message=str(exc), seconds=time.perf_counter() - start)
    except Exception as exc:  # a crash in one run is that run's status, not the end of the sweep
        message = f"{type(exc).__name__}: {exc}"
        return Outcome(task, "failed", message=message, seconds=time.perf_counter() - start)
    metrics = result.metrics
    return Outcome(
        task,
        result.status,
        str(result.run_dir),
        result.message.replace("\n", "; "),
        (metrics.get("test") or {}).get("rmse"),
        ((metrics.get("baselines") or {}).get("persistence") or {}).get("rmse"),
        time.perf_counter() - start,
    )


@contextlib.contextmanager
def _thread_limit(threads: int | None) -> Iterator[None]:
    """At most `threads` BLAS/OpenMP threads per run, so that parallel runs share the cores."""
    if threads is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        yield
        return
    with threadpool_limits(limits=threads):
        yield


def run_remote_task(task: SweepTask, sweep_dir: str, data_dir: str, cwd: str | None = None) -> Outcome:
    """`run_task` on a machine that may not see the sweep folder: then run in a temporary folder
    and send the run's files back with the outcome (the driver writes them into the sweep)."""
    if Path(sweep_dir).is_dir():
        return run_task(task, sweep_dir, data_dir, cwd, threads=1)
    with tempfile.TemporaryDirectory(prefix="seqbench-") as tmp:
        outcome = run_task(task, tmp, data_dir, cwd, threads=1)
        if outcome.run_dir:
            run_dir = Path(outcome.run_dir)
            files = [p for p in run_dir.iterdir() if p.is_file() and not p.name.startswith(".")]
            outcome.files = {p.name: p.read_bytes() for p in files}
            outcome.run_dir = f"{run_dir.parent.name}/{run_dir.name}"
    return outcome


def land_files(outcome: Outcome, sweep_dir: Path) -> None:
    """Write a remote run's files into `sweep_dir/<name>/<run_id>/` (metrics.json last)."""
    if not outcome.files or not outcome.run_dir:
        return
    run_dir = sweep_dir / outcome.run_dir
    run_dir.mkdir(parents=True, exist_ok=False)
    for file_name in sorted(outcome.files, key=lambda n: n == "metrics.json"):
        with atomic_path(run_dir / file_name) as tmp:
            tmp.write_bytes(outcome.files[file_name])
    outcome.files = None
    outcome.run_dir = str(run_dir)


class _Inline:
    """One run at a time in this process (--workers 1): no start-up cost, Ctrl-C as in `train`."""

    capacity = 1

    def __init__(self, sweep_dir: Path, data_dir: Path) -> None:
        self.args = (str(sweep_dir), str(data_dir))
        self.results: dict[int, Outcome] = {}

    def submit(self, task: SweepTask) -> int:
        self.results[id(task)] = run_task(task, *self.args)
        return id(task)

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        return list(handles)

    def result(self, handle: Any, task: SweepTask) -> Outcome:
        return self.results.pop(handle)

    def stop(self, signal_name: str, running: list[Any]) -> None:
        pass  # the run in progress had the signal itself

    def close(self) -> None:
        pass


class _Processes:
    """Up to `workers` runs at a time, each in a worker process (spawned: safe with Torch too).

    Each worker gets an equal share of the cores for its BLAS threads.
    """

    def __init__(self, sweep_dir: Path, data_dir: Path, workers: int) -> None:
        self.capacity = workers
        threads = max(1, (os.cpu_count() or 1) // workers)
        self.args = (str(sweep_dir), str(data_dir), os.getcwd(), threads)
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.capacity, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, task: SweepTask) -> Future[Outcome]:
        try:
            return self.pool.submit(run_task, task, *self.args)
        except BrokenProcessPool:  # a worker died (killed, out of memory): the runs in flight with it failed
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new_pool()
            return self.pool.submit(run_task, task, *self.args)

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        done, _ = wait_futures(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Future[Outcome], task: SweepTask) -> Outcome:
        try:
            return handle.result()
        except BrokenProcessPool as exc:  # this run's worker, or another one, died (killed, out of memory)
            return Outcome(task, "failed", message=f"worker process died: {exc}")
        except BaseException as exc:  # run_task returns its errors; this is the worker's own failure
            return Outcome(task, "failed", message=f"worker process failed: {type(exc).__name__}: {exc}")

    def stop(self, signal_name: str, running: list[Any]) -> None:
        """Pass a SIGTERM on to the workers (a Ctrl-C in a terminal reaches them by itself)."""
        if signal_name == "SIGTERM":
            for child in multiprocessing.active_children():
                if child.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child.pid, signal.SIGTERM)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class _Ray:
    """Ray tasks of one CPU each, on a local Ray instance or on the cluster at `address`."""

    def __init__(self, sweep_dir: Path, data_dir: Path, workers: int | None, address: str | None) -> None:
        import logging

        try:
            import ray
        except ImportError:
            raise SeqbenchError(RAY_MISSING) from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started and address:
            ray.init(address=address, logging_level=logging.WARNING)
        elif self.started:
            cpus = workers or os.cpu_count() or 1
            ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING)
        # a local instance queues the tasks by its CPUs; on a cluster, --workers caps the tasks in flight
        self.capacity = workers if workers and address else 1_000_000
        self.remote = ray.remote(num_cpus=1, max_retries=0)(run_remote_task)
        self.sweep_dir = sweep_dir
        self.args = (str(sweep_dir.resolve()), str(data_dir.resolve()), os.getcwd())

    def submit(self, task: SweepTask) -> Any:
        return self.remote.remote(task, *self.args)

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        done, _ = self.ray.wait(handles, num_returns=1, timeout=timeout)
        return list(done)

    def result(self, handle: Any, task: SweepTask) -> Outcome:
        try:
            outcome: Outcome = self.ray.get(handle)
        except self.ray.exceptions.TaskCancelledError:
            return Outcome(task, "interrupted", message="cancelled when the sweep was stopped")
        except Exception as exc:  # the task's worker died, or the cluster went away
            return Outcome(task, "failed", message=f"ray task failed: {type(exc).__name__}: {exc}")
        land_files(outcome, self.sweep_dir)
        return outcome

    def stop(self, signal_name: str, running: list[Any]) -> None:
        """Ray's workers do not see the driver's Ctrl-C: cancel their tasks (checkpoints stay)."""
        for handle in running:
            with contextlib.suppress(Exception):
                self.ray.cancel(handle)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def check_executor(executor: str, address: str | None = None) -> None:
    """Refuse an executor that cannot run here (unknown, or Ray not installed) before any work."""
    if executor not in EXECUTORS:
        raise SeqbenchError(f"unknown --executor '{shown(executor)}'; choose local or ray")
    if address and executor != "ray":
        raise SeqbenchError("--address is the address of a Ray cluster; use it with --executor ray")
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise SeqbenchError(RAY_MISSING) from None


def make_executor(
    executor: str, sweep_dir: Path, data_dir: Path, workers: int | None, address: str | None
) -> _Inline | _Processes | _Ray:
    check_executor(executor, address)
    if executor == "ray":
        return _Ray(sweep_dir, data_dir, workers, address)
    workers = workers or os.cpu_count() or 1
    return _Inline(sweep_dir, data_dir) if workers == 1 else _Processes(sweep_dir, data_dir, workers)
