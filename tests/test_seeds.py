"""Seeds by default: `seeds:` in the spec and `train --seeds N`, one run per seed, one config id."""

import json
import re

import pytest
import yaml
from cli_helpers import invoke

from seqbench.errors import SpecError
from seqbench.run.experiment import run_experiment, run_seeds
from seqbench.spec import config_id, dump_spec, load_spec, seed_specs

TINY = """
name: tiny
dataset: {source: synthetic, name: sine, length: 300, seq_len: 10}
model: {name: mingru, hidden_size: 4}
train: {epochs: 2}
"""
DIVERGES = "train: {epochs: 2, optimizer: sgd, momentum: 0, lr: 1000, grad_clip: 0}"


def spec_file(folder, extra="", train=None):
    path = folder / "tiny.yaml"
    text = TINY if train is None else TINY.replace("train: {epochs: 2}", train)
    path.write_text(text + extra)
    return path


# --- the spec ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "overrides", "seed", "seeds"),
    [
        ("", [], 0, None),
        ("seed: 4\n", [], 4, None),
        ("seeds: [0, 1, 2]\n", [], 0, [0, 1, 2]),
        ("seeds: 3\n", [], 0, [0, 1, 2]),  # a count means 0 .. N-1
        ("seeds: [5, 1]\n", [], 0, [5, 1]),
        ("seeds: [0, 1]\n", ["seed=7"], 7, None),  # --seed runs only that seed
        ("seed: 7\n", ["seeds=2"], 0, [0, 1]),  # --seeds replaces the spec's seed
    ],
)
def test_seed_and_seeds(workdir, extra, overrides, seed, seeds):
    spec = load_spec(spec_file(workdir, extra), overrides)
    assert (spec.seed, spec.seeds) == (seed, seeds)
    assert [s.seed for s in seed_specs(spec)] == (seeds or [seed])
    assert all(s.seeds is None for s in seed_specs(spec))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("seed: 1\nseeds: [0, 1]\n", "give either seed (one run) or seeds (one run per seed), not both"),
        ("seeds: []\n", "seeds: must list at least one seed"),
        ("seeds: 0\n", "seeds: a number of seeds must be between 1 and 1000, got 0"),
        ("seeds: 99999999999999999999999\n", "seeds: a number of seeds must be between 1 and 1000"),
        ("seed: -5\n", "seed: Input should be greater than or equal to 0"),
        ("seeds: [1, 1]\n", "seeds: seeds must be distinct"),
        ("seeds: [-1]\n", "seeds: seeds must be between 0 and 4294967295, got [-1]"),
        ("seeds: '0,1'\n", "seeds: Input should be a valid list"),
    ],
)
def test_bad_seeds_are_one_line_errors(workdir, extra, message):
    with pytest.raises(SpecError, match=re.escape(message)) as caught:
        load_spec(spec_file(workdir, extra))
    assert "\n" not in str(caught.value)


def test_a_spec_with_seeds_reads_back_as_it_was_and_each_run_saves_one_seed(workdir):
    spec = load_spec(spec_file(workdir, "seeds: [3, 4]\n"))
    saved = yaml.safe_load(dump_spec(spec))
    assert saved["seeds"] == [3, 4] and "seed" not in saved
    (workdir / "again.yaml").write_text(dump_spec(spec))
    assert load_spec(workdir / "again.yaml").seeds == [3, 4]
    one = yaml.safe_load(dump_spec(seed_specs(spec)[1]))
    assert one["seed"] == 4 and "seeds" not in one


def test_config_id_ignores_name_and_seed_only(workdir):
    spec = load_spec(spec_file(workdir))
    same = [
        spec,
        spec.model_copy(update={"seed": 9}),
        spec.model_copy(update={"name": "other"}),
        spec.model_copy(update={"seeds": [0, 1]}),
    ]
    assert len({config_id(s) for s in same}) == 1
    assert len(config_id(spec)) == 12
    assert config_id(load_spec(spec_file(workdir), ["train.lr=3e-3"])) != config_id(spec)
    assert config_id(load_spec(spec_file(workdir), ["seq_len=12"])) != config_id(spec)


