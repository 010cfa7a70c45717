"""predictions.csv and its compact form predictions.csv.xz: the layouts, the size, and every reader
(predict, compare's dm_p and --against, report, resume) on a run that wrote the compact form."""

from __future__ import annotations

import json
import lzma

import numpy as np
import pandas as pd
import pytest

from seqbench.artifacts import predictions_file
from seqbench.artifacts.predictions_file import (
    COMPACT,
    PLAIN,
    compact_frame,
    find_forecasts,
    long_frame,
    read_forecasts,
    round_significant,
    write_forecasts,
)
from seqbench.errors import SeqbenchError

PLAIN_COLUMNS = ["date", "series", "step", "target", "prediction", "persistence", "linear"]
ETTH1_96_ROWS = 2785 * 96 * 7  # the run whose 190 MB predictions.csv had to shrink
BUDGET = 20e6  # bytes for those rows


def forecasts(windows=30, horizon=4, series=("HUFL", "OT"), seed=0, hourly=True) -> pd.DataFrame:
    """A plain predictions frame as the forecast task writes it: window by window, steps then series,
    hourly targets with ETT's three decimals, full-precision forecasts."""
    rng = np.random.default_rng(seed)
    rows = windows + horizon - 1
    fmt = "%Y-%m-%d %H:%M:%S" if hourly else "%Y-%m-%d"
    dates = pd.date_range("2017-10-20", periods=rows, freq="h" if hourly else "D").strftime(fmt)
    truth = np.round(10 + rng.normal(size=(rows, len(series))).cumsum(axis=0), 3)  # (rows, T)
    w, s = np.meshgrid(np.arange(windows), np.arange(horizon), indexing="ij")  # (N, H)
    target = truth[w + s]  # (N, H, T)
    last = np.repeat(truth[np.maximum(np.arange(windows) - 1, 0)][:, None], horizon, axis=1)
    n = windows * horizon * len(series)
    return pd.DataFrame(
        {
            "date": np.repeat(dates.to_numpy()[(w + s).reshape(-1)], len(series)),
            "series": np.tile(series, windows * horizon),
            "step": np.tile(np.repeat(np.arange(1, horizon + 1), len(series)), windows),
            "target": target.reshape(-1),
            "prediction": target.reshape(-1) + rng.normal(size=n),
            "persistence": last.reshape(-1),
            "linear": target.reshape(-1) + rng.normal(scale=0.5, size=n),
        }
    )


def assert_same_forecasts(read: pd.DataFrame, written: pd.DataFrame) -> None:
    """Keys, targets and persistence exactly; forecasts to DIGITS significant digits."""
    assert list(read.columns) == list(written.columns)
    for column in ("date", "series", "step", "target", "persistence"):
        assert read[column].tolist() == written[column].tolist(), column
    for column in ("prediction", "linear"):
        np.testing.assert_allclose(read[column], written[column], rtol=5e-7, atol=0)
        assert not np.array_equal(read[column], written[column])  # rounded: the test sees the compact form


# --- the two layouts -----------------------------------------------------------------------------


def test_the_compact_layout_is_one_row_per_series_and_window():
    frame = forecasts(windows=5, horizon=3)
    compact = compact_frame(frame)
    assert list(compact.columns) == [
        "series", "persistence", "date_1", "date_2", "date_3", "target_1", "target_2", "target_3",
        "prediction_1", "prediction_2", "prediction_3", "linear_1", "linear_2", "linear_3",
    ]  # fmt: skip
    assert compact["series"].tolist() == ["HUFL"] * 5 + ["OT"] * 5
    ot = frame[frame["series"] == "OT"]
    assert compact["target_3"].iloc[5:].tolist() == ot[ot["step"] == 3]["target"].tolist()
    assert compact["date_2"].iloc[0] == frame["date"].iloc[2]  # window 0, step 2, first series
    assert compact["persistence"].iloc[5:].tolist() == ot[ot["step"] == 1]["persistence"].tolist()


@pytest.mark.parametrize("horizon, series", [(4, ("HUFL", "OT")), (1, ("Close",)), (6, ("a", "b", "c"))])
def test_the_compact_layout_reads_back_as_the_plain_one(horizon, series):
    frame = forecasts(horizon=horizon, series=series)
    assert_same_forecasts(long_frame(compact_frame(frame)), frame)


