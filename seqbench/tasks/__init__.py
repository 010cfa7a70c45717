"""Tasks: what a run learns and how it is scored. `forecast` (a series' next values) and `lm`
(a text's next byte) have one shape (see seqbench/tasks/forecast.py's docstring), so that
seqbench.experiment runs either."""

from __future__ import annotations

from types import ModuleType


def task_module(task: str) -> ModuleType:
    """The module of a spec's `task`."""
    from seqbench.tasks import forecast, lm

    return {"forecast": forecast, "lm": lm}[task]
