"""Inputs found by trying to break seqbench: each is one line and exit 2, or a correct status.

Each case runs through the CLI and checks the exit code, the message, that there is no
traceback, and that nothing was written where it should not be.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

import numpy as np
import pandas as pd
import pytest
from cli_helpers import invoke

from seqbench.spec import Spec, config_id

TINY = ["--set", "train.epochs=1", "--set", "model.hidden_size=4", "--set", "dataset.seq_len=5", "--quiet"]


@pytest.fixture
def workdir(workdir):
    (workdir / "s.yaml").write_text("dataset: {source: synthetic, name: sine, length: 120}\n")
    return workdir


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def assert_one_line(result, code, message, workdir=None, before=None):
    assert result.exit_code == code, result.output
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) <= 2, result.stderr
    if workdir is not None:
        assert files_under(workdir) == before


def prices(n=200, **changes):
    rng = np.random.default_rng(0)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    frame = pd.DataFrame(
        {"Date": pd.bdate_range("2015-01-01", periods=n).strftime("%Y-%m-%d"), "Close": close}
    )
    for row, value in changes.items():
        frame.loc[int(row.removeprefix("row")), "Close"] = value
    return frame


@pytest.mark.parametrize("command", ["train", "audit", "sweep"])
def test_a_date_that_does_not_exist(workdir, command):
    before = files_under(workdir)
    args = [command, "--config", "s.yaml", "--set", "dataset.start=2021-02-29"]
    if command == "sweep":
        args += ["--grid", "train.lr=1e-3,2e-3"]
    result = invoke(*args)
    assert_one_line(result, 2, "dataset.start: Input should be a valid date", workdir, before)
    assert "'2021-02-29'" in result.stderr


def test_a_date_that_does_not_exist_in_the_spec_file(workdir):
    (workdir / "s.yaml").write_text("dataset: {source: synthetic, name: sine}\nstart: 2021-02-29\n")
    assert_one_line(
        invoke("train", "--config", "s.yaml"), 2, "s.yaml: dataset.start: Input should be a valid date"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", "-5"], "seed: Input should be greater than or equal to 0 (got -5)"),
        (["--seeds", "99999999999999999999999"], "seeds: a number of seeds must be between 1 and 1000"),
        (["--set", "seed=99999999999999999999999"], "seed: Input should be less than or equal to 4294967295"),
        (["--set", "dataset.split=[.nan, 0.5, 0.5]"], "dataset.split.0: Input should be a finite number"),
        (["--set", "train.lr=.inf"], "train.lr: Input should be a finite number"),
        (["--set", "train.weight_decay=.inf"], "train.weight_decay: Input should be a finite number"),
        (["--set", "train.min_delta=.inf"], "train.min_delta: Input should be a finite number"),
        (["--set", "train.grad_clip=.nan"], "train.grad_clip: Input should be a finite number"),
        (["--set", "dataset.freq=fortnightly"], "'fortnightly' is not a pandas frequency"),
        (["--set", "dataset.sep=;;"], "dataset.sep: must be one character"),
    ],
)
def test_out_of_range_numbers_are_refused_before_anything_runs(workdir, args, message):
    before = files_under(workdir)
    assert_one_line(invoke("train", "--config", "s.yaml", *args), 2, message, workdir, before)


ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_a_yaml_alias_bomb_is_refused_without_expanding_it(workdir):
    (workdir / "bomb.yaml").write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB.encode()) < 500
    memory_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = invoke("train", "--config", "bomb.yaml")
    assert time.perf_counter() - start < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - memory_before < 200_000  # KiB
    assert_one_line(result, 2, "bomb.yaml: the spec expands to more than 10,000 values (YAML aliases?)")
    assert len(result.stderr) < 300  # no expanded value in the message


def test_a_yaml_alias_bomb_in_a_set_value_is_refused(workdir):
    bomb = "[" + ",".join(["[" + ",".join(["x"] * 9) + "]"] * 9) + "]"
    result = invoke("train", "--config", "s.yaml", "--set", f"dataset.features={bomb}")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(result.stderr) < 400


@pytest.mark.parametrize("where", ["file", "set"])
def test_thousands_of_nested_brackets(workdir, where):
    nested = "[" * 5000 + "]" * 5000
    if where == "file":
        (workdir / "deep.yaml").write_text(f"dataset: sp500\nmodel: {nested}\n")
        result = invoke("train", "--config", "deep.yaml")
        assert_one_line(result, 2, "deep.yaml: the spec nests deeper than")
    else:
        result = invoke("train", "--config", "s.yaml", "--set", f"model.name={nested}")
        assert_one_line(result, 2, "model.name: unknown model '[[[[")
        assert len(result.stderr) < 300


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (prices(row190=1e39), "column 'Close' on 2015-09-24 (test split) is "),
        (prices().assign(Close=lambda f: f["Close"] * 1e306), "column 'Close' holds 5.01e+307 on 2015-01-01"),
    ],
)
def test_values_that_would_overflow_are_refused(workdir, frame, message):
    frame.to_csv("p.csv", index=False)
    before = files_under(workdir)
    result = invoke("train", "--config", "s.yaml", "--set", "dataset=p.csv", *TINY)
    assert_one_line(result, 2, message, workdir, before)


def test_metrics_json_and_json_output_are_strict_json(workdir):
    """Persistence has no direction accuracy (NaN in memory): null on disk and in --json."""

    def strict(text):
        return json.loads(text, parse_constant=lambda token: pytest.fail(f"non-strict JSON token {token}"))

    result = invoke("train", "--config", "s.yaml", *TINY, "--json")
    assert result.exit_code == 0, result.output
    metrics = strict(result.stdout)
    assert metrics["baselines"]["persistence"]["direction_accuracy"] is None
    run_dir = next((workdir / "results").glob("s/*"))
    assert strict((run_dir / "metrics.json").read_text()) == metrics
    seeds = invoke("train", "--config", "s.yaml", *TINY, "--seeds", "2", "--json")
    assert [m["seed"] for m in strict(seeds.stdout)] == [0, 1]


def test_a_symlinked_run_log_is_not_followed_on_resume(workdir, tmp_path_factory):
    from seqbench.training.signals import StopRequest

    outside = tmp_path_factory.mktemp("outside") / "victim.txt"
    outside.write_text("keep me\n")
    import seqbench.run.experiment as experiment

    stop = StopRequest()
    stop.signal = "SIGINT"  # as if Ctrl-C came before the first batch: the run is resumable
    original = experiment.stop_on_signals

    class Stopped:
        def __enter__(self):
            return stop

        def __exit__(self, *exc):
            return False

    experiment.stop_on_signals = lambda: Stopped()
    try:
        result = invoke("train", "--config", "s.yaml", *TINY)
    finally:
        experiment.stop_on_signals = original
    assert result.exit_code == 130, result.output
    assert "no epoch finished, so there are no scores" in result.stdout  # no table of untrained weights
    assert "rmse" not in result.stdout
    run_dir = next((workdir / "results").glob("s/*"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["test"] is None
    (run_dir / "run.log").unlink()
    os.symlink(outside, run_dir / "run.log")
    resumed = invoke("train", "--resume", run_dir)
    assert_one_line(resumed, 2, "run.log is a symbolic link")
    assert outside.read_text() == "keep me\n"


def test_datasets_with_a_damaged_sidecar(workdir):
    data = workdir / "data"
    data.mkdir()
    prices().to_csv(data / "ZZZ.csv", index=False)
    (data / "ZZZ.json").write_text(json.dumps({"columns": None, "rows": "many", "first_date": 7}))
    result = invoke("datasets")
    assert result.exit_code == 0, result.output
    assert "ZZZ" in result.stdout


def test_an_out_of_memory_evaluation_hints_at_the_evaluation_batch(workdir, monkeypatch):
    from seqbench.models.numpy.learner import NumpyLearner

    def predict(self, x):
        raise MemoryError

    monkeypatch.setattr(NumpyLearner, "predict", predict)
    monkeypatch.setattr("seqbench.training.loop.mse", lambda learner, windows: 0.5)  # training itself fits
    result = invoke("train", "--config", "s.yaml", *TINY)
    assert_one_line(result, 1, "ran out of memory while evaluating")
    assert "lower train.eval_batch_size (e.g. --set train.eval_batch_size=128)" in result.stderr
    assert "train.batch_size does not matter here" in result.stderr
    run_dir = next((workdir / "results").glob("s/*"))
    assert "error: ran out of memory while evaluating" in (run_dir / "run.log").read_text()
    assert (run_dir / "model.npz").is_file()


def test_control_characters_in_a_column_name_are_escaped(workdir):
    frame = prices().rename(columns={"Close": "Cl\x1b[31mose"})
    frame.to_csv("c.csv", index=False)
    result = invoke("train", "--config", "s.yaml", "--set", "dataset=c.csv", "--set", "dataset.target=Close")
    assert_one_line(result, 2, "column 'Close' not found")
    assert "\x1b" not in result.stderr and "Cl\\x1b[31mose" in result.stderr


@pytest.mark.parametrize(
    ("key", "a", "b", "same"),
    [
        ("model.state_size", 4, 8, True),  # a GRU has no state size
        ("train.threads", 1, 2, True),
        ("train.momentum", 0.5, 0.9, True),  # Adam has no momentum
        ("train.eval_batch_size", 16, 1024, True),
        ("dataset.ticker", "AAPL", "MSFT", True),  # not the source of this spec
        ("train.lr", 1e-3, 2e-3, False),
        ("model.hidden_size", 4, 8, False),
    ],
)
def test_config_id_covers_exactly_the_keys_that_change_the_numbers(key, a, b, same):
    def spec(value):
        section, leaf = key.split(".")
        raw = {"dataset": {"source": "builtin", "name": "sp500"}, "model": {"name": "gru"}, "train": {}}
        raw[section][leaf] = value
        return Spec.model_validate(raw)

    assert (config_id(spec(a)) == config_id(spec(b))) is same


def test_config_id_of_a_mamba_covers_its_options():
    base = {"dataset": {"source": "builtin", "name": "sp500"}}
    ids = {
        config_id(Spec.model_validate({**base, "model": {"name": "mamba", "state_size": n}})) for n in (4, 8)
    }
    assert len(ids) == 2
    sgd = {
        config_id(Spec.model_validate({**base, "train": {"optimizer": "sgd", "momentum": m}}))
        for m in (0, 0.9)
    }
    assert len(sgd) == 2


def test_a_fifo_as_dataset_path_does_not_hang(workdir):
    os.mkfifo("pipe.csv")
    start = time.perf_counter()
    result = invoke(
        "train", "--config", "s.yaml", "--set", "dataset.source=csv", "--set", "dataset.path=pipe.csv"
    )
    assert time.perf_counter() - start < 10
    assert_one_line(result, 2, "pipe.csv is not a regular file")


def test_torch_missing_is_exit_2_for_every_command_that_builds_a_model(workdir, monkeypatch):
    sys.path.insert(0, os.path.dirname(__file__))
    from test_bad_input import no_torch

    no_torch(monkeypatch)
    result = invoke("train", "--config", "s.yaml", "--backend", "torch", *TINY)
    assert_one_line(result, 2, "model.backend 'torch' needs PyTorch, which is not installed")
