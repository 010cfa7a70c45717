"""Tests for seqbench.artifacts.plots: what each figure draws (axes, labels, ticks, lines), read back from
the Figure, and that each plot writes a real PNG and leaves no temporary file behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure

from seqbench.artifacts import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _history(epochs: int = 5, offset: float = 0.0) -> pd.DataFrame:
    epoch = np.arange(1, epochs + 1)
    return pd.DataFrame({
        "epoch": epoch, "train_loss": 1.0 / epoch + offset, "val_loss": 1.2 / epoch + offset,
        "lr": 1e-3, "seconds": 0.6,
    })  # fmt: skip


def _predictions(days: int = 30) -> pd.DataFrame:
    """Two series and two horizon steps, as the trainer writes them."""
    dates = pd.date_range("2023-01-02", periods=days, freq="B").strftime("%Y-%m-%d")
    rng = np.random.default_rng(0)
    frames = []
    for series in ("Close", "Open"):
        for step in (1, 2):
            target = 100 + rng.normal(size=days).cumsum()
            frames.append(pd.DataFrame({
                "date": dates, "series": series, "step": step, "target": target,
                "prediction": target + rng.normal(scale=0.5, size=days),
                "persistence": np.r_[target[0], target[:-1]], "linear": target + 0.1,
            }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def _labelled_ticks(axis: Axis) -> dict[float, str]:
    """The major and minor ticks inside the view that carry a label, as drawn."""
    axis.axes.figure.canvas.draw()
    lo, hi = sorted(axis.get_view_interval())
    labelled: dict[float, str] = {}
    for locator, formatter in (
        (axis.get_major_locator(), axis.get_major_formatter()),
        (axis.get_minor_locator(), axis.get_minor_formatter()),
    ):
        locs = [x for x in locator() if lo <= x <= hi]
        for x, text in zip(locs, formatter.format_ticks(locs), strict=True):
            if text:
                labelled.setdefault(float(x), text)
    return labelled


def _panels(fig: Figure) -> list[Axes]:
    """The figure's axes without twins (a twin shares its x axis and sits on the right)."""
    return [ax for ax in fig.axes if ax.get_ylabel() != "learning rate"]


def _labels(ax: Axes) -> list[str]:
    return [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]


def _line(ax: Axes, label: str):
    (line,) = [line for line in ax.get_lines() if line.get_label() == label]
    return line


