"""Where a sweep's runs happen: in this process, in worker processes, or as Ray tasks.

Each executor takes `SweepTask`s and gives back `Outcome`s through the same four calls
(`submit`, `wait`, `result`, `stop`), so that `seqbench.sweeps.sweep.run_sweep` drives them alike:

- `_Inline` (--workers 1): one run at a time in this process;
- `_Processes` (--workers N): a pool of N spawned processes, each with its share of the cores.
  A worker ignores Ctrl-C outside a run and stops when the sweep tells it (SIGTERM); it dies
  with the sweep process (`kill -9` of the sweep leaves no worker behind);
- `_Ray` (--executor ray): Ray tasks of one CPU each, on a local Ray instance or on a cluster
  (`--address`). A task on a machine that cannot see the sweep folder runs in a temporary
  folder and sends the run's files back; the driver writes them into the sweep folder.

A task never raises: `run_task` turns any failure of its run into the outcome's status.
The local worker count is capped at the runs to do and the CPU cores (`local_workers`).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import multiprocessing
import multiprocessing.context
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from seqbench.errors import RunInterrupted, SeqbenchError
from seqbench.io import atomic_path
from seqbench.spec import Spec, shown
from seqbench.sweeps.task import Outcome, SweepTask

EXECUTORS = ("local", "ray")
RAY_MISSING = (
    "--executor ray needs Ray, which is not installed; "
    'pip install -c constraints.txt "seqbench[ray]" (or use --executor local)'
)
# set (to anything but "" or "0") in a worker's environment: it runs in a temporary folder and sends
# the run's files back, as if it could not see the sweep folder (a node without the shared disk)
SEND_BACK_ENV = "SEQBENCH_SEND_RUNS_BACK"


def cpu_cores() -> int:
    """The CPU cores this process may use (its affinity where the OS says it), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def local_workers(requested: int | None, todo: int) -> int:
    """How many runs go at a time on this machine: --workers (default: one per core), at most
    one per CPU core and one per run to do. Asking for more is one `warning:` line."""
    cores = cpu_cores()
    workers = min(requested or cores, cores, max(todo, 1))
    if requested and requested > workers and todo > 0:
        why = _count(todo, "run") + " to do" if todo < cores else _count(cores, "CPU core") + " here"
        message = f"--workers {requested} is more than the {why}: using {_count(workers, 'worker')}"
        warnings.warn(message, UserWarning, stacklevel=2)
    return workers


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def run_task(
    task: SweepTask, sweep_dir: str, data_dir: str, cwd: str | None = None, threads: int | None = None
) -> Outcome:
    """Run (or resume) one task in this process; any failure becomes the outcome's status."""
    from seqbench.run.experiment import RunLog, resume_experiment, run_experiment
    from seqbench.training.learners import thread_limit

    start = time.perf_counter()
    if cwd and Path(cwd).is_dir():
        os.chdir(cwd)  # relative paths in the spec (a CSV file) mean what they meant to the sweep
    try:
        with thread_limit(threads):
            if task.resume_dir and Path(task.resume_dir).is_dir():
                finished = _finished(task, Path(task.resume_dir), start)
                if finished is not None:  # it ended since the sweep was planned (a worker left running)
                    return finished
                result = resume_experiment(Path(task.resume_dir), Path(data_dir), RunLog(None))
            else:
                spec = Spec.model_validate(task.spec)
                result = run_experiment(spec, Path(sweep_dir), Path(data_dir), RunLog(None))
    except RunInterrupted as exc:  # stopped before it began to train: nothing changed
        return Outcome(task, "interrupted", message=str(exc), seconds=time.perf_counter() - start)
    except KeyboardInterrupt:  # a second Ctrl-C, or a cancelled Ray task: stopped at once
        message = "stopped by SIGINT at once (a second Ctrl-C); the checkpoint of its last epoch is kept"
        return Outcome(task, "interrupted", message=message, seconds=time.perf_counter() - start)
    except SeqbenchError as exc:
        return Outcome(task, "failed", message=str(exc), seconds=time.perf_counter() - start)
    except Exception as exc:  # a crash in one run is that run's status, not the end of the sweep
        message = f"{type(exc).__name__}: {exc}"
        return Outcome(task, "failed", message=message, seconds=time.perf_counter() - start)
    return _outcome(task, result.run_dir, result.metrics, result.message, start)


