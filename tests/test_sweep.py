"""Sweeps: the grid, validation before anything runs, the sweep folder, resuming, failures, Ray."""

import json
import os
import signal
import sys
import time

import pytest
import yaml
from cli_helpers import RUN_FIGURES, invoke, no_pictures

from seqbench.errors import SpecError
from seqbench.sweeps.executors import land_files, run_remote_task
from seqbench.sweeps.sweep import grid_points, parse_grid, plan_sweep, run_name

TINY = """
name: tiny
dataset: {source: synthetic, name: sine, length: 300, seq_len: 10}
model: {name: mingru, hidden_size: 4}
train: {epochs: 2, batch_size: 16, patience: 0}
"""


@pytest.fixture
def workdir(workdir):
    (workdir / "tiny.yaml").write_text(TINY)
    return workdir


def sweep(*args):
    return invoke("sweep", "--config", "tiny.yaml", "--workers", "1", *args)


def run_folders(sweep_dir):
    return sorted(p.parent for p in sweep_dir.glob("*/*/spec.yaml"))


def statuses(sweep_dir):
    return sorted(json.loads((r / "metrics.json").read_text())["status"] for r in run_folders(sweep_dir))


# --- the grid ----------------------------------------------------------------------------------


def test_grid_keys_become_canonical_and_values_are_yaml_scalars():
    grid = parse_grid(
        [
            "lr=1e-3,3e-3",
            "model.hidden_size=32,64",
            "model.name=mingru,mamba",
            "dataset.split=[0.6, 0.2, 0.2],[0.7,0.15,0.15]",
            "model={name: mamba, n_layers: 2},{name: gru}",
        ]
    )
    assert grid == {
        "train.lr": [0.001, 0.003],
        "model.hidden_size": [32, 64],
        "model.name": ["mingru", "mamba"],
        "dataset.split": [[0.6, 0.2, 0.2], [0.7, 0.15, 0.15]],
        "model": [{"name": "mamba", "n_layers": 2}, {"name": "gru"}],
    }


def test_grid_points_are_the_cartesian_product_in_the_given_order():
    points = grid_points({"a": [1, 2], "b": ["x", "y", "z"]})
    assert len(points) == 6
    assert points[:4] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"}, {"a": 2, "b": "x"}]
    assert grid_points({}) == [{}]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("lr", "expected KEY=V1,V2"),
        ("model.hiden_size=1,2", "did you mean 'model.hidden_size'"),
        ("seed=1,2", "use --seeds N"),
        ("name=a,b", "--name"),
        ("lr=1e-3,,3e-3", "a value is empty"),
        ("lr=1e-3,0.001", "listed twice"),
    ],
)
def test_bad_grid_items(item, message):
    with pytest.raises(SpecError, match=message) as caught:
        parse_grid([item])
    assert "\n" not in str(caught.value)


def test_a_key_given_twice_is_an_error():
    with pytest.raises(SpecError, match="given twice"):
        parse_grid(["lr=1e-3", "train.lr=3e-3"])


def test_run_names_are_readable_and_valid():
    assert run_name("s", {"model.name": "mamba", "train.lr": 0.003}, 0) == "s_model-mamba_lr-0.003"
    assert run_name("s", {"model": {"name": "mamba", "n_layers": 2}}, 0) == "s_model-mamba-n_layers-2"
    assert run_name("s", {}, 0) == "s"
    assert run_name("s" * 60, {"model.hidden_size": 32}, 7) == "s" * 58 + "_p007"  # too long for a name


def test_every_point_is_validated_before_anything_is_written(workdir):
    message = r"--grid point model.hidden_size=0: model.hidden_size: .* equal to 1"
    with pytest.raises(SpecError, match=message):
        plan_sweep(workdir / "tiny.yaml", ["model.hidden_size=4,0"], results_dir=workdir / "results")
    result = sweep("--grid", "model.hidden_size=4,0", "--grid", "lr=1e-3,2e-3")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --grid point model.hidden_size=0 train.lr=0.001: ")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (workdir / "results").exists()


def test_bad_data_for_one_point_is_exit_2_with_nothing_written(workdir):
    result = sweep("--grid", "seq_len=10,500")
    assert result.exit_code == 2, result.output
    assert "--grid point dataset.seq_len=500" in result.stderr
    assert not (workdir / "results").exists()


# --- running -----------------------------------------------------------------------------------


