"""Out of memory, and memory that must not grow with the data.

A run that runs out of memory while training, scoring or writing its files ends with exit 1, one
or two lines naming what filled the memory and the setting to lower (said in run.log too), and
metrics.json with status `failed`. An LM's scoring and baselines hold a chunk at a time, never a
copy of the text: their peak memory does not grow with it.
"""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
from cli_helpers import invoke, make_text

from seqbench.data import text as text_data
from seqbench.models.numpy.learner import NumpyLearner
from seqbench.tasks import lm, lm_baselines
from seqbench.tasks.lm import block_size, log_softmax, score_text_blocks
from seqbench.training import loop as train_loop

FORECAST = ["--set", "train.epochs=3", "--set", "model.hidden_size=4", "--set", "dataset.seq_len=5", "-q"]
LM = ["--set", "train.epochs=3", "--quiet"]


@pytest.fixture
def workdir(workdir):
    (workdir / "s.yaml").write_text("dataset: {source: synthetic, name: sine, length: 120}\n")
    (workdir / "plays.txt").write_bytes(make_text(12_000))
    (workdir / "lm.yaml").write_text(
        "task: lm\n"
        "dataset: {source: text, path: plays.txt, seq_len: 16}\n"
        "model: {name: mingru, hidden_size: 8}\n"
        "train: {batches_per_epoch: 3, batch_size: 4}\n"
    )
    return workdir


def run_dir_of(workdir):
    (run_dir,) = (workdir / "results").glob("*/*")
    return run_dir


def fail_after_first_epoch(monkeypatch):
    """Training steps raise MemoryError once an epoch has been validated (so in epoch 2)."""
    validated = []
    validation_loss = train_loop.validation_loss

    def counted(learner, val):
        validated.append(1)
        return validation_loss(learner, val)

    def train_step(self, x, y):
        if validated:
            raise MemoryError
        return step(self, x, y)

    step = NumpyLearner.train_step
    monkeypatch.setattr(train_loop, "validation_loss", counted)
    monkeypatch.setattr(NumpyLearner, "train_step", train_step)


