"""Runs the CI tests share: the example smoke spec trained once (the reference), and tiny LM runs."""

import pytest
from ci_helpers import EXAMPLES, only_run
from cli_helpers import invoke, make_text


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory):
    """examples/ci/smoke.yaml trained as it is (seed 0), and once with a planted regression (lr / 10)
    and once with another seed (noise): {"ref": run folder, "worse": ..., "seed1": ...}."""
    root = tmp_path_factory.mktemp("smoke_runs")
    variants = {"ref": [], "worse": ["--set", "train.lr=0.0003"], "seed1": ["--seed", "1"]}
    runs = {}
    for name, args in variants.items():
        result = invoke(
            "train", "-q", "-c", EXAMPLES / "smoke.yaml", "--name", name, "--results", root, *args
        )
        assert result.exit_code == (1 if name == "worse" else 0), result.output  # worse: skill > 0 fails
        runs[name] = only_run(root / name)
    return runs


@pytest.fixture(scope="session")
def lm_runs(tmp_path_factory):
    """A tiny LM trained well (`good`) and one with a planted regression (`worse`: lr / 100)."""
    root = tmp_path_factory.mktemp("lm_runs")
    (root / "plays.txt").write_bytes(make_text(40_000))
    (root / "lm.yaml").write_text(
        f"dataset: {{source: text, path: {root / 'plays.txt'}, seq_len: 32}}\n"
        "model: {name: gru, hidden_size: 16}\n"
        "train: {epochs: 2, batches_per_epoch: 30, batch_size: 16, lr: 0.01, threads: 1}\n"
    )
    runs = {}
    for name, lr in (("good", "0.01"), ("worse", "0.0001")):
        args = (
            "train",
            "-q",
            "-c",
            root / "lm.yaml",
            "--name",
            name,
            "--results",
            root,
            "--set",
            f"train.lr={lr}",
        )
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        runs[name] = only_run(root / name)
    runs["root"] = root
    return runs
