"""Figures for a run folder and for `compare --plot`, drawn off-screen (Agg) and written atomically.

Each plot has a builder that returns the Figure (`loss_curve_figure`, `predictions_figure`,
`horizon_figure`, `val_curves_figure`, for tests and for pages that embed them) and a `plot_*`
function that builds, saves and closes it. Figures are made without pyplot, so nothing stays registered.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")  # no display needed: servers, CI and sweeps draw to files only
import matplotlib.dates as mdates
from matplotlib import ticker
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from seqbench.io import atomic_write_with

DPI = 120
BEST_EPOCH_GID = "best-epoch"  # the gid of the vertical line at the best epoch (tests find it by it)
ZOOM_STEPS = 60  # the recent window of predictions.png: about three months of trading days
ROLLING_STEPS = 20  # the error panel's rolling mean: about a month of trading days
WINDOW_GID = "window"  # the gid of a multi-step figure's window panels
STEP_ERROR_GID = "step-error"  # the gid of its error-per-step panel
ORIGIN_GID = "forecast-origin"  # the gid of the vertical line at a window's last input
FORECASTER_STYLE = {  # a multi-step figure's forecasters, the same in every panel
    "model": {"color": "tab:blue", "linewidth": 1.6},
    "persistence": {"color": "tab:orange", "linestyle": "--", "linewidth": 1},
    "seasonal": {"color": "tab:green", "linestyle": "-.", "linewidth": 1},
    "linear": {"color": "tab:purple", "linestyle": ":", "linewidth": 1.3},
}


# --- loss curves -------------------------------------------------------------------------------


def plot_loss_curve(history: pd.DataFrame, path: str | Path, min_delta: float = 0.0) -> None:
    """loss_curve.png: see `loss_curve_figure`."""
    _write(loss_curve_figure(history, min_delta), path)


def loss_curve_figure(history: pd.DataFrame, min_delta: float = 0.0) -> Figure:
    """Training and validation loss per epoch, the best epoch marked, the learning rate on a
    second y axis when the history has it; below, the validation loss on its own scale when
    it moves too little to be seen beside the training loss."""
    series = [_curve(history, column) for column in ("train_loss", "val_loss")]
    best = best_epoch(history, min_delta)
    own_panel = _hidden_by_train(*series)
    fig = _figure((8, 7) if own_panel else (8, 4.5))
    axes = (
        fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 2)})
        if own_panel
        else [fig.subplots()]
    )
    ax = axes[0]
    for (epochs, loss), label in zip(series, ("train", "validation"), strict=True):
        if len(loss):
            ax.plot(epochs, loss, label=label, zorder=3, **_points(len(loss)))  # above the best-epoch star
    _loss_scale(ax, (loss for _, loss in series))
    _integer_ticks(ax, np.concatenate([epochs for epochs, _ in series]))
    if best is not None:
        _mark_best(ax, *best)
    lr_ax = _lr_axis(ax, history)
    _finish(ax, title="Loss per epoch", xlabel="" if own_panel else "epoch", ylabel="loss", also=lr_ax)
    if own_panel:
        val = axes[1]
        val.plot(*series[1], color="tab:orange", label="validation", zorder=3, **_points(len(series[1][1])))
        _linear_ticks(val)
        if best is not None:
            _mark_best(val, *best)
        _finish(val, title="Validation loss on its own scale", xlabel="epoch", ylabel="validation loss")
    return fig


def _hidden_by_train(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray]) -> bool:
    """Whether the validation loss moves, but over less than a fifth of the span of both curves."""
    if len(val[1]) < 2 or not len(train[1]):
        return False
    both = np.concatenate([train[1], val[1]])
    return bool(0 < np.ptp(val[1]) < 0.2 * np.ptp(both))


def best_epoch(history: pd.DataFrame, min_delta: float = 0.0) -> tuple[int, float] | None:
    """(epoch, val loss) whose weights the run keeps: as seqbench.training.loop.fit picks it, the first
    finite val loss that beats the best so far by more than `min_delta`; None without one."""
    epochs, loss = _curve(history, "val_loss")
    best: tuple[int, float] | None = None
    for epoch, value in zip(epochs, loss, strict=True):
        if best is None or value < best[1] - min_delta:
            best = (int(epoch), float(value))
    return best


def _mark_best(ax: Axes, epoch: int, loss: float) -> None:
    label = f"best epoch {epoch} (val {loss:.4g})"
    ax.axvline(epoch, color="tab:green", linestyle=":", linewidth=1.5, label=label, gid=BEST_EPOCH_GID)
    ax.plot([epoch], [loss], marker="*", markersize=12, color="tab:green", linestyle="none")


def _lr_axis(ax: Axes, history: pd.DataFrame) -> Axes | None:
    """The learning rate per epoch on a twin y axis from 0, or None when the history has none."""
    epochs, lr = _curve(history, "lr")
    if not len(lr):
        return None
    twin = ax.twinx()
    lone = {"marker": "_", "markersize": 14, "markeredgewidth": 1.5} if len(lr) == 1 else {}  # one epoch
    twin.plot(epochs, lr, color="tab:purple", linestyle="--", linewidth=1, label="learning rate", **lone)
    twin.set_ylim(0, float(lr.max()) * 1.15 or 1.0)
    twin.set_ylabel("learning rate")
    twin.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    return twin


# --- predictions -------------------------------------------------------------------------------


def plot_predictions(
    predictions: pd.DataFrame, path: str | Path, title: str, horizon: HorizonForecasts | None = None
) -> None:
    """predictions.png: `horizon_figure` for a multi-step run (given its `horizon` forecasts), else
    `predictions_figure`."""
    if horizon is not None:
        _write(horizon_figure(horizon, title), path, tight=False)
    else:
        _write(predictions_figure(predictions, title), path)


def predictions_figure(predictions: pd.DataFrame, title: str) -> Figure:
    """The first series of the test split in four panels: the whole span (target, model,
    persistence), the last `ZOOM_STEPS` steps, the rolling absolute error of the model and of
    persistence, and the model's minus persistence's (below 0: the model is better).
    Multi-step forecasts show step 1 and the last step, labelled by step (a run draws this figure
    for horizon 1, `horizon_figure` for more)."""
    frame = _first_series(predictions)
    steps = _shown_steps(frame)
    by_step = {step: _step_rows(frame, step) for step in steps}
    target = _target(by_step)
    start = target.index[-min(ZOOM_STEPS, len(target))] if len(target) else None
    fig = _figure((11, 13))
    overview, zoom, error, gap = fig.subplots(4, 1, gridspec_kw={"height_ratios": (3, 3, 2, 2)})
    error.sharex(overview)
    gap.sharex(overview)
    for ax, since in ((overview, None), (zoom, start)):
        shown = target if since is None else target[target.index >= since]
        ax.plot(shown.index, shown.to_numpy(), label="target", color="black", linewidth=1.2)
        for step, rows in by_step.items():
            rows = rows if since is None else rows[rows.index >= since]
            _forecast_lines(ax, rows, step, steps, zoomed=since is not None)
    window = min(ROLLING_STEPS, max(len(target), 1))
    for step, rows in by_step.items():
        _error_lines(error, gap, rows, step, steps, window)
    gap.axhline(0.0, color="black", linewidth=0.8)
    if start is not None:
        for ax in (overview, error):
            ax.axvspan(start, target.index[-1], color="gray", alpha=0.12, label="zoomed")
    unit = _series_label(frame)
    _finish(overview, title=f"{title}: whole test span", xlabel="", ylabel=unit, outside=True)
    _finish(zoom, title=_zoom_title(target, start), xlabel="", ylabel=unit, outside=True)
    rolling = f"rolling mean over {window} steps"
    _finish(error, title=f"absolute error, {rolling}", xlabel="", ylabel=f"|error| ({unit})", outside=True)
    _finish(
        gap,
        title=f"model's |error| minus persistence's, {rolling} (< 0: model better)",
        xlabel="date" if "date" in frame else "test step",
        ylabel=f"difference ({unit})",
        outside=True,
    )
    for ax in (overview, zoom, error, gap):
        _date_axis(ax, "date" in frame)
    return fig


def _forecast_lines(ax: Axes, rows: pd.DataFrame, step: int, steps: tuple[int, ...], zoomed: bool) -> None:
    """The model's and persistence's forecasts of one step."""
    name, first = _step_name(step, steps), step == steps[0]
    marker = {"marker": "o", "markersize": 2.5} if zoomed else {}
    ax.plot(rows.index, rows["prediction"], label=f"model{name}", color=_model_color(first), **marker)
    if "persistence" in rows:
        style = "--" if first else ":"
        ax.plot(rows.index, rows["persistence"], label=f"persistence{name}", color="gray", linestyle=style)


def _error_lines(
    error: Axes, gap: Axes, rows: pd.DataFrame, step: int, steps: tuple[int, ...], window: int
) -> None:
    """One step's rolling mean |error| of the model and of persistence (overall MAE in the label)
    on `error`, and the model's minus persistence's on `gap`, green where the model is better."""
    name, first = _step_name(step, steps), step == steps[0]
    model = (rows["prediction"] - rows["target"]).abs()
    error.plot(
        rows.index,
        _rolling(model, window),
        color=_model_color(first),
        label=f"model{name} (MAE {model.mean():.4g})",
    )
    if "persistence" not in rows:
        return
    last = (rows["persistence"] - rows["target"]).abs()
    style = "--" if first else ":"
    label = f"persistence{name} (MAE {last.mean():.4g})"
    error.plot(rows.index, _rolling(last, window), color="gray", linestyle=style, label=label)
    diff = _rolling(model - last, window)
    gap.plot(rows.index, diff, color=_model_color(first), label=f"model - persistence{name}")
    if not first:
        return
    for where, color, label in (
        (diff < 0, "tab:green", "model better"),
        (diff > 0, "tab:red", "model worse"),
    ):
        if where.any():
            gap.fill_between(rows.index, diff, 0, where=where.to_numpy(), color=color, alpha=0.3, label=label)


def _rolling(values: pd.Series, window: int) -> pd.Series:
    return values.rolling(window, min_periods=max(1, window // 4)).mean()


def _model_color(first: bool) -> str:
    return "tab:blue" if first else "tab:orange"


def _first_series(predictions: pd.DataFrame) -> pd.DataFrame:
    """The rows of the first series in the file (all of them when there is no series column)."""
    if "series" in predictions and len(predictions):
        return predictions[predictions["series"] == predictions["series"].iloc[0]]
    return predictions


def _shown_steps(frame: pd.DataFrame) -> tuple[int, ...]:
    """Step 1 and the last step of the horizon (just (1,) for one-step forecasts)."""
    if "step" not in frame or not len(frame):
        return (1,)
    first, last = int(frame["step"].min()), int(frame["step"].max())
    return (first,) if first == last else (first, last)


def _step_name(step: int, steps: tuple[int, ...]) -> str:
    return f", step {step}" if len(steps) > 1 else ""


def _step_rows(frame: pd.DataFrame, step: int) -> pd.DataFrame:
    """The rows of one step indexed by target date (or by test step: window + step - 1)."""
    rows = frame[frame["step"] == step] if "step" in frame else frame
    if "date" in rows:
        # predictions.csv holds ISO 8601 dates in one format per file: read them as such, no guessing
        index = pd.Index(pd.to_datetime(rows["date"], format="ISO8601"), name="date")
    else:
        index = pd.RangeIndex(step - 1, step - 1 + len(rows), name="step")
    columns = [c for c in ("target", "prediction", "persistence") if c in rows]
    return rows[columns].astype(float).set_axis(index).sort_index()


def _target(by_step: dict[int, pd.DataFrame]) -> pd.Series:
    """The target over the union of the shown steps' dates (the last step reaches further)."""
    target = pd.concat([rows["target"] for rows in by_step.values()])
    return target[~target.index.duplicated()].sort_index()