def _outcome(task: SweepTask, run_dir: Path, metrics: dict[str, Any], message: str, start: float) -> Outcome:
    from seqbench.results.compare import headline_scores

    score, baseline = headline_scores(metrics)
    return Outcome(
        task,
        str(metrics.get("status")),
        str(run_dir),
        message.replace("\n", "; "),
        score,
        baseline,
        time.perf_counter() - start,
    )


def _finished(task: SweepTask, run_dir: Path, start: float) -> Outcome | None:
    """The outcome of a run to resume that has completed (all its files there) or diverged meanwhile."""
    from seqbench.artifacts.runs import read_metrics
    from seqbench.run.experiment import missing_artifacts

    metrics = read_metrics(run_dir)
    status = metrics.get("status")
    if status == "diverged" or (status == "completed" and not missing_artifacts(run_dir)):
        return _outcome(task, run_dir, metrics, "", start)
    return None


def run_remote_task(task: SweepTask, sweep_dir: str, data_dir: str, cwd: str | None = None) -> Outcome:
    """`run_task` on a machine that may not see the sweep folder: then run in a temporary folder
    and send the run's files back with the outcome (the driver writes them into the sweep).

    A worker with SEQBENCH_SEND_RUNS_BACK set sends its runs back even if it sees the folder.
    """
    if Path(sweep_dir).is_dir() and os.environ.get(SEND_BACK_ENV, "") in ("", "0"):
        return run_task(task, sweep_dir, data_dir, cwd, threads=1)
    task = dataclasses.replace(task, resume_dir=None)  # a run to resume is in a folder it cannot see
    with tempfile.TemporaryDirectory(prefix="seqbench-") as tmp:
        outcome = run_task(task, tmp, data_dir, cwd, threads=1)
        if outcome.run_dir and Path(outcome.run_dir).is_relative_to(tmp):
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


# --- worker processes --------------------------------------------------------------------------

PR_SET_PDEATHSIG = 1  # linux/prctl.h
ORPHAN_GRACE_S = 10.0  # a worker whose sweep died lets its run stop at its next batch, this long at most
_worker: dict[str, Any] = {"stop": None, "running": False}  # the state of this worker process


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM ignored while a worker process is started (a few milliseconds).

    A new process inherits ignored signals, so a Ctrl-C while a worker boots (imports) cannot
    kill it or raise KeyboardInterrupt in it; its initializer then installs its own handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


class _WorkerProcess(multiprocessing.context.SpawnProcess):
    def start(self) -> None:
        with _signals_ignored():
            super().start()


class _WorkerContext(multiprocessing.context.SpawnContext):
    """The spawn start method, with the workers started as `_WorkerProcess`es."""

    Process = _WorkerProcess  # type: ignore[assignment]


