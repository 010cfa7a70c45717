"""Checkpoints on disk: the state of a run after its last finished epoch, to resume it exactly.

Two files in the run folder, neither of them pickled:

- `checkpoint-EEEE.npz`: plain arrays: `learner/...` (Learner.state_dict(): weights and
  optimiser state with its step count) and `best/...` (the best weights so far);
- `checkpoint.json`: everything else (history, best epoch and validation loss, patience
  count, the batch-order generator's state, seconds and samples so far) plus the name and
  sha256 of its .npz.

`checkpoint.json` is written last and names its .npz, and each epoch's .npz has a new name,
so a run killed at any moment leaves a complete pair: the JSON and the arrays it names (older
.npz files are removed once the new JSON is in place). Loading checks the sha256 and never
unpickles (`seqbench.models.weights_file`: each member's size checked against its bytes before it is read).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from seqbench.errors import SeqbenchError
from seqbench.io import atomic_path, atomic_write_json, loads_json
from seqbench.models.weights_file import open_weights
from seqbench.training.loop import Checkpoint, EpochRecord, FitResult

CHECKPOINT_FILE = "checkpoint.json"
FORMAT = 1


def save_checkpoint(run_dir: Path, checkpoint: Checkpoint, extra: dict[str, Any] | None = None) -> None:
    """Write `checkpoint` into `run_dir` (see the module docstring); `extra` goes into the JSON."""
    arrays = {f"learner/{k}": v for k, v in checkpoint.learner_state.items()}
    arrays.update({f"best/{k}": v for k, v in checkpoint.best_weights.items()})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    npz_name = f"checkpoint-{checkpoint.epoch:04d}.npz"
    with atomic_path(run_dir / npz_name) as tmp:
        tmp.write_bytes(data)
    progress = checkpoint.progress
    state = {
        "format": FORMAT,
        "epoch": checkpoint.epoch,
        "arrays": npz_name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "progress": {
            **{
                f.name: getattr(progress, f.name) for f in dataclasses.fields(progress) if f.name != "history"
            },
            "best_val_loss": _finite_or_none(progress.best_val_loss),
            "history": [dataclasses.asdict(record) for record in progress.history],
        },
        "rng_state": checkpoint.rng_state,
        **(extra or {}),
    }
    atomic_write_json(run_dir / CHECKPOINT_FILE, state)
    for old in run_dir.glob("checkpoint-*.npz"):
        if old.name != npz_name:
            old.unlink(missing_ok=True)


def has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / CHECKPOINT_FILE).is_file()


def read_checkpoint(run_dir: Path) -> tuple[Checkpoint, dict[str, Any]]:
    """The checkpoint in `run_dir` and its JSON record; any problem is a one-line SeqbenchError."""
    path = run_dir / CHECKPOINT_FILE
    try:
        state = loads_json(path.read_text(encoding="utf-8"))
        if state.get("format") != FORMAT:
            raise ValueError(f"unknown checkpoint format {state.get('format')!r}")
        npz_path = run_dir / Path(state["arrays"]).name
        data = npz_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != state["sha256"]:
            raise ValueError(f"{npz_path.name} does not match its sha256 in {CHECKPOINT_FILE}")
        arrays = open_weights(npz_path, finite=False, data=data).arrays()
        progress = dict(state["progress"])
        history = [EpochRecord(**record) for record in progress.pop("history")]
        best_val_loss = progress.pop("best_val_loss")
        fit_result = FitResult(
            **progress, history=history, best_val_loss=math.inf if best_val_loss is None else best_val_loss
        )
        checkpoint = Checkpoint(
            progress=fit_result,
            learner_state=_section(arrays, "learner/"),
            best_weights=_section(arrays, "best/"),
            rng_state=state["rng_state"],
        )
        _check_consistent(checkpoint, state)
    except FileNotFoundError as exc:
        raise SeqbenchError(f"cannot resume {run_dir}: missing {Path(str(exc.filename)).name}") from None
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, AttributeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SeqbenchError(f"cannot resume {run_dir}: unreadable checkpoint ({reason})") from None
    return checkpoint, state


def _check_consistent(checkpoint: Checkpoint, state: dict[str, Any]) -> None:
    """A checkpoint.json that was edited by hand (or damaged) is refused: ValueError saying what is off."""
    progress, history = checkpoint.progress, checkpoint.progress.history
    if state["epoch"] != len(history):
        raise ValueError(f"epoch {state['epoch']!r} but a history of {len(history)} epochs")
    for i, record in enumerate(history, start=1):
        numbers = (record.train_loss, record.val_loss, record.lr, record.seconds)
        if record.epoch != i or not all(isinstance(x, int | float) and math.isfinite(x) for x in numbers):
            raise ValueError(f"history entry {i} is not epoch {i} with finite numbers")
    counts = (progress.best_epoch, progress.stale, progress.samples_seen)
    if not all(isinstance(n, int) and n >= 0 for n in counts) or progress.best_epoch > len(history):
        raise ValueError("best_epoch, stale or samples_seen is out of range")
    if not isinstance(progress.train_seconds, int | float) or not progress.train_seconds >= 0:
        raise ValueError("train_seconds is not a duration")
    if progress.status not in ("completed", "interrupted"):
        raise ValueError(f"status {progress.status!r}")
    try:
        np.random.default_rng().bit_generator.state = checkpoint.rng_state  # the batch order's generator
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"rng_state is not a generator state ({exc})") from None


def remove_checkpoint(run_dir: Path) -> None:
    """Delete the checkpoint files (the run is over and cannot be resumed)."""
    (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
    for npz in run_dir.glob("checkpoint-*.npz"):
        npz.unlink(missing_ok=True)


def _section(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {key.removeprefix(prefix): value for key, value in arrays.items() if key.startswith(prefix)}


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