def test_a_persistence_that_varies_over_the_steps_is_kept_step_by_step():
    frame = forecasts(horizon=3)
    frame["persistence"] += np.arange(len(frame))  # not a persistence forecast, but not lost either
    compact = compact_frame(frame)
    assert "persistence" not in compact and "persistence_3" in compact
    assert long_frame(compact)["persistence"].tolist() == frame["persistence"].tolist()


def test_round_significant_matches_printf_and_keeps_odd_values():
    rng = np.random.default_rng(1)
    values = rng.lognormal(0, 10, 20_000) * rng.choice([-1.0, 1.0], 20_000)
    expected = np.array([float(f"{v:.7g}") for v in values])
    assert np.array_equal(round_significant(values, 7), expected)
    odd = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 5e-320, 123.0])
    np.testing.assert_array_equal(round_significant(odd, 7), odd)
    assert [repr(float(v)) for v in round_significant(np.array([1 / 3, 2 / 3 * 1e5]), 7)] == [
        "0.3333333",
        "66666.67",
    ]


# --- writing and reading -------------------------------------------------------------------------


def test_csv_text_is_pandas_to_csv_byte_for_byte():
    """Strings that need quoting, odd floats, ints; a missing value goes through pandas itself."""
    frame = pd.DataFrame(
        {
            "series": ["a", 'b,"c"', "d\ne", "f"],
            "x": [0.1, -1e-300, 1.7976931348623157e308, 12345678.0],
            "n": [1, 2, 3, 4],
            "date_1": ["2020-01-01 00:00:00"] * 4,
        }
    )
    assert predictions_file.csv_text(frame) == frame.to_csv(index=False)
    frame.loc[1, "x"] = np.nan
    assert predictions_file.csv_text(frame) == frame.to_csv(index=False)


