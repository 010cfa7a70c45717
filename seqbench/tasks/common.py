"""What every task writes into metrics.json besides its scores: who, what, how long, which versions."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import numpy as np
import pandas as pd

import seqbench
from seqbench.spec import Spec, config_id
from seqbench.training.loop import FitResult, Learner


def common_metrics(spec: Spec, learner: Learner, fit_result: FitResult, run_id: str) -> dict[str, Any]:
    """The metrics.json keys every task writes: who, what, how long (scores are the task's)."""
    seconds = fit_result.train_seconds
    batches = seconds - fit_result.val_seconds  # the training batches alone, without validation
    return {
        "run_id": run_id,
        "name": spec.name,
        "status": fit_result.status,
        "task": spec.task,
        "model": spec.model.name,
        "backend": spec.model.backend,
        "dataset": spec.dataset.label,
        "seed": spec.seed,
        "config_id": config_id(spec),  # shared by runs that differ only in seed (and name)
        "params": learner.n_params,
        "epochs_run": fit_result.epochs_run,
        "best_epoch": fit_result.best_epoch,
        "train_seconds": seconds,
        "seconds_per_epoch": seconds / max(fit_result.epochs_run, 1),
        # training alone: the epochs' batches, not their validation (run.log says each epoch's)
        "samples_per_second": fit_result.samples_seen / batches if batches > 0 else None,
        "val_seconds": fit_result.val_seconds,  # of train_seconds, the epochs' validation
    }


def versions() -> dict[str, str | None]:
    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "seqbench": seqbench.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "torch": version("torch"),
    }


def common_config(spec: Spec) -> dict[str, Any]:
    """metrics.json `config`: the keys every task's runs are told apart by (a task adds its own)."""
    return {
        "hidden_size": spec.model.hidden_size,
        "n_layers": spec.model.n_layers,
        "lr": spec.train.lr,
        "batch_size": spec.train.batch_size,
        "optimizer": spec.train.optimizer,
        "seq_len": spec.dataset.seq_len,
    }


def failed_metrics(
    spec: Spec, loaded: Any, learner: Learner, progress: FitResult, run_id: str
) -> dict[str, Any]:
    """metrics.json of a run that failed before it had scores (out of memory): who, what, the epochs
    finished and the data; `test` and `val` null. The caller adds status, error and failed_while."""
    return {
        **common_metrics(spec, learner, progress, run_id),
        "config": common_config(spec),
        "test": None,
        "val": None,
        "data": loaded.info,
        "versions": versions(),
    }
