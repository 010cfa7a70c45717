"""Run one experiment from a spec: data, model, training, evaluation and the run folder.

Everything that can fail because of the user's input (the spec, the data, the
model name) is checked before the run folder is created, so a bad input leaves
nothing on disk. During training, SIGINT and SIGTERM stop the run at the next batch
(status interrupted); the run folder holds a checkpoint of the last finished epoch
until the run is over, and `resume_experiment` continues from it.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import sys
import warnings
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from seqbench.artifacts.plots import plot_loss_curve
from seqbench.artifacts.predictions_file import FILES, PLAIN
from seqbench.artifacts.runs import (
    append_line,
    check_plain_files,
    create_run_dir,
    read_metrics,
    read_status,
    run_lock,
    write_error,
)
from seqbench.errors import RunFailed, RunInterrupted, SeqbenchError, shown
from seqbench.io import atomic_write_json, atomic_write_text
from seqbench.spec import Spec, dump_spec, load_spec, seed_specs
from seqbench.tasks import task_class, task_for
from seqbench.tasks.base import Task
from seqbench.tasks.common import failed_metrics
from seqbench.training.checkpoint import (
    CHECKPOINT_FILE,
    has_checkpoint,
    read_checkpoint,
    remove_checkpoint,
    save_checkpoint,
)
from seqbench.training.learners import thread_limit
from seqbench.training.loop import Checkpoint, EpochRecord, FitResult, Learner, fit
from seqbench.training.progress import TrainingBar
from seqbench.training.signals import StopRequest, stop_on_signals


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]
    message: str = ""  # for a run that did not complete: what happened and what to do

    @property
    def status(self) -> str:
        return str(self.metrics["status"])

    def raise_for_status(self) -> None:
        """RunFailed (exit 1) for a diverged run, RunInterrupted (exit 130) for an interrupted one."""
        if self.status == "diverged":
            raise RunFailed(self.message)
        if self.status == "interrupted":
            raise RunInterrupted(self.message)


class RunLog:
    """What a run prints: to the terminal (unless quiet) and to its run.log.

    `live` means the stream is an interactive terminal, where a run shows a progress bar;
    while it does, `echo` prints the lines above the bar instead of to the stream.
    """

    def __init__(self, stream: TextIO | None, live: bool | None = None) -> None:
        self.stream = stream
        if live is None:
            live = stream is not None and bool(getattr(stream, "isatty", lambda: False)())
        self.live = live
        self.echo: Callable[[str], None] | None = None
        self.lines: list[str] = []
        self.path: Path | None = None

    def attach(self, path: Path, append: bool = False) -> None:
        """Start writing to `path`, beginning with what was said so far."""
        self.path = path
        if not append:
            path.unlink(missing_ok=True)
        append_line(path, "".join(f"{line}\n" for line in self.lines))

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        if self.echo is not None:
            self.echo(line)
        elif self.stream is not None:
            print(line, file=self.stream, flush=True)
        if self.path is not None:
            append_line(self.path, line + "\n")

    def warn(self, message: str) -> None:
        """A warning: into run.log, and onto stderr even when the run is quiet."""
        line = f"warning: {message}"
        if self.stream is None and self.echo is None:
            print(line, file=sys.stderr, flush=True)
        self(line)


def prepare(spec: Spec, data_dir: Path) -> tuple[Any, Any, Learner]:
    """Load the data, make what training reads, build the model; raises SeqbenchError on bad input.

    (loaded data, training data with `.train` and `.val`, learner), by the spec's task: a forecast's
    (LoadedFrame, Windows, learner), an LM's (LoadedText, TextTraining, learner).
    """
    task = task_for(spec, data_dir)
    learner = task.prepare()
    return task.loaded, task.data, learner


def run_experiment(
    spec: Spec, results_dir: Path = Path("results"), data_dir: Path = Path("data"), log: RunLog | None = None
) -> RunResult:
    """Train `spec` and write its complete run folder; returns the folder and metrics.

    Bad input raises a SeqbenchError before anything is written. A run that diverges or is
    stopped by SIGINT/SIGTERM still writes its folder (status diverged or interrupted; see
    `RunResult.raise_for_status`); an interrupted one keeps its checkpoint for `resume_experiment`.
    A failed write (disk full, permission denied) raises RunFailed.
    """
    log = log or RunLog(None)
    if spec.seeds is not None:  # one run is one seed; several are `run_seeds`
        if len(spec.seeds) > 1:
            raise ValueError(f"run_experiment runs one seed, got seeds {spec.seeds}; use run_seeds")
        spec = seed_specs(spec)[0]
    task = task_for(spec, data_dir)
    learner = _prepare_logged(task, log)
    with (
        stop_on_signals() as stop,
        thread_limit(spec.train.threads),
        _new_run_folder(task, learner, results_dir, log) as run_dir,
    ):
        return _train(task, run_dir, learner, log, stop)


def import_experiment(
    spec: Spec,
    convert: Callable[[Any], dict[str, np.ndarray]],
    source: dict[str, Any],
    results_dir: Path = Path("results"),
    data_dir: Path = Path("data"),
    log: RunLog | None = None,
) -> RunResult:
    """A run folder for weights trained elsewhere: `spec`'s model with `convert(model)`'s weights
    (every weight by seqbench name), scored like a trained run, without training.

    Its history is empty (epochs_run 0), metrics.json says where the weights came from (`source`,
    under `converted_from`), and everything else is a training run's. A conversion error, like any
    bad input, raises before the run folder is created.
    """
    log = log or RunLog(None)
    if spec.seeds is not None:
        spec = seed_specs(spec)[0]
    task = task_for(spec, data_dir)
    learner = _prepare_logged(task, log)
    learner.restore(convert(learner.model))  # type: ignore[attr-defined]
    fit_result = FitResult(weights_given=True)
    note = f": weights converted from {source.get('file')} ({source.get('peer')}), no training"
    with _new_run_folder(task, learner, results_dir, log, note) as run_dir:
        learner.save(run_dir / learner.weights_file)  # type: ignore[attr-defined]
        failure = MemoryFailure(task, run_dir, learner, log, fit_result)
        with failure.catch("evaluating"):
            metrics = failure.metrics = task.evaluate(learner, fit_result, run_dir.name)
            metrics["converted_from"] = source
            write_outputs(run_dir, task, learner, fit_result, metrics, log)
    return RunResult(run_dir, metrics)


@contextlib.contextmanager
def _new_run_folder(
    task: Task, learner: Learner, results_dir: Path, log: RunLog, note: str = ""
) -> Iterator[Path]:
    """A new run folder, locked, with its spec.yaml and run.log begun (a failed write: RunFailed)."""
    run_dir, _ = create_run_dir(results_dir, task.spec.name)
    with writes_into(run_dir), run_lock(run_dir):
        log.attach(run_dir / "run.log")
        atomic_write_text(run_dir / "spec.yaml", dump_spec(task.spec))
        log(f"run {run_dir}{note}")
        _log_header(task, learner, log)
        yield run_dir


def run_seeds(
    spec: Spec,
    results_dir: Path = Path("results"),
    data_dir: Path = Path("data"),
    log_for: Callable[[Spec], RunLog] | None = None,
) -> list[RunResult]:
    """Run `spec` once per seed of `spec.seeds` (or once, with `spec.seed`), one after another.

    Each seed is an ordinary run with its own folder, `seed` in its metrics.json, and the same
    `config_id`. A diverged seed does not stop the others; an interrupted one (Ctrl-C) does, and
    is the last result. `log_for(seed_spec)` gives each run its own log (default: silent).
    """
    results: list[RunResult] = []
    for seed_spec in seed_specs(spec):
        log = log_for(seed_spec) if log_for is not None else RunLog(None)
        result = run_experiment(seed_spec, results_dir, data_dir, log)
        results.append(result)
        if result.status == "interrupted":
            break
    return results


def resume_experiment(run_dir: Path, data_dir: Path = Path("data"), log: RunLog | None = None) -> RunResult:
    """Continue an interrupted run from its checkpoint, with the spec it was started with.

    The result is the run it would have been without the interruption, number for number.
    A completed or diverged run, a folder without a checkpoint, or data or a spec.yaml that
    changed since the run started is a SeqbenchError (exit 2), and nothing is written.
    """
    log = log or RunLog(None)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SeqbenchError(f"cannot resume {run_dir}: no such run folder")
    if not (run_dir / "spec.yaml").is_file():
        raise SeqbenchError(f"cannot resume {run_dir}: not a run folder (it has no spec.yaml)")
    check_plain_files(run_dir)
    with stop_on_signals() as stop, writes_into(run_dir), run_lock(run_dir):
        if read_status(run_dir) == "completed" and missing_artifacts(run_dir):
            return _finish_artifacts(run_dir, data_dir, log)
        _check_resumable(run_dir)
        spec = load_spec(run_dir / "spec.yaml", [], data_dir)
        checkpoint, record = read_checkpoint(run_dir)
        task = task_for(spec, data_dir)
        learner = _prepare_logged(task, log)
        _check_checkpoint_fits(run_dir, task, learner, checkpoint, record)
        if stop.requested:
            raise RunInterrupted(f"stopped by {stop.signal} before resuming; {run_dir} is unchanged")
        log.attach(run_dir / "run.log", append=True)
        log(f"resume {run_dir} after epoch {checkpoint.epoch} of {spec.train.epochs}")
        with thread_limit(spec.train.threads):
            return _train(task, run_dir, learner, log, stop, resume=checkpoint)


def _finish_artifacts(run_dir: Path, data_dir: Path, log: RunLog) -> RunResult:
    """A completed run whose plots or predictions.csv were not written: write them from its weights."""
    missing = missing_artifacts(run_dir)
    metrics = read_metrics(run_dir)
    spec = load_spec(run_dir / "spec.yaml", [], data_dir)
    task = task_for(spec, data_dir)
    learner = _prepare_logged(task, log)
    if (metrics.get("data") or {}).get("sha256") != task.data_sha256:
        raise SeqbenchError(
            f"cannot finish {run_dir}: the data of {spec.dataset.label} changed since the run was trained"
        )
    try:
        learner.load(run_dir / learner.weights_file)
        history = pd.read_csv(run_dir / "history.csv")
    except (OSError, ValueError, KeyError) as exc:
        raise SeqbenchError(f"cannot finish {run_dir}: {exc}") from None
    log.attach(run_dir / "run.log", append=True)
    log(f"finish {run_dir}: writing {', '.join(missing)}")
    failed = write_artifacts(run_dir, task, learner, history, log, only=missing)
    remove_checkpoint(run_dir)
    message = f"could not write {', '.join(failed)} (see the warnings above)" if failed else ""
    return RunResult(run_dir, metrics, message)


@contextlib.contextmanager
def writes_into(run_dir: Path) -> Iterator[None]:
    """Turn a failed write into the run folder (disk full, permission denied) into one RunFailed line."""
    try:
        yield
    except OSError as exc:
        raise write_error(run_dir, exc) from exc
    except MemoryError:  # outside training and evaluation (MemoryFailure): reading the data, a write
        raise RunFailed(
            f"ran out of memory reading the data or writing the run folder; free memory and try again "
            f"(kept what it had in {run_dir})"
        ) from None


def _prepare_logged(task: Task, log: RunLog) -> Learner:
    """`task.prepare()`, with the data's warnings (e.g. dates sorted) said in the run's log."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        learner = task.prepare()
    for warning in caught:
        if issubclass(warning.category, UserWarning) and not issubclass(warning.category, FutureWarning):
            log.warn(str(warning.message))
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return learner


