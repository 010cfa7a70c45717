"""The bad-input matrix: every way a user's input can be wrong, through the CLI.

Each case exits 2 with one or two lines on stderr that say what is wrong and where (file,
key, column, row), shows no traceback (`--debug` raises it instead), and writes nothing:
no run folder, nothing under results/ or data/, no other file.
"""

import sys

import numpy as np
import pandas as pd
import pytest
from cli_helpers import invoke

N_ROWS = 100


@pytest.fixture
def workdir(workdir):
    """A project folder with CSV files that are broken in one way each."""
    rng = np.random.default_rng(0)
    close = 50 + np.cumsum(rng.normal(0, 1, N_ROWS))
    good = pd.DataFrame(
        {
            "Date": pd.bdate_range("2015-01-01", periods=N_ROWS).strftime("%Y-%m-%d"),
            "Close": close,
            "Open": close + rng.normal(0, 0.1, N_ROWS),
        }
    )
    good.to_csv("prices.csv", index=False)
    (workdir / "empty.csv").write_text("")
    (workdir / "header.csv").write_text("Date,Close\n")
    good.rename(columns={"Date": "when"}).assign(when=range(N_ROWS)).to_csv("nodate.csv", index=False)
    good.assign(Date=good["Date"].where(good.index != 5, "not-a-date")).to_csv("baddate.csv", index=False)
    text = good.astype({"Close": object})
    text.loc[7, "Close"] = "abc"
    text.to_csv("text.csv", index=False)
    good.assign(Flat=1.0).to_csv("flat.csv", index=False)
    gappy = good.copy()
    gappy.loc[[3, 8], "Close"] = np.nan
    gappy.loc[9, "Open"] = np.inf
    gappy.to_csv("gappy.csv", index=False)
    good.assign(Close=good["Close"].where(good.index != 4, np.inf)).to_csv("inf.csv", index=False)
    good.assign(Date=good["Date"].where(good.index != 10, good["Date"][9])).to_csv("dup.csv", index=False)
    return workdir


def spec(path, text):
    path.write_text(text)
    return path


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def offline_yfinance(monkeypatch, raises=False):
    """yfinance as it behaves offline or for an unknown ticker: an empty frame (or an exception)."""
    import yfinance

    def download(*args, **kwargs):
        if raises:
            raise ConnectionError("Could not resolve host: query1.finance.yahoo.com")
        return pd.DataFrame()

    monkeypatch.setattr(yfinance, "download", download)


