"""Tests for seqbench.plots: each plot writes a real PNG and leaves no temporary file behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from seqbench import plots

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


def _assert_png_and_no_leftovers(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 1000
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_loss_curve(tmp_path: Path) -> None:
    path = tmp_path / "loss_curve.png"
    plots.plot_loss_curve(_history(), path)
    _assert_png_and_no_leftovers(path)


@pytest.mark.parametrize(
    "history",
    [
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


def test_predictions_pick_step_one_of_the_first_series() -> None:
    frame = plots._first_series_step_one(_predictions(days=10))
    assert len(frame) == 10
    assert set(frame["series"]) == {"Close"}
    assert set(frame["step"]) == {1}


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