def _zoom_title(target: pd.Series, start: object) -> str:
    if start is None:
        return "recent window"
    n = int((target.index >= start).sum())
    if isinstance(target.index, pd.DatetimeIndex):
        return f"last {n} steps ({start:%Y-%m-%d} to {target.index[-1]:%Y-%m-%d})"
    return f"last {n} steps"


def _date_axis(ax: Axes, dates: bool) -> None:
    if dates:
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _series_label(frame: pd.DataFrame) -> str:
    return str(frame["series"].iloc[0]) if "series" in frame and len(frame) else "value"


# --- multi-step forecasts ------------------------------------------------------------------------


@dataclass
class HorizonForecasts:
    """What predictions.png draws for a multi-step run: a few test windows of one series, each its
    inputs and then every forecaster's forecast over the horizon, and the error per horizon step."""

    series: str  # the series of the window panels
    input_dates: np.ndarray  # (K, L) dates of each shown window's inputs
    inputs: np.ndarray  # (K, L) the series' last L observed values before each forecast
    target_dates: np.ndarray  # (K, H)
    truth: np.ndarray  # (K, H)
    forecasts: dict[str, np.ndarray]  # forecaster (model first) -> (K, H)
    windows: np.ndarray  # (K,) index of each shown window among the test windows
    n_windows: int  # test windows in all
    step_error: dict[str, np.ndarray]  # forecaster -> (H,) error at each step over every test window
    error_name: str  # what step_error is, for the axis: "MSE (scaled)"
    error_scope: str  # over what, for the title: "every test window and series"


