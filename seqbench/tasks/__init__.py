"""Tasks: what a run learns and how it is scored. `forecast` (a series' next values) and `lm`
(a text's next byte) are each a `Task` (seqbench/tasks/base.py) that seqbench.run.experiment drives
in one pass: prepare, train, evaluate, write.

Imports: errors, io, spec, data, models, metrics, baselines, training, artifacts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seqbench.spec import Spec
    from seqbench.tasks.base import Task


def task_class(task: str) -> type[Task]:
    """The Task class of a spec's `task` (forecast or lm)."""
    from seqbench.tasks.forecast import ForecastTask
    from seqbench.tasks.lm import LMTask

    return {"forecast": ForecastTask, "lm": LMTask}[task]


def task_for(spec: Spec, data_dir: Path) -> Task:
    """The spec's task, ready to `prepare`."""
    return task_class(spec.task)(spec, data_dir)
