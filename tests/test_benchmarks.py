"""The benchmarks run as scripts: a quick smoke run of each, writing to a temporary path."""

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from seqbench.models.registry import model_names

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the scripts import benchmarks/common.py, as they do when run


def load_benchmark(name: str, module: str) -> ModuleType:
    """benchmarks/{name}.py as a module (its thread settings apply only when it runs as a script)."""
    spec = importlib.util.spec_from_file_location(module, BENCHMARKS / f"{name}.py")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[module] = loaded  # its dataclasses look their module up
    spec.loader.exec_module(loaded)
    return loaded


def run_script(name: str, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run benchmarks/{name}.py from the repository root, as the README does."""
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


numpy_speed = load_benchmark("numpy_speed", "numpy_speed")
REFERENCE = numpy_speed.find_reference()


@pytest.mark.skipif(
    not REFERENCE.is_file(),
    reason=f"the guide's reference code is not at {REFERENCE} (set SEQBENCH_SHARED to the shared/ folder)",
)
def test_numpy_speed_quick_writes_a_markdown_table(tmp_path):
    output = tmp_path / "results" / "speed.md"
    start = time.perf_counter()
    result = run_script("numpy_speed", "--quick", "--output", output)
    assert result.returncode == 0, result.stderr
    assert time.perf_counter() - start < 60
    text = output.read_text()
    assert "Quick smoke run" in text and "numpy:" in text and "threads: 1" in text and "cpu:" in text
    rows = {
        tuple(cell.strip() for cell in line.split("|")[1:3])
        for line in text.splitlines()
        if line.startswith("| ")
    }
    assert ("guide gru", "float64") in rows
    assert {(name, "float32") for name in model_names()} <= rows
    assert "| 1.00x |" in text  # the guide against itself
    assert [p.name for p in output.parent.iterdir()] == ["speed.md"]  # no temporary file left


def test_numpy_speed_missing_reference_fails_cleanly(tmp_path):
    output = tmp_path / "speed.md"
    result = run_script("numpy_speed", "--quick", "--reference", tmp_path / "nope.py", "--output", output)
    assert result.returncode == 2
    assert "guide reference not found" in result.stderr and "Traceback" not in result.stderr
    assert not output.exists()


lm_benchmark = load_benchmark("lm", "lm_benchmark")
SHAKESPEARE = lm_benchmark.find_data("tinyshakespeare")


@pytest.mark.skipif(
    not SHAKESPEARE.is_file(),
    reason=f"tinyshakespeare is not at {SHAKESPEARE} (set SEQBENCH_SHARED to the shared/ folder)",
)
def test_lm_benchmark_quick_runs_the_peer_and_every_contender(tmp_path):
    pytest.importorskip("x_transformers", reason="the GPT peer needs x-transformers (the dev extra has it)")
    output = tmp_path / "out" / "lm.md"
    result = run_script("lm", "--quick", "--output", output)
    assert result.returncode == 0, result.stderr
    text = output.read_text()
    assert "Quick smoke run" in text and "threads: 2" in text and "x-transformers" in text
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]
    contenders = [c.label for c in lm_benchmark.CONTENDERS]
    assert rows[1] == "GPT (x-transformers)"  # the peer leads, after the header
    assert set(contenders) <= set(rows)
    assert any(row.endswith("-gram (Kneser-Ney)") for row in rows) and "lzma (preset 9e)" in rows
    report = json.loads(output.with_suffix(".json").read_text())
    models = {m["model"]: m for m in report["models"]}
    assert models["GPT (x-transformers)"]["peer"] and not models[contenders[0]]["peer"]
    for model in models.values():
        assert 0 < model["nats"] < 8 and model["params"] > 0 and model["train_s"] > 0
        assert set(model["gen_ms_per_byte"]) == {str(n) for n in lm_benchmark.QUICK["gen_lengths"]}
        assert model["curve"], model["model"]
    targets = [t["target"] for t in report["targets"]]
    assert len(targets) == 6 and all(isinstance(t["passed"], bool) for t in report["targets"])
    assert any("faster than the peer" in t for t in targets) and any("NumPy" in t for t in targets)
    assert output.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in output.parent.iterdir()) == ["lm.json", "lm.md", "lm.png"]


def test_lm_benchmark_missing_data_fails_cleanly(tmp_path):
    output = tmp_path / "lm.md"
    result = run_script("lm", "--quick", "--data-file", tmp_path / "nope.txt", "--output", output, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: data file not found") and "Traceback" not in result.stderr
    assert not output.exists()


def test_gpt_score_scores_every_byte_once_from_the_byte_before():
    """A bigram model (logits of the previous byte) scored by the GPT's windows gives the bigram's exact
    mean over the text, the first byte predicted from the last byte of `before`."""
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    table = rng.normal(size=(256, 256))  # previous byte -> logits

    class Bigram:
        def __call__(self, ids):
            return torch.from_numpy(table)[ids]  # (B, T, V)

        def eval(self):
            return self

        def train(self):
            return self

    before, text = rng.integers(0, 256, 100, dtype=np.uint8), rng.integers(0, 256, 77, dtype=np.uint8)
    log_p = table - np.log(np.exp(table).sum(axis=1, keepdims=True))
    previous = np.concatenate([before[-1:], text[:-1]])
    expected = -np.mean(log_p[previous, text])
    assert abs(lm_benchmark.gpt_score(Bigram(), before, text, block=16, batch=3) - expected) < 1e-12


ett_benchmark = load_benchmark("ett", "ett_benchmark")
ETTH1 = ett_benchmark.find_data()


@pytest.mark.skipif(
    not ETTH1.is_file(), reason=f"ETTh1 is not at {ETTH1} (set SEQBENCH_SHARED to the shared/ folder)"
)
def test_ett_quick_writes_the_table_beside_the_quoted_rows(tmp_path):
    output = tmp_path / "ett.md"
    result = run_script("ett", "--quick", "--output", output, timeout=300)
    assert result.returncode == 0, result.stderr
    text = output.read_text()
    assert "Quick smoke run" in text and "| seasonal | measured | 0.512 / 0.433 |" in text
    assert "| RLinear | quoted (arXiv 2403.11144) | 0.386 / 0.395 |" in text and "2,785" in text
