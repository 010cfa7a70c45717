"""A sweep on a two-node Ray cluster where one node cannot see the sweep folder."""

import json

import pytest
from typer.testing import CliRunner

from seqbench.cli import app
from seqbench.sweeps.executors import SEND_BACK_ENV

TINY = """
name: tiny
dataset: {source: synthetic, name: sine, length: 300, seq_len: 10}
model: {name: mingru, hidden_size: 4}
train: {epochs: 2, batch_size: 16, patience: 0}
"""
RUN_FILES = {"spec.yaml", "metrics.json", "history.csv", "model.npz", "predictions.csv", "run.log"}


@pytest.fixture
def two_node_cluster():
    """A head node (1 CPU) that sees the sweep folder and a node (1 CPU) whose workers act as if
    they could not (they run in a temporary folder and send the files back). Always shut down."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster()
    try:
        cluster.add_node(num_cpus=1, include_dashboard=False)
        cluster.add_node(num_cpus=1, env_vars={SEND_BACK_ENV: "1"})
        ray.init(address=cluster.address)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_every_run_lands_in_the_sweep_folder_from_both_nodes(tmp_path, monkeypatch, two_node_cluster):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY)
    args = ["sweep", "-c", "tiny.yaml", "--grid", "model.hidden_size=4,6", "--seeds", "2", "--set",
            "train.epochs=20", "--executor", "ray", "--address", two_node_cluster.address]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    sweep_dir = tmp_path / "results" / "sweeps" / "tiny"
    folders = sorted(p.parent for p in sweep_dir.glob("*/*/spec.yaml"))
    assert len(folders) == 4
    sent_back = 0
    for folder in folders:
        assert {p.name for p in folder.iterdir()} >= RUN_FILES, folder
        assert json.loads((folder / "metrics.json").read_text())["status"] == "completed"
        first = (folder / "run.log").read_text().splitlines()[0]  # "run <the folder it was made in>"
        sent_back += str(sweep_dir.resolve()) not in first
    assert 0 < sent_back < 4  # both nodes ran runs: some were sent back, some written in place
    seeds = sorted((f.parent.name, json.loads((f / "metrics.json").read_text())["seed"]) for f in folders)
    assert seeds == [("tiny_hidden_size-4", 0), ("tiny_hidden_size-4", 1),
                     ("tiny_hidden_size-6", 0), ("tiny_hidden_size-6", 1)]  # fmt: skip
