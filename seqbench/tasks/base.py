"""A task as the run drives it, in one pass: prepare, train, evaluate, write.

`seqbench.run.experiment` holds one `Task` per run: `prepare` loads the data, makes what training
reads (`data.train`, `data.val`) and builds the model; the training loop fits it; `evaluate`
gives metrics.json; `artifact_writers` the task's files in the run folder. `ForecastTask`
(seqbench/tasks/forecast.py) and `LMTask` (seqbench/tasks/lm.py) implement it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from seqbench.spec import Spec
from seqbench.training.loop import FitResult, Learner


class Task(ABC):
    """What a run learns and how it is scored (see the module doc)."""

    name: ClassVar[str]  # the spec's `task`
    artifacts: ClassVar[tuple[str, ...]]  # the files a finished run folder holds, written after metrics.json

    def __init__(self, spec: Spec, data_dir: Path) -> None:
        self.spec, self.data_dir = spec, Path(data_dir)
        self.loaded: Any = None  # the data, with `.info` (metrics.json's `data`: sha256, ...)
        self.data: Any = None  # what training reads: `.train`, `.val`

    @abstractmethod
    def prepare(self) -> Learner:
        """Load the data and make `data`; the model to train. A SeqbenchError on bad input."""

    @abstractmethod
    def header(self) -> list[str]:
        """The data lines a run prints first."""

    @abstractmethod
    def evaluate(self, learner: Learner, fit_result: FitResult, run_id: str) -> dict[str, Any]:
        """metrics.json of the trained (or converted) model."""

    @staticmethod
    @abstractmethod
    def headline(metrics: dict[str, Any]) -> float | None:
        """The score a run is quoted by (test RMSE; an LM's bits per byte)."""

    @abstractmethod
    def memory_hint(self, stage: str) -> str:
        """What fills the memory while `stage` ("training" or "evaluating"), and what to lower."""

    @abstractmethod
    def artifact_writers(self, learner: Learner, history: pd.DataFrame) -> dict[str, Callable[[Path], None]]:
        """The task's own files by name (the loss curve is every task's: seqbench.run.experiment)."""

    @property
    def data_sha256(self) -> str:
        return str(self.loaded.info["sha256"])
