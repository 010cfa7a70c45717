"""Every command through the CLI: exit codes, output, and nothing written on bad input."""

import json
import re

import pandas as pd
import pytest
from cli_helpers import invoke


def write_spec(path, text):
    path.write_text(text)
    return path


def assert_clean_failure(result, code, message, workdir):
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) <= 2
    assert not (workdir / "results").exists()


def test_version_and_help():
    assert invoke("--version").stdout.startswith("seqbench ")
    for command in ("train", "compare", "download", "datasets", "gradcheck"):
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "Example:" in result.stdout


def test_train_canonical_then_short_form_with_set_then_compare(workdir, price_csv):
    canonical = write_spec(
        workdir / "canon.yaml",
        f"""
name: canon
dataset: {{source: csv, path: {price_csv}, target: Close, seq_len: 10, transform: log_return}}
model: {{name: gru, hidden_size: 8}}
train: {{epochs: 2}}
""",
    )
    result = invoke("train", "--config", canonical, "--quiet")
    assert result.exit_code == 0, result.output
    assert "persistence" in result.stdout and "linear" in result.stdout

    short = write_spec(workdir / "short.yaml", "model: mingru\ndataset: sp500\nhidden_size: 4\nepochs: 1\n")
    result = invoke("train", "--config", short, "--set", "seq_len=5", "--set", "train.lr=3e-3", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["name"] == "short" and metrics["config"]["lr"] == pytest.approx(3e-3)
    assert metrics["config"]["seq_len"] == 5
    assert "epoch   1/1" in result.stderr  # progress goes to stderr

    result = invoke("compare", "--format", "csv")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert set(table["model"]) == {"gru", "mingru"}
    assert table["persistence_rmse"].notna().all() and table["skill"].notna().all()

    for fmt in ("md", "json", "table"):
        assert invoke("compare", "--format", fmt, "--sort", "-rmse").exit_code == 0
    result = invoke("compare", "--plot", workdir / "curves.png")
    assert result.exit_code == 0 and (workdir / "curves.png").stat().st_size > 0


def test_datasets_lists_builtins(workdir):
    result = invoke("datasets")
    assert result.exit_code == 0
    for name in ("sp500", "nasdaq", "seattle-weather"):
        assert name in result.stdout


def test_download_offline_fails_cleanly(workdir, monkeypatch):
    import yfinance

    def offline(*args, **kwargs):
        import sys

        print("1 Failed download: ['AAPL']: Could not resolve host", file=sys.stderr)
        return pd.DataFrame(columns=pd.MultiIndex.from_tuples([("Close", "AAPL")], names=["Price", "Ticker"]))

    monkeypatch.setattr(yfinance, "download", offline)
    result = invoke("download", "AAPL")
    assert result.exit_code == 2
    assert "could not download 'AAPL'" in result.stderr
    assert "Could not resolve host" not in result.output
    assert not (workdir / "data").exists() or not any((workdir / "data").iterdir())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dataset: sp500\nmodel: [unclosed\n", "malformed YAML"),
        ("dataset: sp500\nmodel: {hiden_size: 3}\n", "did you mean 'model.hidden_size'"),
        ("dataset: sp500\ntrain: {lr: -1}\n", "train.lr"),
        ("dataset: missing.csv\n", "missing.csv"),
        ("dataset: {source: builtin, name: sp500, target: Nope}\n", "Nope"),
    ],
)
def test_train_bad_input(workdir, text, message):
    spec = write_spec(workdir / "bad.yaml", text)
    assert_clean_failure(invoke("train", "--config", spec), 2, message, workdir)


def test_train_missing_spec_file(workdir):
    assert_clean_failure(
        invoke("train", "--config", workdir / "nope.yaml"), 2, "spec file not found", workdir
    )


def test_train_unknown_model_and_bad_override(workdir):
    spec = write_spec(workdir / "ok.yaml", "dataset: sp500\n")
    assert_clean_failure(
        invoke("train", "-c", spec, "--set", "model.name=lstm"), 2, "unknown model 'lstm'", workdir
    )
    assert_clean_failure(invoke("train", "-c", spec, "--set", "lrr=1"), 2, "did you mean 'train.lr'", workdir)


def test_debug_shows_the_traceback(workdir):
    spec = write_spec(workdir / "bad.yaml", "dataset: sp500\ntrain: {lr: -1}\n")
    result = invoke("--debug", "train", "--config", spec)
    assert result.exit_code == 2 and "Traceback" in result.stderr and "train.lr" in result.stderr