def _assert_png_and_no_leftovers(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 1000
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


@pytest.mark.parametrize(
    "history",
    [
        _history(),
        _history(offset=-0.5),  # negative losses: linear y axis
        _history().assign(val_loss=np.nan),  # no validation yet
        _history().iloc[:0],  # interrupted before the first epoch
        _history().assign(train_loss=[1.0, 0.5, np.inf, np.nan, np.nan]),  # diverged
    ],
)
def test_loss_curve_odd_histories(tmp_path: Path, history: pd.DataFrame) -> None:
    path = tmp_path / "loss_curve.png"
    plots.plot_loss_curve(history, path)
    _assert_png_and_no_leftovers(path)


def test_predictions(tmp_path: Path) -> None:
    path = tmp_path / "predictions.png"
    plots.plot_predictions(_predictions(), path, title="aapl-mingru: test split")
    _assert_png_and_no_leftovers(path)


def test_predictions_show_step_one_and_the_last_step_of_the_first_series() -> None:
    frame = plots._first_series(_predictions(days=10))
    assert len(frame) == 20 and set(frame["series"]) == {"Close"}
    assert plots._shown_steps(frame) == (1, 2)
    assert plots._shown_steps(frame[frame["step"] == 1]) == (1,)


def test_predictions_without_series_or_step_columns(tmp_path: Path) -> None:
    path = tmp_path / "predictions.png"
    predictions = _predictions().query("series == 'Close' and step == 1").drop(columns=["series", "step"])
    plots.plot_predictions(predictions, path, title="minimal")
    _assert_png_and_no_leftovers(path)


def test_val_curves(tmp_path: Path) -> None:
    path = tmp_path / "compare.png"
    curves = {"aapl-mingru/20261122-153012-3f9a": _history(5), "aapl-gru/20261122-160000-0b1c": _history(8)}
    plots.plot_val_curves(curves, path)
    _assert_png_and_no_leftovers(path)


def test_val_curves_with_no_runs(tmp_path: Path) -> None:
    path = tmp_path / "compare.png"
    plots.plot_val_curves({}, path)
    _assert_png_and_no_leftovers(path)


def test_existing_file_is_untouched_when_saving_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_write_then_fail(self: Figure, fname: Path, **kwargs: object) -> None:
        Path(fname).write_bytes(PNG_SIGNATURE)  # a partial file, then "disk full"
        raise OSError("No space left on device")

    path = tmp_path / "loss_curve.png"
    path.write_bytes(b"old")
    monkeypatch.setattr(Figure, "savefig", half_write_then_fail)
    with pytest.raises(OSError, match="No space left"):
        plots.plot_loss_curve(_history(), path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["loss_curve.png"]


def test_figures_are_closed(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    plots.plot_loss_curve(_history(), tmp_path / "a.png")
    plots.plot_predictions(_predictions(), tmp_path / "b.png", title="t")
    plots.plot_val_curves({"a": _history()}, tmp_path / "c.png")
    assert len(plt.get_fignums()) == before


# --- loss curves: what is drawn ------------------------------------------------------------------


def test_loss_curve_has_labelled_axes_and_integer_epoch_ticks() -> None:
    fig = plots.loss_curve_figure(_history(epochs=4))
    (ax,) = _panels(fig)
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("epoch", "loss", "Loss per epoch")
    ticks = _labelled_ticks(ax.xaxis)
    assert len(ticks) >= 3
    assert all(x == int(x) for x in ticks) and set(ticks.values()) <= {str(k) for k in range(0, 9)}
    assert ax.get_lines()[0].get_xdata().tolist() == [1, 2, 3, 4]


def _pixels_of(fig: Figure, color: str) -> int:
    """How many pixels of the figure, saved as PNG without its legends and read back, are `color`."""
    import io

    from matplotlib import colors, image

    for ax in fig.axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=plots.DPI)
    png.seek(0)
    rgb = image.imread(png)[..., :3]
    return int((np.abs(rgb - colors.to_rgb(color)).max(axis=-1) < 0.08).sum())


def test_a_one_epoch_loss_curve_shows_its_points_and_one_epoch_tick() -> None:
    """One epoch draws no line: the train and validation points are markers large enough to see
    (the validation one above the best-epoch star), the learning rate a short bar."""
    history = _history(epochs=1)
    ticks = _labelled_ticks(_panels(plots.loss_curve_figure(history))[0].xaxis)
    assert ticks == {1.0: "1"}
    fig = plots.loss_curve_figure(history)
    assert _pixels_of(fig, "tab:blue") >= 60  # a 3-point dot was about 20 pixels
    fig = plots.loss_curve_figure(history)
    assert _pixels_of(fig, "tab:orange") >= 60  # was hidden under the star: 0
    fig = plots.loss_curve_figure(history)
    assert _pixels_of(fig, "tab:purple") >= 15  # a line of one point: 0


def test_one_epoch_validation_curves_show_each_run_as_a_point() -> None:
    one = _history(epochs=1)
    curves = {"a": one, "b": one.assign(val_loss=0.5)}
    assert _labelled_ticks(plots.val_curves_figure(curves).axes[0].xaxis) == {1.0: "1"}
    assert _pixels_of(plots.val_curves_figure(curves), "tab:blue") >= 60
    assert _pixels_of(plots.val_curves_figure(curves), "tab:orange") >= 60


def test_loss_curve_marks_the_best_epoch() -> None:
    history = _history().assign(val_loss=[3.0, 2.0, 1.5, 1.6, 1.7])
    fig = plots.loss_curve_figure(history)
    (ax,) = _panels(fig)
    (best,) = [line for line in ax.get_lines() if line.get_gid() == plots.BEST_EPOCH_GID]
    assert list(best.get_xdata()) == [3, 3]
    assert best.get_label() == "best epoch 3 (val 1.5)"
    assert "best epoch 3 (val 1.5)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_best_epoch_follows_min_delta_and_skips_missing_losses() -> None:
    history = _history(4).assign(val_loss=[2.0, 1.97, np.nan, 1.96])
    assert plots.best_epoch(history) == (4, 1.96)
    assert plots.best_epoch(history, min_delta=0.05) == (1, 2.0)
    assert plots.best_epoch(history.assign(val_loss=np.nan)) is None


def test_loss_curve_without_validation_has_no_best_epoch_marker() -> None:
    fig = plots.loss_curve_figure(_history().assign(val_loss=np.nan))
    assert not [line for ax in fig.axes for line in ax.get_lines() if line.get_gid() == plots.BEST_EPOCH_GID]


def test_loss_curve_draws_the_learning_rate_on_a_second_axis() -> None:
    lr = [5e-4, 1e-3, 9e-4, 6.5e-4, 3.5e-4]
    fig = plots.loss_curve_figure(_history().assign(lr=lr))
    (twin,) = [ax for ax in fig.axes if ax.get_ylabel() == "learning rate"]
    (line,) = twin.get_lines()
    assert line.get_ydata().tolist() == lr
    assert twin.get_ylim()[0] == 0
    (ax,) = _panels(fig)
    assert twin.get_shared_x_axes().joined(ax, twin)
    assert "learning rate" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_loss_curve_without_lr_has_one_axis() -> None:
    fig = plots.loss_curve_figure(_history().drop(columns="lr"))
    assert len(fig.axes) == 1


def test_a_narrow_loss_range_has_several_labelled_ticks() -> None:
    """Losses between 1.0 and 2.04 on a log axis would show two labels (1 and 2)."""
    val = [2.04, 2.01, 1.99, 1.95, 1.97]
    fig = plots.loss_curve_figure(_history().assign(train_loss=[1.2, 1.1, 1.05, 1.0, 1.0], val_loss=val))
    top, own = _panels(fig)
    assert top.get_yscale() == "linear" and len(_labelled_ticks(top.yaxis)) >= 3
    ticks = _labelled_ticks(own.yaxis)
    assert len(ticks) >= 3 and len(set(ticks.values())) == len(ticks)
    assert min(ticks) >= 1.94 and max(ticks) <= 2.05


def test_losses_over_decades_are_on_a_log_axis_with_labels_between_the_powers_of_ten() -> None:
    fig = plots.loss_curve_figure(_history().assign(train_loss=[1.2, 0.5, 0.2, 0.1, 0.08], val_loss=1.0))
    (ax,) = _panels(fig)
    assert ax.get_yscale() == "log"
    assert len(_labelled_ticks(ax.yaxis)) >= 3


def test_a_flat_validation_loss_beside_the_training_loss_gets_its_own_panel() -> None:
    history = _history(6).assign(
        train_loss=[1.01, 0.99, 0.99, 0.99, 0.99, 0.99], val_loss=[1.974, 1.981, 1.974, 1.976, 1.966, 1.967]
    )
    fig = plots.loss_curve_figure(history)
    top, val = _panels(fig)
    assert (val.get_ylabel(), val.get_xlabel(), top.get_xlabel()) == ("validation loss", "epoch", "")
    assert _line(val, "validation").get_ydata().tolist() == history["val_loss"].tolist()
    assert len(_labelled_ticks(val.yaxis)) >= 3
    for ax in (top, val):
        (best,) = [line for line in ax.get_lines() if line.get_gid() == plots.BEST_EPOCH_GID]
        assert list(best.get_xdata()) == [5, 5]
    assert len(_panels(plots.loss_curve_figure(_history()))) == 1  # a visible one does not


# --- predictions: what is drawn ------------------------------------------------------------------


def test_predictions_have_overview_zoom_error_and_difference_panels() -> None:
    predictions = _predictions(days=100).query("step == 1")
    fig = plots.predictions_figure(predictions, title="aapl")
    overview, zoom, error, gap = fig.axes
    assert overview.get_title() == "aapl: whole test span"
    assert zoom.get_title() == "last 60 steps (2023-02-27 to 2023-05-19)"
    assert error.get_ylabel() == "|error| (Close)" and gap.get_xlabel() == "date"
    assert _labels(overview) == _labels(zoom) == ["target", "model", "persistence"]
    assert len(_line(overview, "model").get_xdata()) == 100
    assert len(_line(zoom, "model").get_xdata()) == len(_line(zoom, "target").get_xdata()) == 60
    close = predictions.query("series == 'Close'")
    mae = (close["prediction"] - close["target"]).abs().mean()
    assert _labels(error) == [f"model (MAE {mae:.4g})", f"persistence (MAE {_persistence_mae(close):.4g})"]
    assert _labels(gap) == ["model - persistence"]


def _persistence_mae(rows: pd.DataFrame) -> float:
    return float((rows["persistence"] - rows["target"]).abs().mean())


def test_predictions_difference_panel_is_the_rolling_gap_between_the_errors() -> None:
    close = _predictions(days=50).query("series == 'Close' and step == 1")
    fig = plots.predictions_figure(close, title="t")
    gap = fig.axes[3]
    model = (close["prediction"] - close["target"]).abs()
    last = (close["persistence"] - close["target"]).abs()
    expected = (model - last).rolling(plots.ROLLING_STEPS, min_periods=5).mean().to_numpy()
    drawn = np.asarray(_line(gap, "model - persistence").get_ydata(), dtype=float)
    np.testing.assert_allclose(drawn, expected, equal_nan=True)
    (zero,) = [line for line in gap.get_lines() if line.get_label().startswith("_")]
    assert list(zero.get_ydata()) == [0, 0]


def test_multi_step_predictions_are_labelled_by_step() -> None:
    fig = plots.predictions_figure(_predictions(days=40), title="t")
    overview, zoom, error, gap = fig.axes
    expected = ["target", "model, step 1", "persistence, step 1", "model, step 2", "persistence, step 2"]
    assert _labels(overview) == _labels(zoom) == expected
    assert [label.split(" (MAE")[0] for label in _labels(error)] == expected[1:]
    assert _labels(gap) == ["model - persistence, step 1", "model - persistence, step 2"]


def test_predictions_legends_lie_outside_their_axes() -> None:
    fig = plots.predictions_figure(_predictions(days=40), title="t")
    fig.canvas.draw()
    for ax in fig.axes:
        assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1


def test_predictions_without_dates_count_test_steps() -> None:
    predictions = _predictions().query("series == 'Close'").drop(columns=["date", "series"])
    fig = plots.predictions_figure(predictions, title="t")
    assert fig.axes[3].get_xlabel() == "test step"
    assert _line(fig.axes[0], "model, step 2").get_xdata()[0] == 1  # step 2 of window 0 lands one later


# --- compare: what is drawn ----------------------------------------------------------------------


def test_val_curves_legend_lies_outside_the_axes_and_inside_the_figure() -> None:
    curves = {f"aapl-mingru-{k}/20261122-153012-3f9a": _history(3, offset=0.1 * k) for k in range(6)}
    fig = plots.val_curves_figure(curves)
    fig.tight_layout()
    fig.canvas.draw()
    (ax,) = fig.axes
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1
    assert legend.x1 <= fig.bbox.x1
    assert len(ax.get_lines()) == 6 and _labels(ax) == list(curves)
    assert all(x == int(x) for x in _labelled_ticks(ax.xaxis))
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", "validation loss")


# --- multi-step forecasts: what is drawn -------------------------------------------------------


def _horizon(shown: int = 4, seq_len: int = 12, horizon: int = 6) -> plots.HorizonForecasts:
    """`shown` hourly windows of OT out of 50, each forecaster a known offset from the truth."""
    rng = np.random.default_rng(2)
    dates = pd.date_range("2017-10-20", periods=200, freq="h").to_numpy()
    values = 10 + rng.normal(size=200).cumsum()
    origins = np.linspace(seq_len, 150, shown).astype(int)  # (K,) rows of each window's last input
    inputs = origins[:, None] + np.arange(-seq_len + 1, 1)  # (K, L)
    targets = origins[:, None] + np.arange(1, horizon + 1)  # (K, H)
    names = ("model", "persistence", "seasonal", "linear")
    return plots.HorizonForecasts(
        series="OT",
        input_dates=dates[inputs],
        inputs=values[inputs],
        target_dates=dates[targets],
        truth=values[targets],
        forecasts={name: values[targets] + i + 1 for i, name in enumerate(names)},
        windows=np.linspace(0, 49, shown).round().astype(int),
        n_windows=50,
        step_error={name: (i + 1.0) * np.arange(1, horizon + 1) for i, name in enumerate(names)},
        error_name="MSE (scaled)",
        error_scope="all 50 test windows and 7 series",
    )


def _by_gid(fig: Figure, gid: str) -> list[Axes]:
    return [ax for ax in fig.axes if ax.get_gid() == gid]


def test_a_multi_step_figure_shows_windows_of_inputs_and_forecasts_and_the_error_per_step() -> None:
    horizon = _horizon()
    fig = plots.horizon_figure(horizon, title="etth1-96")
    windows, (error,) = _by_gid(fig, plots.WINDOW_GID), _by_gid(fig, plots.STEP_ERROR_GID)
    assert len(windows) == 4 and len(fig.axes) == 5
    assert fig.get_suptitle() == "etth1-96: 4 of 50 test windows, OT"
    for k, ax in enumerate(windows):
        assert _labels(ax) == ["input", "target", "model", "persistence", "seasonal", "linear"]
        assert list(_line(ax, "input").get_ydata()) == list(horizon.inputs[k])
        assert list(_line(ax, "target").get_xdata()) == list(horizon.target_dates[k])
        model = _line(ax, "model")
        assert list(model.get_xdata()) == list(horizon.target_dates[k])
        np.testing.assert_array_equal(model.get_ydata(), horizon.truth[k] + 1)
        (origin,) = [line for line in ax.get_lines() if line.get_gid() == plots.ORIGIN_GID]
        assert origin.get_xdata()[0] == horizon.input_dates[k, -1]
    assert windows[0].get_title() == "window 1, last input 2017-10-20 12:00"
    assert [ax.get_title().split(",")[0] for ax in windows] == [
        "window 1",
        "window 17",
        "window 34",
        "window 50",
    ]
    assert [ax.get_ylabel() for ax in windows] == ["OT", "", "OT", ""]
    assert (error.get_xlabel(), error.get_ylabel()) == ("horizon step", "MSE (scaled)")
    assert _labels(error) == [
        "model (MSE 3.5)",
        "persistence (MSE 7)",
        "seasonal (MSE 10.5)",
        "linear (MSE 14)",
    ]
    assert list(_line(error, "linear (MSE 14)").get_ydata()) == [4, 8, 12, 16, 20, 24]
    assert "all 50 test windows and 7 series" in error.get_title()


@pytest.mark.parametrize("shown, rows", [(1, 1), (3, 2), (4, 2)])
def test_a_multi_step_figure_has_a_panel_per_window_two_a_row(shown: int, rows: int) -> None:
    fig = plots.horizon_figure(_horizon(shown=shown), title="t")
    windows = _by_gid(fig, plots.WINDOW_GID)
    assert len(windows) == shown
    assert len({round(ax.get_position().y0, 3) for ax in windows}) == rows
    (error,) = _by_gid(fig, plots.STEP_ERROR_GID)
    assert error.get_position().y1 < min(ax.get_position().y0 for ax in windows)  # below them all
    assert error.get_position().width > 1.9 * windows[0].get_position().width  # across the figure


def test_a_multi_step_figure_keeps_its_legends_clear_of_the_panels() -> None:
    fig = plots.horizon_figure(_horizon(), title="t")
    fig.canvas.draw()
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == _labels(_by_gid(fig, plots.WINDOW_GID)[0])
    right = max(ax.get_window_extent().x1 for ax in fig.axes)
    assert legend.get_window_extent().x0 >= right
    (error,) = _by_gid(fig, plots.STEP_ERROR_GID)
    assert error.get_legend().get_window_extent().x0 >= error.get_window_extent().x1
    assert error.get_legend().get_window_extent().x1 <= fig.bbox.x1


def test_a_multi_step_predictions_png_is_laid_out_by_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tight_layout draws the whole figure once more: the multi-step figure is laid out without it."""

    def no_tight_layout(self: Figure, *args: object, **kwargs: object) -> None:
        raise AssertionError("tight_layout called")

    monkeypatch.setattr(Figure, "tight_layout", no_tight_layout)
    path = tmp_path / "predictions.png"
    plots.plot_predictions(_predictions(), path, title="t", horizon=_horizon())
    _assert_png_and_no_leftovers(path)