# --- running -----------------------------------------------------------------------------------


def test_run_seeds_runs_each_seed_in_its_own_folder(workdir):
    spec = load_spec(spec_file(workdir, "seeds: [0, 1]\n"))
    results = run_seeds(spec, workdir / "results")
    assert [r.status for r in results] == ["completed", "completed"]
    assert len({r.run_dir for r in results}) == 2
    metrics = [json.loads((r.run_dir / "metrics.json").read_text()) for r in results]
    assert [m["seed"] for m in metrics] == [0, 1]
    assert metrics[0]["config_id"] == metrics[1]["config_id"] == config_id(spec)
    assert metrics[0]["test"]["rmse"] != metrics[1]["test"]["rmse"]
    for r in results:  # each saved spec is a single run that reproduces itself
        assert load_spec(r.run_dir / "spec.yaml").seeds is None


def test_run_experiment_takes_a_single_listed_seed_and_refuses_several(workdir):
    result = run_experiment(load_spec(spec_file(workdir, "seeds: [5]\n")), workdir / "results")
    assert result.metrics["seed"] == 5
    assert yaml.safe_load((result.run_dir / "spec.yaml").read_text())["seed"] == 5
    with pytest.raises(ValueError, match="use run_seeds"):
        run_experiment(load_spec(spec_file(workdir, "seeds: 2\n")), workdir / "results")


def test_train_seeds_prints_each_seed_and_the_mean_and_std(workdir):
    result = invoke("train", "--config", spec_file(workdir), "--seeds", "3", "--quiet")
    assert result.exit_code == 0, result.output
    assert "one run per seed" in result.stdout
    assert "±" in result.stdout and "seeds beating persistence:" in result.stdout
    assert "/3" in result.stdout.split("seeds beating persistence:")[1]
    runs = sorted((workdir / "results" / "tiny").iterdir())
    assert len(runs) == 3
    assert sorted(json.loads((r / "metrics.json").read_text())["seed"] for r in runs) == [0, 1, 2]


def test_train_seeds_from_the_spec_and_as_json(workdir):
    result = invoke("train", "--config", spec_file(workdir, "seeds: [2, 7]\n"), "--json", "--quiet")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert [m["seed"] for m in metrics] == [2, 7]
    assert metrics[0]["config_id"] == metrics[1]["config_id"]


def test_train_seed_replaces_the_specs_seeds(workdir):
    result = invoke("train", "--config", spec_file(workdir, "seeds: [0, 1]\n"), "--seed", "4", "--json", "-q")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["seed"] == 4
    assert len(list((workdir / "results" / "tiny").iterdir())) == 1


def test_train_seed_and_seeds_together_is_an_error(workdir):
    result = invoke("train", "--config", spec_file(workdir), "--seed", "1", "--seeds", "2")
    assert result.exit_code == 2
    assert result.stderr == "error: give --seed S (one run) or --seeds N (seeds 0..N-1), not both\n"
    assert not (workdir / "results").exists()


def test_resume_with_seeds_is_refused(workdir):
    result = invoke("train", "--resume", workdir / "results" / "x" / "y", "--seeds", "2")
    assert result.exit_code == 2 and "--seed or --seeds" in result.stderr


def test_a_diverging_seed_does_not_stop_the_others_and_exits_1(workdir):
    result = invoke("train", "--config", spec_file(workdir, train=DIVERGES), "--seeds", "2", "--quiet")
    assert result.exit_code == 1, result.output
    assert "2 of 2 seeds diverged (seed 0, 1)" in result.stderr
    assert "Traceback" not in result.output
    assert len(list((workdir / "results" / "tiny").iterdir())) == 2