@pytest.mark.draws_pictures
def test_sweep_writes_its_folder_and_a_second_run_skips_everything(workdir, monkeypatch):
    no_pictures(monkeypatch, builders=RUN_FIGURES)  # the sweep's own pictures are drawn and read
    result = sweep("--grid", "model.hidden_size=4,8", "--grid", "lr=1e-3,3e-3", "--seeds", "2")
    assert result.exit_code == 0, result.output
    sweep_dir = workdir / "results" / "sweeps" / "tiny"
    said = "4 grid points x 2 seeds = 8 runs; 0 done before (skipped), 0 to resume, 8 to start"
    assert said in result.stderr
    assert "[8/8] completed" in result.stderr
    assert f"sweep folder: {sweep_dir.relative_to(workdir)}" in result.stdout and "±" in result.stdout

    folders = run_folders(sweep_dir)
    assert len(folders) == 8 and statuses(sweep_dir) == ["completed"] * 8
    assert {f.parent.name for f in folders} == {
        "tiny_hidden_size-4_lr-0.001", "tiny_hidden_size-4_lr-0.003",
        "tiny_hidden_size-8_lr-0.001", "tiny_hidden_size-8_lr-0.003",
    }  # fmt: skip
    record = yaml.safe_load((sweep_dir / "sweep.yaml").read_text())
    assert record["grid"] == {"model.hidden_size": [4, 8], "train.lr": [0.001, 0.003]}
    assert record["seeds"] == [0, 1] and record["spec"]["model"]["name"] == "mingru"
    for key in ("model.hidden_size", "train.lr"):
        assert (sweep_dir / f"sweep_{key}.png").stat().st_size > 1000

    summary = (sweep_dir / "summary.md").read_text()
    table = [line for line in summary.splitlines() if line.startswith("| tiny_")]
    assert len(table) == 4 + 1  # one row per grid point, and the best (only) model
    assert all("| 2 |" in line and "±" in line and "2 completed" in line for line in table)
    assert "## Best per model" in summary and "did not complete" not in summary

    again = sweep("--grid", "model.hidden_size=4,8", "--grid", "lr=1e-3,3e-3", "--seeds", "2")
    assert again.exit_code == 0, again.output
    assert "8 done before (skipped), 0 to resume, 0 to start" in again.stderr
    assert run_folders(sweep_dir) == folders

    grouped = invoke("compare", sweep_dir, "--format", "json")
    assert grouped.exit_code == 0, grouped.output
    rows = json.loads(grouped.stdout)
    assert len(rows) == 4 and {row["n"] for row in rows} == {2}


def test_the_seeds_come_from_the_spec_and_a_grown_grid_runs_only_what_is_new(workdir):
    (workdir / "tiny.yaml").write_text(TINY + "seeds: [3, 4]\n")
    assert sweep("--grid", "model.hidden_size=4", "-q").exit_code == 0
    sweep_dir = workdir / "results" / "sweeps" / "tiny"
    seeds = sorted(json.loads((r / "metrics.json").read_text())["seed"] for r in run_folders(sweep_dir))
    assert seeds == [3, 4]
    grown = sweep("--grid", "model.hidden_size=4,6", "--seeds", "2")  # seeds 0, 1 now: all new
    assert grown.exit_code == 0, grown.output
    assert "2 grid points x 2 seeds = 4 runs; 0 done before" in grown.stderr
    assert len(run_folders(sweep_dir)) == 6


def test_another_base_spec_under_the_same_name_is_refused(workdir):
    assert sweep("--grid", "lr=1e-3", "-q").exit_code == 0
    result = sweep("--grid", "lr=1e-3", "--set", "train.epochs=3")
    assert result.exit_code == 2
    assert "holds a sweep of another spec (train.epochs: 2 there, 3 now)" in result.stderr
    assert sweep("--grid", "lr=1e-3", "--set", "train.epochs=3", "--name", "other", "-q").exit_code == 0
    assert (workdir / "results" / "sweeps" / "other" / "sweep.yaml").is_file()


