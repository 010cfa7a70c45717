"""The benchmarks run as scripts: a quick smoke run of each, writing to a temporary path."""

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqbench.models.registry import model_names

REPO = Path(__file__).resolve().parents[1]
SPEED = REPO / "benchmarks" / "numpy_speed.py"

_spec = importlib.util.spec_from_file_location("numpy_speed", SPEED)
numpy_speed = importlib.util.module_from_spec(_spec)
sys.modules["numpy_speed"] = numpy_speed  # its dataclasses look their module up
_spec.loader.exec_module(numpy_speed)  # (its thread settings apply only when it runs as a script)
REFERENCE = numpy_speed.find_reference()


def run_speed(*args, timeout=120):
    return subprocess.run(
        [sys.executable, str(SPEED), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


@pytest.mark.skipif(
    not REFERENCE.is_file(),
    reason=f"the guide's reference code is not at {REFERENCE} (set SEQBENCH_SHARED to the shared/ folder)",
)
def test_numpy_speed_quick_writes_a_markdown_table(tmp_path):
    output = tmp_path / "results" / "speed.md"
    start = time.perf_counter()
    result = run_speed("--quick", "--output", output)
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
    result = run_speed("--quick", "--reference", tmp_path / "nope.py", "--output", output)
    assert result.returncode == 2
    assert "guide reference not found" in result.stderr and "Traceback" not in result.stderr
    assert not output.exists()
