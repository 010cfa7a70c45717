"""Scores that a refactor must not change: a spec without the new options gives, to rounding, the
numbers seqbench gave before they existed (tests/golden/, made at the commit it names)."""

import json
from pathlib import Path

import pytest

from seqbench.run.experiment import run_experiment
from seqbench.spec import load_spec

REPO = Path(__file__).parents[1]
GOLDEN = json.loads((REPO / "tests" / "golden" / "smoke_scores_5fee6a1.json").read_text())


@pytest.mark.parametrize("model", sorted(GOLDEN["runs"]))
def test_a_spec_without_the_new_options_keeps_its_scores(tmp_path, model):
    overrides = [f"model.name={model}", "model.backend=numpy", "model.state_size=4", "train.dtype=float64"]
    spec = load_spec(REPO / "experiments" / "smoke.yaml", overrides)
    metrics = run_experiment(spec, tmp_path).metrics
    for section, expected in GOLDEN["runs"][model].items():
        for name, value in expected.items():
            assert metrics[section][name] == pytest.approx(value, rel=1e-9), (section, name)