def test_a_failed_and_a_diverged_run_do_not_stop_the_sweep(workdir, monkeypatch):
    import seqbench.run.experiment

    original = seqbench.run.experiment.run_experiment

    def crash_on_seed_1(spec, *args, **kwargs):
        if spec.seed == 1 and spec.train.lr < 1:
            raise RuntimeError("boom")
        return original(spec, *args, **kwargs)

    monkeypatch.setattr(seqbench.run.experiment, "run_experiment", crash_on_seed_1)
    args = ("--grid", "lr=1e-3,1000", "--set", "optimizer=sgd", "--set", "momentum=0", "--set", "grad_clip=0")
    result = sweep(*args, "--seeds", "2")
    assert result.exit_code == 1, result.output
    assert "failed      train.lr=0.001 seed=1" in result.stderr and "RuntimeError: boom" in result.stderr
    assert result.stderr.strip().endswith("3 of 4 runs did not complete (2 diverged, 1 failed); see "
                                          "results/sweeps/tiny/summary.md")  # fmt: skip
    sweep_dir = workdir / "results" / "sweeps" / "tiny"
    assert statuses(sweep_dir) == ["completed", "diverged", "diverged"]
    summary = (sweep_dir / "summary.md").read_text()
    assert "## Runs that did not complete" in summary
    assert "- train.lr=0.001 seed=1: failed: RuntimeError: boom" in summary

    monkeypatch.undo()
    monkeypatch.chdir(workdir)
    again = sweep(*args, "--seeds", "2")  # the failed run is run again; the diverged ones are not
    assert again.exit_code == 1
    assert "3 done before (skipped), 0 to resume, 1 to start" in again.stderr
    assert "2 of 4 runs did not complete (2 diverged)" in again.stderr
    assert statuses(sweep_dir) == ["completed", "completed", "diverged", "diverged"]


def send_sigterm_in_second_run(monkeypatch, step):
    """SIGTERM to this process at the `step`-th training step of the second run that trains."""
    from seqbench.models.numpy.learner import NumpyLearner

    original = NumpyLearner.train_step
    learners, steps = [], []

    def train_step(self, x, y):
        if id(self) not in learners:
            learners.append(id(self))
        if len(learners) == 2:
            steps.append(1)
            if len(steps) == step:
                os.kill(os.getpid(), signal.SIGTERM)
        return original(self, x, y)

    monkeypatch.setattr(NumpyLearner, "train_step", train_step)


def test_an_interrupted_sweep_resumes_its_interrupted_run_and_skips_the_completed(workdir, monkeypatch):
    send_sigterm_in_second_run(monkeypatch, step=20)  # in epoch 2 (13 batches an epoch)
    result = sweep("--grid", "model.hidden_size=4,6", "--seeds", "2")
    assert result.exit_code == 130, result.output
    assert "sweep stopped by SIGTERM: 3 of 4 runs not finished" in result.stderr
    assert "run the same command again to continue" in result.stderr
    sweep_dir = workdir / "results" / "sweeps" / "tiny"
    assert statuses(sweep_dir) == ["completed", "interrupted"]  # the other two never started
    (stopped,) = [r for r in run_folders(sweep_dir) if (r / "checkpoint.json").is_file()]
    assert (sweep_dir / "summary.md").is_file()

    monkeypatch.undo()
    monkeypatch.chdir(workdir)
    again = sweep("--grid", "model.hidden_size=4,6", "--seeds", "2")
    assert again.exit_code == 0, again.output
    assert "1 done before (skipped), 1 to resume, 2 to start" in again.stderr
    assert statuses(sweep_dir) == ["completed"] * 4 and stopped in run_folders(sweep_dir)
    assert "resume " in (stopped / "run.log").read_text()


def test_worker_processes_give_the_numbers_of_one_process(workdir):
    one = sweep("--grid", "model.hidden_size=4", "--seeds", "2", "--name", "one", "-q")
    two = invoke("sweep", "-c", "tiny.yaml", "--grid", "model.hidden_size=4", "--seeds", "2",
                 "--name", "two", "--workers", "2", "-q")  # fmt: skip
    assert one.exit_code == 0 and two.exit_code == 0, one.output + two.output

    def scores(name):
        folders = run_folders(workdir / "results" / "sweeps" / name)
        metrics = [json.loads((r / "metrics.json").read_text()) for r in folders]
        return sorted((m["seed"], m["test"]["rmse"], m["config_id"]) for m in metrics)

    assert scores("one") == scores("two")


# --- executors ---------------------------------------------------------------------------------


def test_a_killed_worker_process_fails_its_run_and_the_next_run_still_runs(workdir):
    import multiprocessing

    from seqbench.sweeps.executors import _Processes

    slow = plan_sweep(workdir / "tiny.yaml", [], ["train.epochs=5000"], name="slow").tasks[0]
    fast = plan_sweep(workdir / "tiny.yaml", [], name="fast").tasks[0]
    executor = _Processes(workdir / "results", workdir / "data", workers=1)
    try:
        handle = executor.submit(slow)
        deadline = time.monotonic() + 60
        while not multiprocessing.active_children() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        for child in multiprocessing.active_children():
            os.kill(child.pid, signal.SIGKILL)  # out of memory, or killed by hand
        assert executor.wait([handle], timeout=60) == [handle]
        outcome = executor.result(handle, slow)
        assert outcome.status == "failed" and outcome.message.startswith("worker process died")
        handle = executor.submit(fast)  # on a new pool
        assert executor.wait([handle], timeout=120) == [handle]
        assert executor.result(handle, fast).status == "completed"
    finally:
        executor.close()


