"""What a sweep hands its executors and gets back: one task (a grid point and a seed) and its outcome.

Kept apart from seqbench.sweeps.sweep (the plan and the summary) and seqbench.sweeps.executors
(how tasks run), which both use them, so that neither imports the other's module to get them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml


def value_text(value: Any) -> str:
    """A grid value as the user wrote it: 0.001, 32, mamba, {name: mamba, n_layers: 2}."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str | int):
        return str(value)
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1000).strip()


def point_label(point: dict[str, Any]) -> str:
    """`model.hidden_size=32 train.lr=0.001`, for messages."""
    return " ".join(f"{key}={value_text(value)}" for key, value in point.items())


@dataclass(frozen=True)
class SweepTask:
    """One run of the sweep: a grid point and a seed, with the resolved spec it runs."""

    index: int  # grid point number, from 0
    point: dict[str, Any]
    seed: int
    spec: dict[str, Any]  # the run's resolved spec (JSON-able), `seed` set
    config_id: str
    resume_dir: str | None = None  # an interrupted run of this point and seed, to continue

    @property
    def label(self) -> str:
        return f"{point_label(self.point) or 'base spec'} seed={self.seed}"


@dataclass
class Outcome:
    """What became of one task: its run's status (or `failed`), folder and test scores."""

    task: SweepTask
    status: str  # completed | diverged | interrupted | failed | skipped-completed | skipped-diverged
    run_dir: str | None = None
    message: str = ""
    score: float | None = None  # the task's headline (test RMSE, or bits per byte)
    baseline: float | None = None  # its baseline's (persistence, or the n-gram)
    seconds: float = 0.0
    files: dict[str, bytes] | None = None  # a run made where the sweep folder is not (Ray): its files
