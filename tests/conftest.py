import functools
import os

# Under `pytest -n N` each worker gets its share of the cores for torch's and BLAS's threads: N
# workers each running one thread per core oversubscribe the machine, where torch's spinning
# threads crawl (set before numpy or torch load, and inherited by the processes the tests start).
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    THREADS = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, THREADS)

import numpy as np
import pandas as pd
import pytest
import typer.testing
from cli_helpers import no_pictures
from threadpoolctl import threadpool_limits

if "PYTEST_XDIST_WORKER_COUNT" in os.environ:  # in case a plugin loaded numpy's BLAS before
    threadpool_limits(int(THREADS))

# the click command of `seqbench` is built once per test process, as a real process builds it once
# (typer rebuilds it on every CliRunner.invoke: ~40 ms, a thousand times in the suite)
typer.testing._get_command = functools.cache(typer.testing._get_command)

# the test modules that read pictures back (or time them): only they pay for drawing; elsewhere a
# test that reads one is marked @pytest.mark.draws_pictures
DRAWS_PICTURES = {
    "test_plots", "test_report", "test_report_browser", "test_benchmarks", "test_forecast",
}  # fmt: skip


@pytest.fixture(autouse=True)
def pictures_only_where_read(request, monkeypatch):
    """Figures are built and drawn only in the tests that read pictures (drawing is about 1 s a
    figure); elsewhere a stand-in PNG marks where each goes."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    if module not in DRAWS_PICTURES and request.node.get_closest_marker("draws_pictures") is None:
        no_pictures(monkeypatch)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty folder, the current directory while the test runs (a module's own `workdir` may
    request this one and add its files)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def price_csv(tmp_path):
    """A small CSV of daily prices with a Date column, like a Yahoo download."""
    rng = np.random.default_rng(0)
    n = 400
    close = 50 * np.exp(np.cumsum(rng.normal(0.0005, 0.015, n)))
    frame = pd.DataFrame(
        {
            "Date": pd.bdate_range("2015-01-01", periods=n).strftime("%Y-%m-%d"),
            "Open": close * (1 + rng.normal(0, 0.003, n)),
            "High": close * 1.01,
            "Low": close * 0.99,
            "Close": close,
            "Volume": rng.integers(1_000_000, 5_000_000, n),
        }
    )
    path = tmp_path / "prices.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def broken_gru_backward(monkeypatch):
    """Scale the NumPy GRU's W_h gradient by 1.01: a backward pass that is slightly wrong."""
    from seqbench.models.numpy.gru import GRU

    original = GRU.layer_backward

    def broken(self, p, dh, cache):
        dx, grads = original(self, p, dh, cache)
        grads["W_h"] = grads["W_h"] * 1.01
        return dx, grads

    monkeypatch.setattr(GRU, "layer_backward", broken)


RAY_FIXTURES = {"local_ray", "two_node_cluster"}


def pytest_collection_modifyitems(items):
    """Under pytest-xdist (`--dist loadgroup`), every test that starts Ray runs in one worker."""
    for item in items:
        if RAY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("ray"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With SEQBENCH_NO_SKIP=1 (as .ci/run sets it), a skipped test is a failure: CI runs every test."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("SEQBENCH_NO_SKIP") == "1" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but SEQBENCH_NO_SKIP=1 forbids skips: {reason}"


EVIL = "<script>alert('{}')</script>"  # what a hostile run name, baseline or sample could hold


@pytest.fixture(scope="session")
def report_results(tmp_path_factory):
    """Real run folders for the report tests, under results/: two seeds of one GRU config (one
    group), a minGRU run inside a sweep folder (with sweep.yaml and a sweep plot), an LM run, and a
    copy of the LM run whose name, a baseline, samples.txt and spec.yaml hold a <script>."""
    import json
    import shutil

    from typer.testing import CliRunner

    from seqbench.artifacts.plots import plot_sweep
    from seqbench.cli import app

    root = tmp_path_factory.mktemp("report")
    results = root / "results"
    text = "".join(f"The king shall speak now, my lord {i % 7}.\n" for i in range(600))
    (root / "plays.txt").write_text(text)
    (root / "lm.yaml").write_text(
        f"name: tiny-lm\ntask: lm\ndataset: {{source: text, path: {root / 'plays.txt'}, seq_len: 16}}\n"
        "model: {name: mingru, hidden_size: 8}\ntrain: {epochs: 1, batches_per_epoch: 3, batch_size: 8}\n"
    )
    smoke = "experiments/smoke.yaml"
    sweep = results / "sweeps" / "tiny"
    for args in (
        ["-c", smoke, "--seeds", "2", "--name", "weather-gru"],
        ["-c", smoke, "--set", "model.name=mingru", "--name", "tiny_mingru", "--results", sweep],
        ["-c", root / "lm.yaml"],
    ):
        args = [*args, "--results", results] if "--results" not in args else args
        result = CliRunner().invoke(app, ["train", "-q", *map(str, args)])
        assert result.exit_code == 0, result.output
    (sweep / "sweep.yaml").write_text("grid:\n  model.name: [mingru]\nseeds: [0]\n")
    plot_sweep(
        "model.name", ["mingru"], {"test RMSE": [(2.0, 0.1)]}, [2.5], sweep / "sweep_model.name.png", "tiny"
    )
    (lm_run,) = (results / "tiny-lm").iterdir()
    evil = results / "evil" / lm_run.name
    shutil.copytree(lm_run, evil)
    metrics = json.loads((evil / "metrics.json").read_text())
    metrics.update(name=EVIL.format("name"), config_id="evil0000")
    metrics["baselines"][EVIL.format("baseline")] = {"bits_per_byte": 9.0}
    (evil / "metrics.json").write_text(json.dumps(metrics))
    (evil / "samples.txt").write_text(f"ROMEO: {EVIL.format('sample')}\n")
    (evil / "spec.yaml").write_text((lm_run / "spec.yaml").read_text() + f"# {EVIL.format('spec')}\n")
    return results