def test_executor_errors(workdir):
    for args, message in [
        (("--executor", "slurm"), "unknown --executor 'slurm'; choose local or ray"),
        (("--address", "x:6379"), "--address is the address of a Ray cluster; use it with --executor ray"),
    ]:
        result = sweep("--grid", "lr=1e-3", *args)
        assert result.exit_code == 2 and result.stderr == f"error: {message}\n"
    assert not (workdir / "results").exists()


def test_executor_ray_without_ray_installed_is_one_clear_line(workdir, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = sweep("--grid", "lr=1e-3", "--executor", "ray")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --executor ray needs Ray, which is not installed; "
        'pip install -c constraints.txt "seqbench[ray]" (or use --executor local)\n'
    )
    assert not (workdir / "results").exists()


def test_a_run_made_where_the_sweep_folder_is_not_is_sent_back_and_landed(workdir):
    plan = plan_sweep(workdir / "tiny.yaml", ["model.hidden_size=4"], results_dir=workdir / "results")
    outcome = run_remote_task(plan.tasks[0], str(workdir / "elsewhere"), str(workdir / "data"))
    assert outcome.status == "completed" and outcome.files and "metrics.json" in outcome.files
    name, run_id = outcome.run_dir.split("/")
    assert name == "tiny_hidden_size-4"
    land_files(outcome, plan.sweep_dir)
    landed = plan.sweep_dir / name / run_id
    assert outcome.run_dir == str(landed) and outcome.files is None
    assert json.loads((landed / "metrics.json").read_text())["config_id"] == plan.tasks[0].config_id
    assert (landed / "model.npz").is_file() and not (workdir / "elsewhere").exists()


@pytest.fixture
def local_ray():
    ray = pytest.importorskip("ray")
    started = time.perf_counter()
    # address "local": a new local instance, never the cluster another test process may have running
    # (ray.init without an address joins the newest one on the machine, where num_cpus is refused)
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    print(f"ray.init: {time.perf_counter() - started:.1f} s")
    yield ray
    ray.shutdown()


def test_executor_ray_on_a_local_ray_lands_runs_in_the_same_folders(workdir, local_ray):
    result = invoke("sweep", "-c", "tiny.yaml", "--grid", "model.hidden_size=4", "--seeds", "2",
                    "--executor", "ray")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert local_ray.is_initialized()  # the sweep used the running instance and left it running
    sweep_dir = workdir / "results" / "sweeps" / "tiny"
    assert statuses(sweep_dir) == ["completed", "completed"]
    assert (sweep_dir / "summary.md").is_file() and (sweep_dir / "sweep_model.hidden_size.png").is_file()

    local = sweep("--grid", "model.hidden_size=4", "--seeds", "2", "--name", "local", "-q")
    assert local.exit_code == 0

    def scores(folder):
        metrics = [json.loads((r / "metrics.json").read_text()) for r in run_folders(folder)]
        return sorted((m["seed"], m["test"]["rmse"]) for m in metrics)

    assert scores(sweep_dir) == scores(workdir / "results" / "sweeps" / "local")
    again = invoke("sweep", "-c", "tiny.yaml", "--grid", "model.hidden_size=4", "--seeds", "2",
                   "--executor", "ray")  # fmt: skip
    assert again.exit_code == 0 and "2 done before (skipped)" in again.stderr


def test_the_aapl_sweep_of_the_readme_is_a_valid_plan():
    from pathlib import Path

    spec = Path(__file__).parent.parent / "experiments" / "aapl_sweep.yaml"
    grid = ["model.name=mingru,mamba", "model.hidden_size=32,64", "train.lr=1e-3,3e-3"]
    plan = plan_sweep(spec, grid, results_dir=Path("/nonexistent/results"))
    assert (len(plan.tasks), plan.seeds, plan.name) == (24, [0, 1, 2], "aapl-sweep")
    assert len({task.config_id for task in plan.tasks}) == 8
    first = plan.tasks[0].spec
    assert first["name"] == "aapl-sweep_model-mingru_hidden_size-32_lr-0.001"
    assert (first["dataset"]["ticker"], first["dataset"]["transform"], first["dataset"]["scaler"]) == (
        "AAPL", "log_return", "standard"
    )  # fmt: skip
    assert (first["model"]["n_layers"], first["model"]["mamba"], first["train"]["epochs"]) == (2, None, 10)
    mamba = next(task.spec for task in plan.tasks if task.spec["model"]["name"] == "mamba")
    assert mamba["model"]["mamba"]["state_size"] == 16  # the base spec's, in mamba's own section
