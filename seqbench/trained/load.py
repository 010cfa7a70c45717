"""A trained run folder read back: its spec and metrics, then its best weights into a learner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqbench.artifacts.runs import read_metrics
from seqbench.errors import SeqbenchError
from seqbench.spec import Spec, load_spec
from seqbench.training.loop import Learner

NEEDS = {"lm": "a language model (task: lm)", "forecast": "a forecast run (task: forecast)"}


def trained_spec(run_dir: Path, data_dir: Path, task: str, command: str) -> tuple[Spec, dict[str, Any]]:
    """The spec.yaml and metrics.json of the `task` run in `run_dir`, for `seqbench {command}`."""
    if not (run_dir / "spec.yaml").exists():
        runs = sorted(p.parent for p in run_dir.glob("*/spec.yaml")) if run_dir.is_dir() else []
        hint = f"; it holds {len(runs)} run folder(s), e.g. {runs[-1]} (the latest)" if runs else ""
        raise SeqbenchError(f"{run_dir} is not a run folder (it has no spec.yaml){hint}")
    spec = load_spec(run_dir / "spec.yaml", [], data_dir)
    if spec.task != task:
        raise SeqbenchError(f"{run_dir} is a {spec.task} run; `seqbench {command}` needs {NEEDS[task]}")
    return spec, read_metrics(run_dir)


def load_weights(learner: Learner, run_dir: Path) -> None:
    """The run's best weights into `learner`; a missing, unreadable or damaged file (NaN or inf
    values included) is one SeqbenchError line."""
    weights = run_dir / learner.weights_file
    if not weights.is_file():
        raise SeqbenchError(
            f"{run_dir} has no trained weights ({weights.name}); it stopped before its first epoch"
        )
    try:
        learner.load(weights)
    except SeqbenchError:
        raise  # a damaged or crafted file: its own line, which names it
    except (OSError, ValueError) as exc:
        raise SeqbenchError(f"cannot read the weights of {run_dir}: {exc}") from None