def _worker_start(parent: int) -> None:
    """Initializer of each worker process: ignore Ctrl-C (the sweep says when to stop, with a
    SIGTERM), record a SIGTERM that comes between runs, and die with the sweep process."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a run in progress has its own handlers
        signal.signal(signal.SIGTERM, _worker_signal)
        if sys.platform.startswith("linux"):  # the kernel sends SIGTERM when the sweep process dies
            with contextlib.suppress(Exception):
                ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        watchdog = threading.Thread(target=_watch_parent, args=(parent,), name="seqbench-parent", daemon=True)
        watchdog.start()  # everywhere, and in case the sweep died before prctl
    except Exception:  # pragma: no cover - an initializer that raises would break the pool
        pass


def _worker_signal(signum: int, frame: Any) -> None:
    _worker["stop"] = signal.Signals(signum).name


def _watch_parent(parent: int) -> None:
    """Once the sweep process is gone (killed), stop the run in progress (at its next batch, so
    that it keeps its checkpoint) and exit: a worker never outlives its sweep for long."""
    while os.getppid() == parent:
        time.sleep(0.25)
    deadline = time.monotonic() + ORPHAN_GRACE_S
    while _worker["running"] and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            os.kill(os.getpid(), signal.SIGTERM)  # again and again: the run may not listen yet
        time.sleep(0.5)
    os._exit(1)


def _worker_task(task: SweepTask, *args: Any) -> Outcome:
    """`run_task` in a worker process; a task that comes after a stop is not started."""
    if _worker["stop"]:
        message = f"not started: the sweep was stopped by {_worker['stop']}"
        return Outcome(task, "interrupted", message=message)
    _worker["running"] = True
    try:
        return run_task(task, *args)
    finally:
        _worker["running"] = False


class _Processes:
    """Up to `workers` runs at a time, each in a worker process (spawned: safe with Torch too).

    Each worker gets an equal share of the cores for its BLAS threads. To stop, the sweep sends
    the workers SIGTERM (again every second until their runs have ended); their runs stop at
    the next batch with status interrupted. A worker ignores SIGINT outside a run.
    """

    def __init__(self, sweep_dir: Path, data_dir: Path, workers: int) -> None:
        self.capacity = workers
        threads = max(1, cpu_cores() // workers)
        self.args = (str(sweep_dir), str(data_dir), os.getcwd(), threads)
        self.stopping: str | None = None  # the signal that stopped the sweep
        self.signalled = 0.0
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        with _signals_ignored():  # it may start multiprocessing's resource tracker
            return ProcessPoolExecutor(
                self.capacity, mp_context=_WorkerContext(), initializer=_worker_start, initargs=(os.getpid(),)
            )

    def submit(self, task: SweepTask) -> Future[Outcome]:
        try:
            return self.pool.submit(_worker_task, task, *self.args)
        except BrokenProcessPool:  # a worker died (killed, out of memory): the runs in flight with it failed
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new_pool()
            return self.pool.submit(_worker_task, task, *self.args)

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        if self.stopping and time.monotonic() - self.signalled > 1.0:
            self._signal_workers()  # a worker that was starting, or preparing a run, may have missed it
        done, _ = wait_futures(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Future[Outcome], task: SweepTask) -> Outcome:
        try:
            outcome = handle.result()
        except BrokenProcessPool as exc:  # this run's worker, or another one, died (killed, out of memory)
            if self.stopping:
                message = f"stopped by {self.stopping}: its worker process ended"
                return Outcome(task, "interrupted", message=message)
            return Outcome(task, "failed", message=f"worker process died: {exc}")
        except KeyboardInterrupt:
            return Outcome(task, "interrupted", message="stopped by SIGINT")
        except BaseException as exc:  # run_task returns its errors; this is the worker's own failure
            return Outcome(task, "failed", message=f"worker process failed: {type(exc).__name__}: {exc}")
        if self.stopping and outcome.status == "interrupted":  # the workers had the sweep's SIGTERM
            outcome.message = outcome.message.replace("stopped by SIGTERM", f"stopped by {self.stopping}", 1)
        return outcome

    def stop(self, signal_name: str, running: list[Any]) -> None:
        """Tell the workers to stop (SIGTERM, whichever signal stopped the sweep)."""
        self.stopping = signal_name
        self._signal_workers()

    def _signal_workers(self) -> None:
        self.signalled = time.monotonic()
        for child in multiprocessing.active_children():
            if child.pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
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
        elif self.started:  # `workers` is already capped by `local_workers`
            ray.init(num_cpus=workers or cpu_cores(), include_dashboard=False, logging_level=logging.WARNING)
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
        try:
            land_files(outcome, self.sweep_dir)
        except OSError as exc:  # disk full, permission denied: this run is lost, not the sweep
            outcome.files = None
            message = f"could not write the run's files into {self.sweep_dir}: {exc.strerror or exc}"
            return Outcome(task, "failed", outcome.run_dir, message, seconds=outcome.seconds)
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
    executor: str,
    sweep_dir: Path,
    data_dir: Path,
    workers: int | None,
    address: str | None,
    todo: int | None = None,
) -> _Inline | _Processes | _Ray:
    """The executor of a sweep with `todo` runs to do (None: unknown, not capped by it)."""
    check_executor(executor, address)
    if executor == "ray" and address:  # a cluster: --workers caps the runs in flight
        return _Ray(sweep_dir, data_dir, workers, address)
    count = local_workers(workers, todo if todo is not None else 1_000_000)
    if executor == "ray":
        return _Ray(sweep_dir, data_dir, count, address)
    return _Inline(sweep_dir, data_dir) if count == 1 else _Processes(sweep_dir, data_dir, count)