def _log_header(task: Task, learner: Learner, log: RunLog) -> None:
    for line in task.header():
        log(line)
    log(f"model {task.spec.model.name} ({task.spec.model.backend}), {learner.n_params} parameters")


def _check_resumable(run_dir: Path) -> None:
    status = read_status(run_dir)
    again = f"seqbench train --config {run_dir / 'spec.yaml'}"
    if status == "completed":
        raise SeqbenchError(
            f"cannot resume {run_dir}: it completed, and a finished run is never overwritten; "
            f"to run it again: {again}"
        )
    if status == "diverged":
        raise SeqbenchError(
            f"cannot resume {run_dir}: it diverged, and would diverge again; "
            f"start a new run with a lower lr: {again} --set train.lr=..."
        )
    if not has_checkpoint(run_dir):
        raise SeqbenchError(f"cannot resume {run_dir}: it has no checkpoint ({CHECKPOINT_FILE})")


def _check_checkpoint_fits(
    run_dir: Path, task: Task, learner: Learner, checkpoint: Checkpoint, record: dict[str, Any]
) -> None:
    """The checkpoint was made by this spec, on this data, for this model."""
    spec = task.spec
    if record.get("spec_sha256") != _spec_digest(run_dir):
        raise SeqbenchError(
            f"cannot resume {run_dir}: its spec.yaml changed since the run started; "
            "a resumed run must be the run that was started (start a new run for a new spec)"
        )
    if record.get("data_sha256") != task.data_sha256:
        raise SeqbenchError(
            f"cannot resume {run_dir}: the data of {spec.dataset.label} changed since the run started; "
            "start a new run on the new data"
        )
    if checkpoint.epoch > spec.train.epochs:
        raise SeqbenchError(
            f"cannot resume {run_dir}: its checkpoint is after epoch {checkpoint.epoch}, "
            f"but the run has {spec.train.epochs} epochs (an edited checkpoint.json?)"
        )
    try:
        learner.load_state_dict(checkpoint.learner_state)
        current = learner.snapshot()
        best = checkpoint.best_weights
        if set(best) != set(current) or any(best[k].shape != current[k].shape for k in current):
            raise ValueError("the best weights do not fit the model")
    except (KeyError, ValueError) as exc:
        raise SeqbenchError(
            f"cannot resume {run_dir}: the checkpoint does not fit the model ({exc})"
        ) from None