def test_compare_without_runs(workdir):
    result = invoke("compare")
    assert result.exit_code == 2 and "no runs found" in result.stderr


def test_compare_bad_format(workdir):
    result = invoke("compare", "--format", "xml")
    assert result.exit_code == 2 and "--format" in result.stderr


def all_parameter_names(name):
    from seqbench.checks.gradcheck import GRADCHECK_OPTIONS
    from seqbench.models.registry import model_class

    cls = model_class(name, "numpy")
    return list(cls(2, 2, hidden_size=4, n_layers=2, **GRADCHECK_OPTIONS.get(name, {})).params)


def test_gradcheck_passes_for_every_model_and_lists_every_parameter():
    from seqbench.models.registry import model_names

    result = invoke("gradcheck")
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.count("│") >= 6]
    for name in model_names():
        listed = {line.split("│")[2].strip() for line in rows if line.split("│")[1].strip() == name}
        assert listed == set(all_parameter_names(name)), name


def test_gradcheck_one_model():
    result = invoke("gradcheck", "--model", "gru", "--tolerance", "1e-6")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.count("│") >= 6]
    labels = [line.split("│")[1].strip() for line in rows]
    assert set(labels) == {"gru", "gru (segments)"}  # as it is, and with a forecast's segments, decoder, skip
    assert labels.count("gru") == len(all_parameter_names("gru"))
    # the segments check adds the decoder's positions and the skip path's weight and bias
    assert labels.count("gru (segments)") == len(all_parameter_names("gru")) + 3


def test_gradcheck_catches_a_broken_backward(broken_gru_backward):
    result = invoke("gradcheck", "--model", "gru")
    assert result.exit_code == 1
    # layers.0.W_h and layers.1.W_h, in the plain check and in the segments check (10 + 13 rows)
    assert "FAIL" in result.stdout and "gradient check failed: 4 of 23" in result.stderr
    assert "Traceback" not in result.output


def test_gradcheck_unknown_model():
    result = invoke("gradcheck", "--model", "lstm")
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: unknown model 'lstm'; choose one of: gru, ")
    assert "Traceback" not in result.output and not result.stdout


def test_sweep_help_has_an_example():
    result = invoke("sweep", "--help")
    assert result.exit_code == 0 and "Example:" in result.stdout and "--grid" in result.stdout


def test_sweep_without_config(workdir):
    assert_clean_failure(invoke("sweep", "--grid", "lr=1e-3"), 2, "missing --config SPEC", workdir)


def test_compare_groups_the_seeds_of_a_config_by_default(workdir):
    spec = write_spec(
        workdir / "tiny.yaml",
        "dataset: {source: synthetic, name: sine, length: 300, seq_len: 10}\n"
        "model: {name: mingru, hidden_size: 4}\ntrain: {epochs: 1}\n",
    )
    assert invoke("train", "--config", spec, "--seeds", "2", "--quiet").exit_code == 0
    assert invoke("train", "--config", spec, "--set", "hidden_size=6", "--quiet").exit_code == 0

    grouped = invoke("compare", "--format", "csv")  # a config with two runs: one row per config
    assert grouped.exit_code == 0, grouped.output
    table = pd.read_csv(pd.io.common.StringIO(grouped.stdout))
    assert sorted(table["n"]) == [1, 2] and sorted(table["runs"]) == [1, 2]
    assert {"rmse_std", "persistence_rmse", "linear_rmse", "skill", "beats_persistence"} <= set(table.columns)

    shown = invoke("compare", "--sort", "rmse")
    assert shown.exit_code == 0 and "±" in shown.stdout and "beats" in shown.stdout

    per_run = invoke("compare", "--no-group", "--format", "csv")
    assert len(pd.read_csv(pd.io.common.StringIO(per_run.stdout))) == 3

    one_run = invoke("compare", "results/tiny/*", "--format", "json")  # all three share the name
    assert one_run.exit_code == 0 and len(json.loads(one_run.stdout)) == 2
    forced = invoke("compare", sorted((workdir / "results" / "tiny").iterdir())[-1], "--group", "-f", "md")
    assert forced.exit_code == 0 and "| n |" in forced.stdout
    assert re.search(r"\| [01]/1 \|", forced.stdout)  # the one run beats persistence or not