def horizon_figure(horizon: HorizonForecasts, title: str) -> Figure:
    """A panel per shown window (two a row): the inputs, the target and each forecaster's forecast
    over the horizon, the forecast origin marked; below, across the figure, each forecaster's error
    per horizon step (the long-horizon papers' pictures). Laid out by hand: tight_layout on a
    figure this size costs more than drawing it."""
    shown = len(horizon.windows)
    rows = (shown + 1) // 2
    height = 3.2 * rows + 4.2  # inches: the window rows, the error panel, titles and tick labels
    fig = _figure((12, height))
    top = 1 - 0.85 / height  # room for the title, whatever the height
    grid = fig.add_gridspec(
        rows + 1, 2, height_ratios=(*[1.0] * rows, 1.15), left=0.06, right=0.8, top=top, bottom=0.55 / height,
        hspace=0.5, wspace=0.15,
    )  # fmt: skip
    fig.suptitle(f"{title}: {shown} of {horizon.n_windows} test windows, {horizon.series}", y=0.995)
    for k in range(shown):
        ax = fig.add_subplot(grid[k // 2, k % 2], gid=WINDOW_GID)
        _window_panel(ax, horizon, k, ylabel=horizon.series if k % 2 == 0 else "")
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(0.81, top))
    error = fig.add_subplot(grid[rows, :], gid=STEP_ERROR_GID)
    steps = np.arange(1, len(next(iter(horizon.step_error.values()), [])) + 1)
    for name, values in horizon.step_error.items():
        label = f"{name} ({horizon.error_name.split()[0]} {np.mean(values):.4g})"
        error.plot(steps, values, label=label, **FORECASTER_STYLE.get(name, {}))
    error.set_xlim(0.5, steps[-1] + 0.5 if len(steps) else 1.5)
    _integer_ticks(error)
    _finish(
        error,
        title=f"error per horizon step over {horizon.error_scope} (in the legend: the mean over the steps)",
        xlabel="horizon step",
        ylabel=horizon.error_name,
        outside=True,
    )
    return fig


def _window_panel(ax: Axes, horizon: HorizonForecasts, k: int, ylabel: str) -> None:
    """One shown window: its inputs (gray) and target (black), the horizon shaded, the forecasts over it."""
    origin = horizon.input_dates[k, -1]
    ax.plot(horizon.input_dates[k], horizon.inputs[k], color="0.45", linewidth=1, label="input")
    ax.plot(horizon.target_dates[k], horizon.truth[k], color="black", linewidth=1.4, label="target")
    ax.axvline(origin, color="black", linewidth=0.8, linestyle=":", gid=ORIGIN_GID)
    ax.axvspan(origin, horizon.target_dates[k, -1], color="gray", alpha=0.1)
    for name, values in horizon.forecasts.items():
        ax.plot(horizon.target_dates[k], values[k], label=name, **FORECASTER_STYLE.get(name, {}))
    ax.set_title(f"window {horizon.windows[k] + 1}, last input {_when(origin)}", fontsize="medium")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    _date_axis(ax, isinstance(origin, np.datetime64 | pd.Timestamp))


def _when(date: object) -> str:
    """A date as the title says it: with the time of day when it has one."""
    if not isinstance(date, np.datetime64 | pd.Timestamp):
        return f"step {date}"
    stamp = pd.Timestamp(date)
    return f"{stamp:%Y-%m-%d %H:%M}" if stamp != stamp.normalize() else f"{stamp:%Y-%m-%d}"


# --- compare and sweeps ------------------------------------------------------------------------


def plot_val_curves(curves: dict[str, pd.DataFrame], path: str | Path) -> None:
    """compare --plot: see `val_curves_figure`."""
    _write(val_curves_figure(curves), path)


def val_curves_figure(curves: dict[str, pd.DataFrame]) -> Figure:
    """Validation loss per epoch of several runs overlaid, one line per run label, the legend
    to the right of the axes so that it never covers a curve."""
    fig = _figure((10, 5))
    ax = fig.subplots()
    losses, all_epochs = [], []
    for label, history in curves.items():
        epochs, loss = _curve(history, "val_loss")
        if len(loss):
            ax.plot(epochs, loss, label=label, **({} if len(loss) > 1 else _points(1)))
            losses.append(loss)
            all_epochs.append(epochs)
    _loss_scale(ax, losses)
    _integer_ticks(ax, np.concatenate(all_epochs or [np.array([])]))
    _finish(ax, title="Validation loss per epoch", xlabel="epoch", ylabel="validation loss", outside=True)
    return fig


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
    fig = _figure((8, 5))
    ax = fig.subplots()
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
    _write(fig, path)


# --- shared ------------------------------------------------------------------------------------


def _curve(history: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of a history column with its missing or non-finite entries dropped."""
    if column not in history or len(history) == 0:
        return np.array([]), np.array([])
    values = pd.to_numeric(history[column], errors="coerce").to_numpy(dtype=float)
    epochs = history["epoch"].to_numpy(dtype=float) if "epoch" in history else np.arange(1, len(values) + 1)
    keep = np.isfinite(values)
    return epochs[keep], values[keep]


def _loss_scale(ax: Axes, losses: Iterable[np.ndarray]) -> None:
    """Log y when every loss is positive and they span a decade or more, with labels between the
    powers of ten when they span less than two; linear otherwise (a log axis over 1.95-2.04
    would show one label, a linear one shows several)."""
    values = np.concatenate([np.asarray(loss, dtype=float) for loss in losses] or [np.array([])])
    if not values.size or np.any(values <= 0) or values.max() < 10 * values.min():
        _linear_ticks(ax)
        return
    ax.set_yscale("log")
    labels_between = ticker.LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=(2, 0.5))
    ax.yaxis.set_minor_formatter(labels_between)


def _linear_ticks(ax: Axes) -> None:
    """A linear y axis with about six labelled ticks, however narrow its range."""
    ax.set_yscale("linear")
    ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=6))


def _points(n: int) -> dict[str, object]:
    """Markers on a curve of `n` points: small dots along a line; a lone point (a run of one
    epoch draws no line) large enough to be seen."""
    return {"marker": "o", "markersize": 3 if n > 1 else 7}


def _integer_ticks(ax: Axes, epochs: np.ndarray | None = None) -> None:
    """Epochs are whole numbers: no tick at 2.5; when every curve has the same single epoch, that
    epoch is the one tick, in the middle (MaxNLocator falls back to fractions below two integers)."""
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    shown = np.unique(epochs) if epochs is not None else np.array([])
    if len(shown) == 1:
        ax.set_xlim(shown[0] - 1, shown[0] + 1)
        ax.set_xticks(shown)


def _finish(
    ax: Axes, title: str, xlabel: str, ylabel: str, also: Axes | None = None, outside: bool = False
) -> None:
    """Title, labels, grid and one legend for `ax` and its twin `also`, inside the axes or to
    their right (never covering a line; `_write` saves it with bbox_inches='tight')."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    handles: list[Artist] = []
    labels: list[str] = []
    for axis in (ax, also) if also is not None else (ax,):
        more_handles, more_labels = axis.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    if handles and outside:
        ax.legend(
            handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0
        )
    elif handles:
        ax.legend(handles, labels, fontsize="small")


def _figure(size: tuple[float, float]) -> Figure:
    """A Figure on an Agg canvas, outside pyplot: freed with its last reference."""
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def _write(fig: Figure, path: str | Path, tight: bool = True) -> None:
    """PNG written to a temporary name and renamed (the name has no .png, so say the format);
    bbox_inches='tight' keeps a legend outside the axes in the picture. `tight=False`: a figure
    laid out by hand, saved as it is (each tight pass draws the whole figure once more)."""
    if not tight:
        atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
        return
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight"))