@pytest.mark.parametrize("block_rows", [1, 3, 1024])
def test_the_xz_file_is_the_whole_text_compressed_in_one_call(block_rows):
    """Made in blocks of rows, compressed block by block in a thread: the bytes of lzma.compress on
    the whole text (a block with a missing value written by pandas, the others by the csv writer)."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"series": list("abcdefg"), "x": rng.normal(size=7), "y": rng.normal(size=7)})
    frame.loc[4, "y"] = np.nan
    whole = lzma.compress(frame.to_csv(index=False).encode("utf-8"), preset=predictions_file.XZ_PRESET)
    assert predictions_file.xz_csv(frame, block_rows) == whole


def test_small_forecasts_keep_the_plain_file_byte_for_byte(tmp_path):
    frame = forecasts()
    written = write_forecasts(tmp_path / PLAIN, frame)
    assert written == tmp_path / PLAIN and sorted(p.name for p in tmp_path.iterdir()) == [PLAIN]
    assert written.read_text() == frame.to_csv(index=False)
    assert written.read_text().splitlines()[0] == ",".join(PLAIN_COLUMNS)
    assert find_forecasts(tmp_path) == written
    as_text = {"date": str, "series": str}
    pd.testing.assert_frame_equal(read_forecasts(tmp_path), pd.read_csv(written, dtype=as_text))


def test_many_forecasts_write_the_compact_file_that_pandas_reads_in_one_call(tmp_path, monkeypatch):
    frame = forecasts()
    monkeypatch.setattr(predictions_file, "COMPACT_ABOVE_ROWS", len(frame) - 1)
    written = write_forecasts(tmp_path / PLAIN, frame)
    assert written == tmp_path / COMPACT and sorted(p.name for p in tmp_path.iterdir()) == [COMPACT]
    assert written.read_bytes().startswith(b"\xfd7zXZ\x00")
    raw = pd.read_csv(written)  # the extension says xz
    assert raw.shape == (60, 2 + 4 * 4) and raw["date_1"].iloc[0] == "2017-10-20 00:00:00"
    assert find_forecasts(tmp_path) == written
    assert_same_forecasts(read_forecasts(tmp_path), frame)


def test_the_compact_file_fits_the_budget_of_the_etth1_run(tmp_path, monkeypatch):
    """ETTh1 at 96 -> 96 on 7 channels: 1.87 M plain rows (190 MB) in at most 20 MB; here a slice
    of it (300 of its 2,785 windows, random forecasts) against the same budget per row."""
    frame = forecasts(windows=300, horizon=96, series=("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"))
    assert len(frame) > predictions_file.COMPACT_ABOVE_ROWS
    written = write_forecasts(tmp_path / PLAIN, frame)
    assert written.name == COMPACT
    assert written.stat().st_size < BUDGET * len(frame) / ETTH1_96_ROWS
    assert len(frame.to_csv(index=False)) > 8 * written.stat().st_size


def test_a_run_without_forecasts_or_with_a_broken_file_is_an_error(tmp_path):
    with pytest.raises(SeqbenchError, match=r"has no predictions\.csv or predictions\.csv\.xz"):
        read_forecasts(tmp_path)
    (tmp_path / COMPACT).write_bytes(lzma.compress(b"series,date_1\nOT,2020\nOT\n")[:-3])
    with pytest.raises(SeqbenchError, match=r"cannot read .*predictions\.csv\.xz"):
        read_forecasts(tmp_path)


# --- every reader, on a trained run that wrote the compact form ----------------------------------


@pytest.fixture
def compact_runs(tmp_path, price_csv, monkeypatch):
    """The same short multi-step run trained twice: once with the plain file, once the compact one."""
    from seqbench.run.experiment import run_experiment
    from seqbench.spec import Spec

    spec = Spec.model_validate(
        {
            "name": "big",
            "dataset": {"source": "csv", "path": str(price_csv), "seq_len": 10, "horizon": 3},
            "model": {"name": "gru", "hidden_size": 4},
            "train": {"epochs": 1},
        }
    )
    plain = run_experiment(spec, tmp_path / "results")
    monkeypatch.setattr(predictions_file, "COMPACT_ABOVE_ROWS", 0)
    compact = run_experiment(spec, tmp_path / "results")
    assert plain.status == compact.status == "completed"
    assert (plain.run_dir / PLAIN).is_file() and not (plain.run_dir / COMPACT).exists()
    assert (compact.run_dir / COMPACT).is_file() and not (compact.run_dir / PLAIN).exists()
    return plain, compact


def test_readers_take_a_trained_runs_compact_file(compact_runs, price_csv, tmp_path):
    from seqbench.artifacts.runs import load_run
    from seqbench.artifacts.significance import dm_between_runs, dm_vs_persistence, read_predictions
    from seqbench.report.write import write_report
    from seqbench.results.compare import compare_rows
    from seqbench.run.experiment import missing_artifacts
    from seqbench.trained.predict import predict_run

    plain, compact = compact_runs
    assert_same_forecasts(read_forecasts(compact.run_dir), read_forecasts(plain.run_dir))
    assert missing_artifacts(compact.run_dir) == []

    # compare: dm_p from the file when metrics.json has none, and --against, both ways
    stored = compact.metrics["significance"]["persistence"]["p_value"]
    run = load_run(compact.run_dir)
    del run["significance"]
    (row,) = compare_rows([run])
    assert row["dm_p"] == pytest.approx(stored, rel=1e-4) and row["dm_p"] != stored
    assert dm_vs_persistence(compact.run_dir).p_value == row["dm_p"]
    windows = read_predictions(compact.run_dir)["window"].nunique()
    for first, second in ((plain, compact), (compact, plain)):
        assert dm_between_runs(first.run_dir, second.run_dir).n == windows  # paired on every window

    # predict: the run's own data after the first test window's inputs gives that window's forecast
    saved = read_forecasts(compact.run_dir)
    first_target = compact.metrics["splits"]["test"]["target_rows"][0]
    cut = tmp_path / "cut.csv"
    pd.read_csv(price_csv).iloc[:first_target].to_csv(cut, index=False)
    forecast = predict_run(compact.run_dir, cut).frame
    assert list(forecast["date"]) == list(saved["date"][:3])
    np.testing.assert_allclose(forecast["prediction"], saved["prediction"][:3], rtol=1e-6)

    # report: the run's page has its dm_p computed from the compact file
    metrics_file = compact.run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    del metrics["significance"]
    metrics_file.write_text(json.dumps(metrics))
    page = write_report([compact.run_dir], tmp_path / "report.html").path.read_text()
    assert f"Diebold-Mariano p-value vs persistence: {row['dm_p']:.2g}" in page


def test_resume_of_a_compact_run_writes_only_what_is_missing(compact_runs):
    from seqbench.run.experiment import resume_experiment

    _, compact = compact_runs
    before = (compact.run_dir / COMPACT).stat().st_mtime_ns
    (compact.run_dir / "loss_curve.png").unlink()
    resume_experiment(compact.run_dir)
    assert (compact.run_dir / "loss_curve.png").is_file()
    assert (compact.run_dir / COMPACT).stat().st_mtime_ns == before and not (compact.run_dir / PLAIN).exists()
