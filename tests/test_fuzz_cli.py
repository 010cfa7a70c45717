"""Hostile input through the whole CLI: mutated specs and mutated CSV files, hundreds of cases.

Every case runs `seqbench train` as a user would. Whatever the input, the command ends with
exit 0 (a complete run), 1 (the run failed, e.g. diverged) or 2 (bad input, one line), never
a traceback; and it writes nothing outside one new run folder under results/.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from cli_helpers import no_pictures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from seqbench.cli import app
from seqbench.spec import valid_keys

runner = CliRunner()
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same cases on every run: a failure here is reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# what keeps a case small, whatever the mutation did (they come last: the last --set wins)
BOUNDED = [
    "train.epochs=1",
    "model.hidden_size=2",
    "model.n_layers=1",
    "model.state_size=2",
    "model.expand=1",
    "model.dt_rank=1",
    "dataset.length=150",
]
BASE = {
    "name": "fuzz",
    "dataset": {"source": "synthetic", "name": "sine", "seq_len": 5},
    "model": {"name": "mingru"},
    "train": {"batch_size": 64},
}

texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.sampled_from([0, 1, -1, 2, 3, 7, 2**31, 2**64]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.5, 1e-300, 1e308, -1e-9]),
    texts,
    st.sampled_from(["../escape", "/etc/passwd", "auto", "torch", "cuda", "%Y", "2021-02-29", "h", ";"]),
    st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)),
    st.lists(st.one_of(st.floats(0, 1), texts, st.integers(-2, 3)), max_size=4),
    st.dictionaries(texts, st.integers(), max_size=2),
)
mutations = st.lists(
    st.tuples(st.sampled_from([*valid_keys(), "unknown_key", "dataset.bogus"]), values),
    min_size=1,
    max_size=3,
)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder; yfinance answers as it does offline (tests never touch the network)."""
    import yfinance

    no_pictures(monkeypatch, built=True)  # each figure is built from the mutated data, not drawn
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(yfinance, "download", lambda *args, **kwargs: pd.DataFrame())
    return tmp_path


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


def run_case(project: Path, spec_text: str, extra: list[str]) -> None:
    """Train `spec_text` and check the contract: exit 0/1/2, no traceback, only a new run folder."""
    spec = project / "s.yaml"
    spec.write_text(spec_text)
    before = files_under(project)
    args = ["train", "--config", str(spec), "--quiet", *extra]
    for item in BOUNDED:
        args += ["--set", item]
    result = runner.invoke(app, args)
    assert result.exit_code in (0, 1, 2), (result.exit_code, result.output, spec_text)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{type(result.exception).__name__}: {result.exception}\n{spec_text}")
    assert "Traceback" not in result.output, result.output
    new = files_under(project) - before
    folders = {Path(p).parent for p in new}
    assert len(folders) <= 1, sorted(new)
    for path in new:  # results/<name>/<run_id>/<file>
        parts = Path(path).parts
        assert len(parts) == 4 and parts[0] == "results", (path, spec_text)
    if result.exit_code == 2:
        errors = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
        assert 1 <= len(errors) <= 2, result.stderr
        assert not new, sorted(new)  # bad input writes nothing
    for path in new:  # cleaned up, so that the next case starts from the same folder
        (project / path).unlink()


def mutate(spec: dict, key: str, value) -> None:
    section, _, leaf = key.partition(".")
    if leaf:
        spec.setdefault(section, {})
        if isinstance(spec[section], dict):
            spec[section][leaf] = value
    else:
        spec[section] = value
    if key == "seeds" and isinstance(value, int) and not isinstance(value, bool) and value > 3:
        spec["seeds"] = 3  # each seed is a run: keep the case short


@SETTINGS
@given(mutations=mutations)
def test_mutated_specs_never_crash(project, mutations):
    spec = yaml.safe_load(yaml.safe_dump(BASE))
    for key, value in mutations:
        mutate(spec, key, value)
    try:
        text = yaml.safe_dump(spec, allow_unicode=True)
    except yaml.YAMLError:
        return
    run_case(project, text, [])


def price_frame(n: int = 160) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame(
        {
            "Date": pd.bdate_range("2015-01-01", periods=n).strftime("%Y-%m-%d"),
            "Close": close,
            "Open": close * 1.001,
        }
    )


cells = st.one_of(
    texts,
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "nan", "inf", "-inf", "1e39", "1e308", "3,14", "2021-02-29", "\x00", '"', "\n"]),
)
csv_edits = st.lists(
    st.one_of(
        st.tuples(st.just("cell"), st.integers(0, 159), st.sampled_from(["Date", "Close", "Open"]), cells),
        st.tuples(st.just("header"), st.sampled_from(["Date", "Close", "Open"]), texts),
        st.tuples(st.just("drop"), st.integers(0, 159), st.integers(1, 150)),
        st.tuples(st.just("shuffle"), st.integers(0, 2**31)),
        st.tuples(st.just("dates"), st.sampled_from(["%Y%m%d", "%d/%m/%Y", "%Y-%m-%d %H:%M:%S%z", "%s"])),
        st.tuples(st.just("sep"), st.sampled_from([";", "\t", "|"])),
        st.tuples(st.just("truncate"), st.integers(0, 4000)),
    ),
    min_size=1,
    max_size=4,
)


def write_mutated_csv(path: Path, edits) -> None:
    frame = price_frame().astype(object)
    sep, truncate = ",", None
    for edit in edits:
        kind = edit[0]
        if kind == "cell" and edit[1] < len(frame) and edit[2] in frame.columns:
            frame.loc[frame.index[edit[1]], edit[2]] = edit[3]
        elif kind == "header" and edit[1] in frame.columns:
            frame = frame.rename(columns={edit[1]: edit[2]})
        elif kind == "drop":
            frame = frame.drop(frame.index[edit[1] : edit[1] + edit[2]])
        elif kind == "shuffle":
            frame = frame.sample(frac=1, random_state=edit[1] % 2**31)
        elif kind == "dates" and "Date" in frame.columns:
            stamps = pd.to_datetime(frame["Date"], format="%Y-%m-%d", errors="coerce")
            if edit[1] == "%s":
                frame["Date"] = [str(int(s.timestamp())) if not pd.isna(s) else "" for s in stamps]
            else:
                fmt = edit[1].replace("%z", "-0500")
                frame["Date"] = [s.strftime(fmt) if not pd.isna(s) else "" for s in stamps]
        elif kind == "sep":
            sep = edit[1]
        elif kind == "truncate":
            truncate = edit[1]
    text = frame.to_csv(index=False, sep=sep)
    path.write_bytes(text.encode("utf-8", errors="surrogatepass")[:truncate])


@settings(SETTINGS, max_examples=150)
@given(
    edits=csv_edits,
    target=st.sampled_from(["Close", "Open"]),
    fill=st.sampled_from(["none", "ffill", "drop"]),
)
def test_mutated_csv_files_never_crash(project, edits, target, fill):
    write_mutated_csv(project / "p.csv", edits)
    spec = (
        "name: fuzz\n"
        f"dataset: {{source: csv, path: p.csv, target: {target}, seq_len: 5, fill: {fill}}}\n"
        "train: {batch_size: 64}\n"
    )
    run_case(project, spec, [])
