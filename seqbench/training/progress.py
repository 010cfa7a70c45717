"""A live progress bar for a run on a terminal: epoch, batch, train and val loss, time left.

Used only when stderr is a terminal (see `RunLog.live`); in a pipe or CI log a run prints
one plain line per epoch instead. While the bar is shown, the run's log lines are printed
above it through the bar's console, so the two never garble each other.
"""

from __future__ import annotations

from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from seqbench.training.loop import EpochRecord


class TrainingBar:
    """One bar over every batch still to train (so its ETA is for the whole run)."""

    def __init__(self, stream: TextIO, epochs: int, n_batches: int, first_epoch: int = 1) -> None:
        self.console = Console(file=stream, stderr=True)
        self.epochs, self.n_batches = epochs, n_batches
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            TextColumn("batch {task.fields[batch]}/{task.fields[n_batches]}"),
            TextColumn("train {task.fields[train]}  val {task.fields[val]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        total = max(epochs - first_epoch + 1, 0) * n_batches
        self.task = self.progress.add_task(
            "train", total=total, epoch=first_epoch, epochs=epochs, batch=0, n_batches=n_batches,
            train="-", val="-",
        )  # fmt: skip

    def __enter__(self) -> TrainingBar:
        self.progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.stop()

    def print(self, line: str) -> None:
        """A log line, above the bar."""
        self.progress.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def on_batch(self, epoch: int, batch: int, n_batches: int, train_loss: float) -> None:
        self.progress.update(
            self.task, advance=1, epoch=epoch, batch=batch, n_batches=n_batches, train=f"{train_loss:.5f}"
        )

    def on_epoch(self, record: EpochRecord) -> None:
        self.progress.update(self.task, val=f"{record.val_loss:.5f}", train=f"{record.train_loss:.5f}")