def _train(
    task: Task,
    run_dir: Path,
    learner: Learner,
    log: RunLog,
    stop: StopRequest,
    resume: Checkpoint | None = None,
) -> RunResult:
    """Fit (checkpointing every epoch), evaluate, then write the outputs; the checkpoint stays if
    interrupted."""
    spec, data = task.spec, task.data
    digests = {"spec_sha256": _spec_digest(run_dir), "data_sha256": task.data_sha256}
    n_batches = -(-_n_samples(data.train) // spec.train.batch_size)
    first_epoch = resume.epoch + 1 if resume else 1
    failure = MemoryFailure(task, run_dir, learner, log, resume.progress if resume else FitResult())

    def on_checkpoint(checkpoint: Checkpoint) -> None:
        save_checkpoint(run_dir, checkpoint, digests)
        failure.progress = checkpoint.progress  # what metrics.json says if the next epoch runs out of memory

    with failure.catch("training"), _progress_bar(log, spec.train.epochs, n_batches, first_epoch) as bar:

        def on_epoch(record: EpochRecord, improved: bool) -> None:
            mark = " *" if improved else ""
            log(
                f"epoch {record.epoch:3d}/{spec.train.epochs}  train {record.train_loss:.6f}  "
                f"val {record.val_loss:.6f}  {record.seconds:.2f}s (val {record.val_seconds:.2f}s){mark}"
            )
            if bar is not None:
                bar.on_epoch(record)

        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # divergence is a status
            fit_result = fit(
                learner,
                data.train,
                data.val,
                spec.train,
                np.random.default_rng(spec.seed),
                on_epoch,
                on_batch=bar.on_batch if bar is not None else None,
                should_stop=stop,
                on_checkpoint=on_checkpoint,
                resume=resume,
            )
    learner.save(run_dir / learner.weights_file)
    failure.progress = fit_result
    with failure.catch("evaluating"):
        metrics = failure.metrics = task.evaluate(learner, fit_result, run_dir.name)
        if metrics["status"] == "completed" and not math.isfinite(_headline(task, metrics)):
            metrics["status"] = fit_result.status = "diverged"  # finite training loss, NaN forecasts
        write_outputs(run_dir, task, learner, fit_result, metrics, log)
    message = _ending(spec, run_dir, fit_result, stop)
    if message:
        log(message.replace("\n", "; "))
    if fit_result.status != "interrupted":
        remove_checkpoint(run_dir)
    return RunResult(run_dir, metrics, message)


@dataclass
class MemoryFailure:
    """A run that runs out of memory while training or evaluating: its hint (the task's, naming what
    fills the memory in that stage) said on stderr and in run.log, and metrics.json with status
    `failed` and what the run knows (the epochs finished, the scores if it has them, the error)."""

    task: Task
    run_dir: Path
    learner: Learner
    log: RunLog
    progress: FitResult  # the last finished epoch's (training), or the finished fit (evaluating)
    metrics: dict[str, Any] | None = None  # the scores, once evaluated

    @contextlib.contextmanager
    def catch(self, stage: str) -> Iterator[None]:
        """Out of memory inside (MemoryError, or a device's "out of memory" RuntimeError) becomes
        `fail(stage)`, raised after the handler, so the arrays the traceback held are freed first."""
        try:
            yield
            return
        except (MemoryError, RuntimeError) as exc:
            if not out_of_memory(exc):
                raise
        raise self.fail(stage) from None

    def fail(self, stage: str) -> RunFailed:
        """Write metrics.json (status failed) and history.csv, say the hint; the RunFailed to raise."""
        hint = self.task.memory_hint(stage)
        epochs = self.progress.epochs_run
        if stage == "training":
            what = f"training, in epoch {epochs + 1}"
            kept = f"the checkpoint of epoch {epochs}" if epochs else "the checkpoint of its initial weights"
        else:
            what, kept = stage, "the trained weights"
        if has_checkpoint(self.run_dir):
            kept += f" (with more memory free: seqbench train --resume {self.run_dir})"
        message = (
            f"ran out of memory while {what} ({hint})\n"
            f"kept metrics.json (status failed) and {kept} in {self.run_dir}"
        )
        one_line = message.replace("\n", "; ")
        self.log(f"error: {one_line}")
        metrics = self.metrics or failed_metrics(
            self.task.spec, self.task.loaded, self.learner, self.progress, self.run_dir.name
        )
        metrics.update(status="failed", error=one_line, failed_while=stage)
        atomic_write_text(self.run_dir / "history.csv", history_frame(self.progress).to_csv(index=False))
        atomic_write_json(self.run_dir / "metrics.json", metrics)
        return RunFailed(message)


def out_of_memory(exc: BaseException) -> bool:
    """A MemoryError, or a RuntimeError that says "out of memory" (torch's on a GPU)."""
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()


@contextlib.contextmanager
def _progress_bar(log: RunLog, epochs: int, n_batches: int, first_epoch: int) -> Iterator[TrainingBar | None]:
    """A live bar on a terminal (log lines printed above it); None elsewhere."""
    if not log.live or log.stream is None:
        yield None
        return
    with TrainingBar(log.stream, epochs, n_batches, first_epoch) as bar:
        log.echo = bar.print
        try:
            yield bar
        finally:
            log.echo = None


def _headline(task: Task, metrics: dict[str, Any]) -> float:
    """The score a completed run is quoted by (test RMSE, or an LM's bits per byte); NaN if missing."""
    score = task.headline(metrics)
    return float("nan") if score is None else float(score)


def _n_samples(train: Any) -> int:
    """Samples in an epoch: a forecast's training windows, or an LM's random windows."""
    return len(train.x) if hasattr(train, "x") else len(train)


def _ending(spec: Spec, run_dir: Path, result: FitResult, stop: StopRequest) -> str:
    """What to say about a run that did not complete (two lines at most); '' when it completed."""
    best = (
        f"the best weights so far (epoch {result.best_epoch})" if result.best_epoch else "the initial weights"
    )
    if result.status == "diverged":
        clip = (
            f"or lower train.grad_clip (now {spec.train.grad_clip:g})"
            if spec.train.grad_clip
            else "or enable train.grad_clip (e.g. --set train.grad_clip=1.0)"
        )
        losses = [result.history[-1].train_loss, result.history[-1].val_loss] if result.history else []
        what = (
            "its test forecasts are not finite"
            if losses and all(math.isfinite(x) for x in losses)
            else "the loss became NaN or inf"
        )
        return (
            f"training diverged in epoch {result.epochs_run} ({what}); "
            f"lower train.lr (now {spec.train.lr:g}) {clip}\n"
            f"kept history.csv, metrics.json and {best} in {run_dir}"
        )
    if result.status == "interrupted":
        return (
            f"stopped by {stop.signal or 'a signal'} in epoch {result.epochs_run + 1}; kept {run_dir} "
            f"with {_plural(result.epochs_run, 'finished epoch')} and {best}\n"
            f"resume with: seqbench train --resume {run_dir}"
        )
    return ""


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _spec_digest(run_dir: Path) -> str:
    """The sha256 of the run's spec.yaml as written when it started (the file, not a fresh dump of
    it, so that a later seqbench with more spec keys still resumes the run)."""
    return _digest((run_dir / "spec.yaml").read_text(encoding="utf-8"))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# what a run folder holds besides spec.yaml, run.log, the weights, history.csv and metrics.json:
# written after metrics.json, so that a failure here never loses the model or its scores
ARTIFACT_FORMS = {PLAIN: FILES}  # an artifact written as one of several files: predictions.csv or .csv.xz


def artifacts_of(task: str) -> tuple[str, ...]:
    """The files a finished run folder of `task` holds besides spec.yaml, run.log, the weights,
    history.csv and metrics.json: written after metrics.json, so that a failure here never loses
    the model or its scores."""
    return task_class(task).artifacts


def write_outputs(
    run_dir: Path,
    task: Task,
    learner: Learner,
    fit_result: FitResult,
    metrics: dict[str, Any],
    log: RunLog | None = None,
) -> list[str]:
    """history.csv and metrics.json, then the artifacts; returns the artifacts that failed.

    A failed artifact (a plot, a write) is a `warning:` line in run.log, never an error: the
    trained weights and metrics.json are already on disk, and `--resume` writes what is missing.
    """
    history = history_frame(fit_result)
    atomic_write_text(run_dir / "history.csv", history.to_csv(index=False))
    atomic_write_json(run_dir / "metrics.json", metrics)
    return write_artifacts(run_dir, task, learner, history, log or RunLog(None))


def history_frame(fit_result: FitResult) -> pd.DataFrame:
    return pd.DataFrame(
        [vars(r) for r in fit_result.history], columns=["epoch", "train_loss", "val_loss", "lr", "seconds"]
    )


def write_artifacts(
    run_dir: Path,
    task: Task,
    learner: Learner,
    history: pd.DataFrame,
    log: RunLog,
    only: Collection[str] | None = None,
) -> list[str]:
    """The task's artifacts (those in `only`): a forecast's predictions.csv and two plots, an LM's
    samples.txt and loss curve. Each failure is a warning; returns the failed."""
    writers: dict[str, Callable[[Path], None]] = {
        "loss_curve.png": lambda path: plot_loss_curve(history, path, task.spec.train.min_delta),
        **task.artifact_writers(learner, history),
    }
    failed = []
    for name in task.artifacts:
        if only is not None and name not in only:
            continue
        try:
            writers[name](run_dir / name)
        except MemoryError:
            raise
        except Exception as exc:  # an optional artifact: say it, keep the run
            failed.append(name)
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warn(
                f"could not write {name} ({type(exc).__name__}: {shown(reason)}); the model and metrics.json "
                f"are saved; to write it again: seqbench train --resume {run_dir}"
            )
    return failed


def missing_artifacts(run_dir: Path) -> list[str]:
    """The artifacts a finished run folder should have (by its task) and does not."""
    task = str(read_metrics(run_dir).get("task") or "forecast")
    return [
        name
        for name in artifacts_of(task)
        if not any((run_dir / form).is_file() for form in ARTIFACT_FORMS.get(name, (name,)))
    ]
