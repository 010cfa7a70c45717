"""Figures for a run folder and for `compare --plot`, drawn off-screen (Agg) and written atomically."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")  # no display needed: servers, CI and sweeps draw to files only
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from seqbench.io import atomic_write_with

DPI = 120


def plot_loss_curve(history: pd.DataFrame, path: str | Path) -> None:
    """Training and validation loss per epoch (log y when every loss is positive)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    try:
        series = [_curve(history, column) for column in ("train_loss", "val_loss")]
        for (epochs, loss), label in zip(series, ("train", "validation"), strict=True):
            if len(loss):
                ax.plot(epochs, loss, marker="o", markersize=3, label=label)
        _log_if_positive(ax, (loss for _, loss in series))
        _finish(ax, title="Loss per epoch", xlabel="epoch", ylabel="loss")
        _save(fig, path)
    finally:
        plt.close(fig)


def plot_predictions(predictions: pd.DataFrame, path: str | Path, title: str) -> None:
    """Test-split target vs prediction vs persistence over date, for the first step and series."""
    frame = _first_series_step_one(predictions)
    fig, ax = plt.subplots(figsize=(10, 4))
    try:
        # predictions.csv holds ISO 8601 dates in one format per file: read them as such, no guessing
        x = pd.to_datetime(frame["date"], format="ISO8601") if "date" in frame else np.arange(len(frame))
        styles = {
            "target": {"color": "black", "linewidth": 1.2},
            "prediction": {"color": "tab:blue", "linewidth": 1.0},
            "persistence": {"color": "tab:gray", "linewidth": 0.8, "linestyle": "--"},
        }
        for column, style in styles.items():
            if column in frame:
                ax.plot(x, frame[column].to_numpy(dtype=float), label=column, **style)
        fig.autofmt_xdate()
        _finish(ax, title=title, xlabel="date", ylabel=_series_label(frame))
        _save(fig, path)
    finally:
        plt.close(fig)


def plot_val_curves(curves: dict[str, pd.DataFrame], path: str | Path) -> None:
    """Validation loss per epoch of several runs overlaid, one line per run label."""
    fig, ax = plt.subplots(figsize=(8, 5))
    try:
        losses = []
        for label, history in curves.items():
            epochs, loss = _curve(history, "val_loss")
            if len(loss):
                ax.plot(epochs, loss, label=label)
                losses.append(loss)
        _log_if_positive(ax, losses)
        _finish(ax, title="Validation loss per epoch", xlabel="epoch", ylabel="validation loss")
        _save(fig, path)
    finally:
        plt.close(fig)


def plot_sweep(
    key: str,
    values: list[str],
    lines: dict[str, list[tuple[float | None, float | None]]],
    persistence: list[float],
    path: str | Path,
    title: str,
    score: str = "test RMSE",
    baseline: str = "persistence",
) -> None:
    """A score (mean ± std over seeds) against one swept key: one line per setting of the other
    keys, one point per value of `key` (evenly spaced, labelled as given), the baseline dashed."""
    fig, ax = plt.subplots(figsize=(8, 5))
    try:
        x = np.arange(len(values))
        for i, (label, points) in enumerate(lines.items()):
            mean = np.array([np.nan if m is None else m for m, _ in points], dtype=float)
            std = np.array([0.0 if s is None else s for _, s in points], dtype=float)
            dodge = 0.05 * (i - (len(lines) - 1) / 2)  # side by side: error bars do not hide each other
            ax.errorbar(x + dodge, mean, yerr=std, marker="o", capsize=4, label=label)
        for i, value in enumerate(persistence):
            ax.axhline(value, color="gray", linestyle="--", linewidth=1, label=None if i else baseline)
        ax.set_xticks(x, values)
        ax.set_xlim(-0.5, len(values) - 0.5)
        _finish(ax, title=title, xlabel=key, ylabel=f"{score} (mean ± std over seeds)")
        if len(lines) > 4:
            ax.legend(fontsize="small")
        _save(fig, path)
    finally:
        plt.close(fig)


def _curve(history: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of a history column with its missing or non-finite entries dropped."""
    if column not in history or len(history) == 0:
        return np.array([]), np.array([])
    values = pd.to_numeric(history[column], errors="coerce").to_numpy(dtype=float)
    epochs = history["epoch"].to_numpy(dtype=float) if "epoch" in history else np.arange(1, len(values) + 1)
    keep = np.isfinite(values)
    return epochs[keep], values[keep]


def _first_series_step_one(predictions: pd.DataFrame) -> pd.DataFrame:
    """The rows of step 1 (the next value) and of the first series in the file."""
    frame = predictions
    if "step" in frame:
        frame = frame[frame["step"] == frame["step"].min()]
    if "series" in frame and len(frame):
        frame = frame[frame["series"] == frame["series"].iloc[0]]
    return frame


def _series_label(frame: pd.DataFrame) -> str:
    return str(frame["series"].iloc[0]) if "series" in frame and len(frame) else "value"


def _log_if_positive(ax: Axes, losses: Iterable[np.ndarray]) -> None:
    """Log y scale when there is data and all of it is positive; losses span decades."""
    values = np.concatenate([np.asarray(loss, dtype=float) for loss in losses] or [np.array([])])
    if values.size and np.all(values > 0):
        ax.set_yscale("log")


def _finish(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()


def _save(fig: Figure, path: str | Path) -> None:
    """PNG written to a temporary name and renamed (the name has no .png, so say the format)."""
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
