"""Every spec in experiments/ is valid as it is, and the LM ones train (cut short) from a local copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqbench.models.registry import torch_installed
from seqbench.run.experiment import run_experiment
from seqbench.spec import dump_spec, load_spec

EXPERIMENTS = sorted((Path(__file__).parents[1] / "experiments").glob("*.yaml"))
LM_SPECS = [path for path in EXPERIMENTS if load_spec(path).task == "lm"]


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_every_example_spec_is_valid_and_reads_back_as_saved(path, tmp_path):
    spec = load_spec(path)
    saved = tmp_path / "spec.yaml"
    saved.write_text(dump_spec(spec))  # what a run folder keeps
    assert load_spec(saved) == spec


def test_the_language_model_examples_exist():
    assert {p.name for p in LM_SPECS} >= {
        "shakespeare_mingru.yaml",
        "shakespeare_mamba.yaml",
        "enwik8_mamba.yaml",
    }


@pytest.mark.parametrize("path", LM_SPECS, ids=lambda p: p.name)
def test_each_lm_example_trains_from_a_local_copy(path, tmp_path):
    """As the README's offline command runs it (`--set dataset.path=...`), on a small text, cut short."""
    text = tmp_path / "local.txt"
    text.write_bytes(b"To be, or not to be, that is the question.\n" * 300)
    overrides = [f"dataset.path={text}", "train.epochs=1", "train.batches_per_epoch=2", "model.hidden_size=8"]
    if not torch_installed():
        overrides.append("model.backend=numpy")
    spec = load_spec(path, overrides)
    result = run_experiment(spec, tmp_path / "results")
    assert result.status == "completed", result.message
    assert (result.run_dir / "samples.txt").is_file() and result.metrics[
        "test" if spec.dataset.split[2] else "val"
    ]