def no_torch(monkeypatch):
    """As in a venv without torch: it is not found, and importing it (or our torch modules) fails."""
    from seqbench.models import registry

    monkeypatch.setattr(registry, "torch_installed", lambda: False)
    for name in [m for m in sys.modules if m == "torch" or m.startswith(("torch.", "seqbench.models.torch"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [BlockTorch(), *sys.meta_path])


class BlockTorch:
    """A meta path finder under which `import torch` (and our torch modules) raises ImportError."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith(("torch.", "seqbench.models.torch")):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


DS = "dataset: {source: csv, path: prices.csv"  # a spec prefix; each case closes the mapping
CASES = {
    # the spec file: YAML, keys, types, ranges
    "malformed YAML": (
        "dataset: sp500\nmodel: [unclosed\n",
        [],
        "s.yaml:3:1: malformed YAML: expected ',' or ']'",
    ),
    "unknown key": ("dataset: sp500\nmodel: {hiden_size: 3}\n", [], "did you mean 'model.hidden_size'?"),
    "unknown top-level key": (
        "dataset: sp500\nlrr: 0.1\n",
        [],
        "unknown key 'lrr'; did you mean 'train.lr'?",
    ),
    "unknown --set key": ("dataset: sp500\n", ["--set", "train.lrr=1"], "did you mean 'train.lr'?"),
    "--set without =": ("dataset: sp500\n", ["--set", "train.lr"], "--set 'train.lr': expected KEY=VALUE"),
    "wrong type": ("dataset: sp500\ntrain: {epochs: many}\n", [], "s.yaml: train.epochs: Input should be"),
    "negative lr": (
        "dataset: sp500\ntrain: {lr: -1}\n",
        [],
        "s.yaml: train.lr: Input should be greater than 0",
    ),
    "hidden_size 0": (
        "dataset: sp500\n",
        ["--set", "model.hidden_size=0"],
        "model.hidden_size: Input should be greater than or equal to 1 (got 0)",
    ),
    "split does not sum to 1": (
        "dataset: {source: builtin, name: sp500, split: [0.5, 0.2, 0.2]}\n",
        [],
        "dataset.split: split fractions must sum to 1, got [0.5, 0.2, 0.2] (sum 0.9)",
    ),
    "split fraction 0": (
        "dataset: {source: builtin, name: sp500, split: [0.7, 0.3, 0]}\n",
        [],
        "dataset.split: every split fraction must be > 0",
    ),
    "spec is a list": ("- a\n- b\n", [], "s.yaml: a spec must be a mapping of keys, got list"),
    "no dataset": ("model: gru\n", [], "s.yaml: dataset: is required"),
    "csv source without path": ("dataset: {source: csv}\n", [], "source 'csv' needs dataset.path"),
    "seq_len longer than the train split": (
        DS + ", seq_len: 80}\n",
        [],
        "prices.csv: the train split has 70 rows, too few for dataset.seq_len 80 and dataset.horizon 1",
    ),
    "horizon longer than the val split": (
        DS + ", horizon: 30}\n",
        [],
        "prices.csv: the val split has 15 rows, too few for dataset.horizon 30",
    ),
    # files
    "missing CSV": ("dataset: missing.csv\n", [], "CSV file not found: missing.csv"),
    "empty CSV": ("dataset: empty.csv\n", [], "empty.csv: the file is empty"),
    "CSV with a header only": ("dataset: header.csv\n", [], "header.csv: no data rows (only a header)"),
    "CSV without a date column": (
        "dataset: nodate.csv\n",
        [],
        "nodate.csv: no date column found (columns: when, Close, Open); name it with dataset.date_column",
    ),
    "unparseable date": (
        "dataset: baddate.csv\n",
        [],
        "baddate.csv: cannot parse 'not-a-date' as a date in column 'Date' (row 6, line 7 of the file)",
    ),
    "duplicate date": (
        "dataset: dup.csv\n",
        [],
        "dup.csv: duplicate date 2015-01-14 (row 11); each date must appear once",
    ),
    "non-numeric column": (
        "dataset: text.csv\n",
        [],
        "text.csv: column 'Close' is not numeric ('abc' on 2015-01-12)",
    ),
    "missing column": (
        DS + ", features: [Close, Volume]}\n",
        [],
        "dataset.features: column 'Volume' not found in prices.csv; available columns: Close, Open",
    ),
    "constant column": (
        "dataset: {source: csv, path: flat.csv, features: [Close, Flat], target: Close}\n",
        [],
        "flat.csv: column 'Flat' is constant in the training split (70 rows)",
    ),
    "NaN values": (
        "dataset: {source: csv, path: gappy.csv, features: [Close, Open], target: Close}\n",
        [],
        "gappy.csv: 3 rows have missing or infinite values (first: column 'Close' on 2015-01-06); "
        "set dataset.fill: ffill | drop",
    ),
    "inf values": (
        "dataset: inf.csv\n",
        [],
        "inf.csv: 1 row has missing or infinite values (first: column 'Close' on 2015-01-07)",
    ),
    "date_format with a bad directive": (
        DS + "}\n",
        ["--set", "dataset.date_format=%Q"],
        "s.yaml: dataset.date_format: '%Q' is not a strftime format ('Q' is a bad directive)",
    ),
    "date_format with a stray %": (
        DS + "}\n",
        ["--set", "dataset.date_format=%"],
        "s.yaml: dataset.date_format: '%' is not a strftime format (stray %)",
    ),
    "date_format ending in a stray %": (
        DS + ", date_format: '%Y-%m-%d %'}\n",
        [],
        "s.yaml: dataset.date_format: '%Y-%m-%d %' is not a strftime format (stray %)",
    ),
    "unknown fill policy": (
        DS + ", fill: zero}\n",
        [],
        "dataset.fill: Input should be 'none', 'ffill' or 'drop'",
    ),
    # a forecast model's input segments and head
    "segment not dividing seq_len": (
        "dataset: sp500\nseq_len: 20\n",
        ["--set", "model.segment=6"],
        "model.segment 6 must divide dataset.seq_len 20",
    ),
    "a huge segment (once minutes spent on the divisor the message suggests)": (
        "dataset: sp500\nseq_len: 20\n",
        ["--set", "model.segment=8378566852268545"],
        "model.segment 8378566852268545 must divide dataset.seq_len 20 (a window is read as seq_len / "
        "segment steps of segment rows each); e.g. segment 20",
    ),
    "segment decoder not dividing the horizon": (
        "dataset: sp500\nseq_len: 20\nhorizon: 3\n",
        ["--set", "model.segment=5", "--set", "model.decoder=segments"],
        "5 must divide dataset.horizon 3",
    ),
    "forecast options on a language model": (
        "dataset: notes.txt\n",
        ["--set", "model.dropout=0.1"],
        "are for a forecast; leave them out for task lm",
    ),
    "a forecast loss on a language model": (
        "dataset: notes.txt\n",
        ["--set", "train.loss=mae"],
        "train.loss is a forecast's (mse, mae, mse+mae); an LM trains on cross-entropy",
    ),
    "unknown forecast loss": (
        "dataset: sp500\n",
        ["--set", "train.loss=huber"],
        "train.loss: Input should be 'mse', 'mae' or 'mse+mae' (got 'huber')",
    ),
    # names
    "unknown model": ("dataset: sp500\nmodel: lstm\n", [], "unknown model 'lstm'; choose one of: gru, "),
    "unknown backend": (
        "dataset: sp500\nmodel: {backend: jax}\n",
        [],
        "model.backend: Input should be 'numpy' or 'torch' (got 'jax')",
    ),
    "unknown optimiser": (
        "dataset: sp500\ntrain: {optimizer: rmsprop}\n",
        [],
        "train.optimizer: Input should be 'sgd', 'adam' or 'adamw' (got 'rmsprop')",
    ),
    "unknown built-in dataset": (
        "dataset: {source: builtin, name: sp5000}\n",
        [],
        "unknown built-in dataset 'sp5000'; did you mean 'sp500'?",
    ),
    "backend torch without torch": (
        "dataset: sp500\nmodel: {backend: torch}\n",
        [],
        "model.backend 'torch' needs PyTorch, which is not installed: pip install 'seqbench[torch]'",
    ),
    "--backend torch without torch": (
        "dataset: sp500\n",
        ["--backend", "torch"],
        "model.backend 'torch' needs PyTorch, which is not installed",
    ),
    "unknown ticker (or offline)": (
        "dataset: ZZZZQ\n",
        [],
        "could not download 'ZZZZQ' from Yahoo Finance (network unreachable or unknown ticker); "
        "use a CSV (dataset.source: csv) or a built-in dataset",
    ),
    # untrusted input
    "!!python tag": (
        "dataset: !!python/object/apply:os.system ['touch pwned']\n",
        [],
        "s.yaml:1:10: YAML tag '!!python/object/apply:os.system' is not allowed",
    ),
    "run name with ../": ("name: ../escape\ndataset: sp500\n", [], "'../escape' is not a valid run name"),
    "--name with a separator": ("dataset: sp500\n", ["--name", "a/b"], "'a/b' is not a valid run name"),
    "--name absolute path": ("dataset: sp500\n", ["--name", "/tmp/x"], "'/tmp/x' is not a valid run name"),
    "ticker with ../": (
        "dataset: {source: yahoo, ticker: ../../etc/passwd}\n",
        [],
        "'../../etc/passwd' is not a valid ticker",
    ),
    "absolute ticker": ("dataset: {source: yahoo, ticker: /etc/passwd}\n", [], "is not a valid ticker"),
}


@pytest.mark.parametrize(("text", "args", "message"), CASES.values(), ids=CASES.keys())
def test_train_refuses_bad_input_cleanly(workdir, monkeypatch, text, args, message):
    offline_yfinance(monkeypatch)
    no_torch(monkeypatch)
    config = spec(workdir / "s.yaml", text)
    before = files_under(workdir)

    result = invoke("train", "--config", config, *args)

    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ")
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2
    assert "Traceback" not in result.output
    assert files_under(workdir) == before  # no run folder, nothing in results/ or data/, no stray file
    assert not (workdir / "pwned").exists()

    debug = invoke("--debug", "train", "--config", config, *args)
    assert debug.exit_code == 2, debug.output  # --debug adds the traceback, not another exit code
    assert "Traceback" in debug.stderr and message in debug.stderr
    assert files_under(workdir) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--set", "model.name=gru", "--set", "model.hidden_size=100000"],
            "model.hidden_size 100000 and model.n_layers 1 make a gru of 30,001,000,001 weights, 447.0 GiB "
            "to train in float32 (weights, gradients and the optimiser's state), more than this machine's "
            "16.0 GiB of memory; lower model.hidden_size or model.n_layers",
        ),
        (
            ["--set", "model.n_layers=1000000"],
            "model.hidden_size 128 and model.n_layers 1000000 make a mingru of 33,023,967,617 weights, "
            "492.1 GiB",
        ),
        (
            ["--set", "model.name=mamba", "--set", "model.n_layers=1000000"],
            "model.hidden_size 128 and model.n_layers 1000000 make a mamba of 116,608,000,513 weights",
        ),
    ],
)
def test_a_model_too_big_for_memory_is_refused_before_it_is_built(workdir, monkeypatch, args, message):
    from seqbench.training import learners

    monkeypatch.setattr(learners, "memory_bytes", lambda: 16 * 2**30)
    monkeypatch.setattr(learners, "_build", lambda *a: pytest.fail("built a model too big for memory"))
    config = spec(workdir / "s.yaml", DS + "}\n")
    before = files_under(workdir)
    result = invoke("train", "--config", config, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {message}") and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output and files_under(workdir) == before


def test_audit_refuses_a_model_too_big_for_memory(workdir, monkeypatch):
    from seqbench.checks import audit
    from seqbench.training import learners

    monkeypatch.setattr(learners, "memory_bytes", lambda: 16 * 2**30)
    monkeypatch.setattr(audit, "build_model", lambda *a: pytest.fail("built a model too big for memory"))
    config = spec(workdir / "s.yaml", DS + "}\n")
    result = invoke("audit", "-c", config, "--set", "model.name=gru", "--set", "model.hidden_size=100000")
    assert result.exit_code == 2, result.output
    assert "make a gru of 30,001,000,001 weights" in result.stderr and len(result.stderr.splitlines()) == 1


def test_running_out_of_memory_while_building_is_one_line_exit_1(workdir, monkeypatch):
    from seqbench.training import learners

    def build(*args):
        raise MemoryError

    monkeypatch.setattr(learners, "_build", build)
    config = spec(workdir / "s.yaml", DS + "}\n")
    before = files_under(workdir)
    result = invoke("train", "--config", config, "--set", "model.hidden_size=64")
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        "error: ran out of memory building the mingru model (321 weights); "
        "lower model.hidden_size or model.n_layers\n"
    )
    assert files_under(workdir) == before


def test_missing_spec_file(workdir):
    result = invoke("train", "--config", "nope.yaml")
    assert result.exit_code == 2 and result.stderr == "error: spec file not found: nope.yaml\n"
    assert not (workdir / "results").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "missing --config SPEC (or --resume RUN_DIR)"),
        (["--config", "s.yaml", "--resume", "results/x/1"], "do not combine it with --config"),
        (["--resume", "results/x/1", "--set", "lr=1"], "--resume continues a run exactly as it was started"),
    ],
)
def test_config_and_resume_are_exclusive(workdir, args, message):
    spec(workdir / "s.yaml", "dataset: sp500\n")
    result = invoke("train", *args)
    assert result.exit_code == 2 and message in result.stderr


@pytest.mark.parametrize("raises", [False, True], ids=["empty answer", "connection error"])
@pytest.mark.parametrize("ticker", ["ZZZZQ", "AAPL"])
def test_download_unknown_ticker_or_offline(workdir, monkeypatch, raises, ticker):
    offline_yfinance(monkeypatch, raises=raises)
    result = invoke("download", ticker)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: could not download '{ticker}' from Yahoo Finance (network unreachable or unknown ticker); "
        "use a CSV (dataset.source: csv) or a built-in dataset (seqbench datasets)\n"
    )
    assert "Traceback" not in result.output and not (workdir / "data").exists()


@pytest.mark.parametrize("ticker", ["../evil", "/etc/passwd", "a/b", "..", "C:\\x"])
def test_download_refuses_a_ticker_that_would_escape_data(workdir, monkeypatch, ticker):
    offline_yfinance(monkeypatch)
    before = files_under(workdir.parent)
    result = invoke("download", ticker)
    assert result.exit_code == 2 and "is not a valid ticker" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert files_under(workdir.parent) == before


def test_unsorted_dates_are_sorted_with_a_warning(workdir):
    frame = pd.read_csv("prices.csv")
    frame.iloc[::-1].to_csv("backwards.csv", index=False)
    config = spec(workdir / "s.yaml", "dataset: backwards.csv\nepochs: 1\nhidden_size: 4\n")
    result = invoke("train", "--config", config, "--quiet")
    assert result.exit_code == 0, result.output
    assert "warning: backwards.csv: dates are not in ascending order; sorted them" in result.stderr
    (run_dir,) = (workdir / "results" / "s").iterdir()
    assert "dates are not in ascending order" in (run_dir / "run.log").read_text()


@pytest.mark.parametrize("fill", ["ffill", "drop"])
def test_missing_values_with_a_fill_policy_train(workdir, fill):
    config = spec(
        workdir / "s.yaml",
        f"dataset: {{source: csv, path: gappy.csv, features: [Close, Open], target: Close, fill: {fill}}}\n"
        "epochs: 1\nhidden_size: 4\n",
    )
    result = invoke("train", "--config", config, "--json")
    assert result.exit_code == 0, result.output
    assert "3 rows with missing values" in result.stderr


def test_debug_prints_the_traceback():
    """Through a real process: --debug shows Python's traceback, without it there is none."""
    import subprocess

    command = [sys.executable, "-m", "seqbench", "train", "--config", "no-such-spec.yaml"]
    plain = subprocess.run(command, capture_output=True, text=True)
    debug = subprocess.run([*command[:3], "--debug", *command[3:]], capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert debug.returncode == 2 and "Traceback" in debug.stderr and "spec file not found" in debug.stderr
