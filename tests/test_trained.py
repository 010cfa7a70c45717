"""A run folder whose model.npz is truncated or damaged: `sample`, `predict` and `train --resume`
say so in one line that names the file (exit 2), and change nothing in the folder."""

import shutil

import numpy as np
import pytest
from cli_helpers import invoke

from seqbench.models.weights_file import open_weights

FORECAST = (
    "name: f\ndataset: {source: synthetic, name: sine, length: 300, seq_len: 8}\n"
    "model: {name: gru, hidden_size: 4}\ntrain: {epochs: 1}\n"
)
LM = (
    "name: lm\ndataset: {{source: text, path: {text}, seq_len: 16}}\n"
    "model: {{name: gru, hidden_size: 8}}\ntrain: {{epochs: 1, batches_per_epoch: 3, batch_size: 8}}\n"
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A completed forecast run and a completed LM run, each a folder to copy."""
    root = tmp_path_factory.mktemp("trained")
    (root / "plays.txt").write_text("The king shall speak now, my lord.\n" * 200)
    (root / "f.yaml").write_text(FORECAST)
    (root / "lm.yaml").write_text(LM.format(text=root / "plays.txt"))
    found = {}
    for name in ("f", "lm"):
        result = invoke("train", "-q", "-c", root / f"{name}.yaml", "--results", root / "results")
        assert result.exit_code == 0, result.output
        (found[name],) = (root / "results" / name).iterdir()
    return found


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def bad_crc(data: bytes) -> bytes:
    """The zip archive intact, the bytes of its first array changed: its CRC no longer fits."""
    data = bytearray(data)
    data[200:260] = b"x" * 60
    return bytes(data)


def files_of(folder):
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    return {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in files}


COMMANDS = {
    "sample": ("lm", lambda run: ["sample", run, "--length", "5"]),
    "predict": ("f", lambda run: ["predict", run]),
    "train --resume": ("f", lambda run: ["train", "--resume", run]),  # writes a missing artifact
}


@pytest.mark.parametrize("damage", [truncated, bad_crc])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_damaged_model_npz_is_one_line_naming_it(runs, tmp_path, command, damage):
    kind, args = COMMANDS[command]
    run_dir = tmp_path / kind / runs[kind].name
    shutil.copytree(runs[kind], run_dir)
    (run_dir / "predictions.png").unlink(missing_ok=True)  # something for --resume to finish
    weights = run_dir / "model.npz"
    weights.write_bytes(damage(weights.read_bytes()))
    before = files_of(run_dir)
    result = invoke(*args(run_dir))
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert f"{weights} is not a readable .npz file" in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert files_of(run_dir) == before


def test_open_weights_refuses_what_is_not_plain_arrays(tmp_path):
    np.save(tmp_path / "one.npy", np.zeros(3))
    np.savez(tmp_path / "objects.npz", a=np.array([{"x": 1}], dtype=object))
    np.savez(tmp_path / "good.npz", a=np.arange(3))
    with pytest.raises(ValueError, match=r"one\.npy is not a weights file"):
        open_weights(tmp_path / "one.npy")
    with pytest.raises(ValueError, match=r"objects\.npz: 'a' holds object values, not real numbers"):
        open_weights(tmp_path / "objects.npz")
    with pytest.raises(FileNotFoundError):
        open_weights(tmp_path / "absent.npz")
    assert open_weights(tmp_path / "good.npz").arrays()["a"].tolist() == [0, 1, 2]