def assert_failed(workdir, result, hint, failed_while, epochs_run):
    """Exit 1, the hint in at most two lines on stderr and in run.log, metrics.json status failed."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ran out of memory while"), result.stderr
    assert hint in result.stderr, result.stderr
    run_dir = run_dir_of(workdir)
    assert hint in (run_dir / "run.log").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "failed" and metrics["failed_while"] == failed_while
    assert metrics["epochs_run"] == epochs_run and hint in metrics["error"]
    assert len((run_dir / "history.csv").read_text().splitlines()) == 1 + epochs_run
    assert not list(run_dir.glob("*.tmp*")) and not list(run_dir.glob(".*.tmp*"))  # nothing half-written
    return run_dir, metrics


def test_out_of_memory_in_training_fails_the_run_with_the_batch_hint_and_can_resume(workdir, monkeypatch):
    fail_after_first_epoch(monkeypatch)
    result = invoke("train", "--config", "s.yaml", *FORECAST)
    run_dir, metrics = assert_failed(
        workdir, result, "lower train.batch_size or model.hidden_size", "training", epochs_run=1
    )
    assert "while training, in epoch 2 (batches of 32 windows of 5 steps" in result.stderr
    assert metrics["test"] is None and metrics["best_epoch"] == 1
    assert f"seqbench train --resume {run_dir.relative_to(workdir)}" in result.stderr  # epoch 1 is kept
    monkeypatch.undo()  # memory is free again: the run continues from its checkpoint
    resumed = invoke("train", "--resume", run_dir, "--quiet")
    assert resumed.exit_code == 0, resumed.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs_run"] == 3


def test_out_of_memory_in_lm_training_names_the_batch_and_the_window(workdir, monkeypatch):
    fail_after_first_epoch(monkeypatch)
    result = invoke("train", "--config", "lm.yaml", *LM)
    hint = "lower train.batch_size, dataset.seq_len or model.hidden_size"
    assert_failed(workdir, result, hint, "training", epochs_run=1)
    assert "batches of 4 windows of 16 bytes" in result.stderr


def test_out_of_memory_in_lm_scoring_names_the_text_not_the_batch(workdir, monkeypatch):
    def score(learner, before, text, seq_len, streams=lm.STREAMS, block=0):
        if block:  # the held-out part's final scoring; validation during training still works
            raise MemoryError
        return score_text_blocks(learner, before, text, seq_len, streams, block)

    monkeypatch.setattr(lm, "score_text_blocks", score)
    result = invoke("train", "--config", "lm.yaml", *LM)
    run_dir, metrics = assert_failed(
        workdir, result, "use a shorter text (a part of the file) or a lower dataset.seq_len", "evaluating", 3
    )
    assert "a text of 12,000 bytes held in memory, its 600 held-out bytes scored 16 streams x 16 bytes" in (
        result.stderr
    )
    assert "train.batch_size and train.eval_batch_size do not matter here" in result.stderr
    assert metrics["test"] is None and (run_dir / "model.npz").is_file()


def test_out_of_memory_writing_samples_keeps_the_scores_but_fails_the_run(workdir, monkeypatch):
    def samples(*args):
        raise MemoryError

    monkeypatch.setattr(lm, "samples_text", samples)
    result = invoke("train", "--config", "lm.yaml", *LM)
    _, metrics = assert_failed(workdir, result, "use a shorter text", "evaluating", 3)
    assert metrics["test"]["bits_per_byte"] > 0 and set(metrics["baselines"]) >= {"ngram", "lzma"}


def test_out_of_memory_before_the_run_folder_is_one_line_and_writes_nothing(workdir, monkeypatch):
    def read(path):
        raise MemoryError

    monkeypatch.setattr(text_data, "read_text_bytes", read)
    result = invoke("train", "--config", "lm.yaml", *LM)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ran out of memory") and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output and not (workdir / "results").exists()


# --- memory that does not grow with the text ----------------------------------------------------


class TableLearner:
    """Next-byte logits from the previous byte (a 256 x 256 table): the cheapest learner to score."""

    def __init__(self) -> None:
        self.log_p = log_softmax(np.random.default_rng(0).normal(size=(256, 256)))  # (V, V)

    def initial_state(self, batch: int) -> np.ndarray:
        return np.zeros(batch)

    def forward_state(self, x: np.ndarray, state: np.ndarray):
        return self.log_p[x], state  # (B, L, V)


def peak_bytes(call) -> int:
    """The most memory `call()` held at once, over what was held before it (tracemalloc)."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_lm_scoring_memory_does_not_grow_with_the_held_out_text():
    """The old scoring joined the text and built (streams, span) int64 index, input and target arrays:
    about 40 bytes per held-out byte. Now a chunk is gathered at a time: 4x the text, the same peak."""
    rng = np.random.default_rng(0)
    before = rng.integers(0, 256, 1000, dtype=np.uint8)
    small, large = (rng.integers(0, 256, n, dtype=np.uint8) for n in (2**16, 2**18))
    learner = TableLearner()

    def scored(text):
        return peak_bytes(lambda: score_text_blocks(learner, before, text, 64, block=block_size(len(text))))

    grew = scored(large) - scored(small)
    assert grew < 2**17, grew  # the blocks' sums (at most 4,096) only; the old code grew by 8 MB here


def test_lm_baselines_memory_does_not_grow_with_the_text(monkeypatch):
    """With their bounds scaled down (the n-gram fit on 32 KiB of train, its order on 8 KiB of val,
    16 KiB scored or counted at a time), 4x the text leaves the baselines' peak where it was."""
    monkeypatch.setattr(lm_baselines, "NGRAM_FIT_BYTES", 2**15)
    monkeypatch.setattr(lm_baselines, "NGRAM_ORDER_BYTES", 2**13)
    monkeypatch.setattr(lm_baselines, "CHUNK", 2**14)
    monkeypatch.setattr(text_data, "COUNT_CHUNK", 2**14)
    text = np.frombuffer(make_text(2**20), dtype=np.uint8)

    def baselines(n):
        train, val, held = text[: n * 8], text[n * 8 : n * 9], text[n * 9 : n * 10]
        scores = {}
        peak = peak_bytes(lambda: scores.update(lm_baselines.lm_baselines(train, val, held, max_order=4)))
        assert scores["ngram"]["fit_bytes"] == 2**15 and scores["ngram"]["order_bytes"] == 2**13
        return peak

    grew = baselines(2**16) - baselines(2**14)
    assert grew < 2**16, grew  # the held-out part alone grew by 48 KiB; unbounded, ~30 bytes per byte


def test_loading_a_text_holds_it_once(tmp_path, monkeypatch):
    """load_text reads the file into one uint8 array: no copy for the sha256, no sort for the byte
    values seen."""
    from seqbench.spec import Spec

    path = tmp_path / "t.txt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 2**22, dtype=np.uint8).tobytes())
    spec = Spec.model_validate({"task": "lm", "dataset": {"source": "text", "path": str(path)}})
    peak = peak_bytes(lambda: lm.load_text(spec, tmp_path))
    assert peak < 1.6 * 2**22, peak  # the text, and a chunk of it as int64 for np.bincount (2 MiB)
