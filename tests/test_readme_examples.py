"""The README's examples run as written, offline, in a scratch copy of a fresh clone.

Every line of a ```bash or ```console block of README.md that starts with `seqbench ` (after a `$ `
prompt) runs in order, in-process (typer's CliRunner), in one scratch folder holding what a fresh
clone holds that the examples read (experiments/, examples/ and README.md), with the network cut off:
`seqbench download AAPL` gets a fake Yahoo Finance (yfinance.download replaced by seeded prices).
`RUN` in a path stands for the newest run folder under the path before it, as the README says.
The Quickstart's own `seqbench train` runs first, and prints the table the README shows.
"""

from __future__ import annotations

import glob
import re
import shlex
import shutil
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from seqbench.cli import app

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")

pytestmark = pytest.mark.xdist_group("readme")  # one worker: the tour reads the Quickstart's run


def readme_commands(text: str) -> list[str]:
    """Each line of a bash or console block that is a `seqbench` command, `$ ` prompt dropped."""
    commands, language = [], None
    for line in text.splitlines():
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence:
            language = fence.group(1) if language is None else None
            continue
        command = line.removeprefix("$ ") if language == "console" else line
        if language in ("bash", "console") and command.startswith("seqbench "):
            commands.append(command)
    return commands


def quickstart_command(text: str) -> str:
    """The `seqbench train ...` that ends the Quickstart's command (a)."""
    (line,) = [line for line in text.splitlines() if line.startswith("python3 ") and "seqbench " in line]
    return line[line.index("seqbench ") :]


def quickstart_table(text: str) -> list[str]:
    """The block the README says the Quickstart prints."""
    after = text[text.index("The quickstart prints") :]
    block = after[after.index("```\n") + 4 :]
    return block[: block.index("```")].splitlines()


def argv(command: str, cwd: Path) -> list[str]:
    """The command's arguments as bash would pass them: quotes, comments, globs; `RUN` expanded."""
    args = []
    for word in shlex.split(command, comments=True)[1:]:
        if "/RUN" in word:
            parent, _, rest = word.partition("/RUN")
            runs = sorted(path.name for path in (cwd / parent).iterdir() if RUN_ID.fullmatch(path.name))
            assert runs, f"{command}: no run folder under {parent}"
            word = f"{parent}/{runs[-1]}{rest}"
        matches = sorted(glob.glob(word, root_dir=cwd)) if any(c in word for c in "*?[") else []
        args += matches or [word]
    return args


def fake_yfinance_download(tickers, start=None, end=None, **kwargs):
    """What yfinance.download returns: seeded daily prices on business days from start to end (exclusive)."""
    last = pd.Timestamp(end or "2024-01-01") - pd.Timedelta(days=1)
    index = pd.bdate_range(start or "2010-01-01", last, name="Date")
    rng = np.random.default_rng(0)
    close = 30 * np.exp(np.cumsum(rng.normal(0.0005, 0.015, len(index))))
    fields = {
        "Open": close * (1 + rng.normal(0, 0.003, len(index))),
        "High": close * 1.01,
        "Low": close * 0.99,
        "Close": close,
        "Volume": rng.integers(1_000_000, 5_000_000, len(index)).astype(float),
    }
    columns = pd.MultiIndex.from_tuples([(field, tickers) for field in fields], names=["Price", "Ticker"])
    return pd.DataFrame(np.column_stack(list(fields.values())), index=index, columns=columns)


def no_network(*args, **kwargs):
    raise OSError("the README's examples must run offline")


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A scratch folder with what the examples read from a fresh clone, after the Quickstart ran there."""
    folder = tmp_path_factory.mktemp("clone")
    shutil.copytree(REPO / "experiments", folder / "experiments")
    shutil.copytree(REPO / "examples", folder / "examples")
    shutil.copy(README, folder / "README.md")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setattr(socket.socket, "connect", no_network)
        result = CliRunner().invoke(app, argv(quickstart_command(README.read_text()), folder))
    assert result.exit_code == 0, result.output
    return folder, result


def test_the_quickstart_prints_the_table_the_readme_shows(clone):
    _, result = clone
    printed = [RUN_ID.sub("RUN_ID", line.rstrip()) for line in result.stdout.strip("\n").splitlines()]
    shown = [RUN_ID.sub("RUN_ID", line.rstrip()) for line in quickstart_table(README.read_text())]
    assert printed == shown


def test_the_tour_runs_as_written_offline(clone):
    folder, _ = clone
    commands = readme_commands(README.read_text())
    failures = []
    with pytest.MonkeyPatch.context() as patch:
        import yfinance

        patch.chdir(folder)
        patch.setattr(socket.socket, "connect", no_network)
        patch.setattr(yfinance, "download", fake_yfinance_download)
        for command in commands:
            result = CliRunner().invoke(app, argv(command, folder))
            if result.exit_code != 0:
                failures.append(f"{command}\n  exit {result.exit_code}: {result.output[-1500:]}")
    assert failures == []
    assert (folder / "data" / "AAPL.csv").is_file()  # the download example went through the fake


def test_the_tour_has_an_example_of_every_command():
    commands = {command.split()[1] for command in readme_commands(README.read_text())}
    assert set(typer.main.get_command(app).commands) <= commands


def test_readme_commands_takes_bash_and_console_blocks_only():
    text = (
        "```bash\nseqbench datasets\n# seqbench not this\n```\n"
        "```console\n$ seqbench compare --format md\n| run | out |\n```\n"
        "```\nseqbench not-a-command-block\n```\n"
        "```yaml\nseqbench: no\n```\n"
        "seqbench outside any block\n"
    )
    assert readme_commands(text) == ["seqbench datasets", "seqbench compare --format md"]


def test_argv_expands_run_to_the_newest_run_folder(tmp_path):
    for run_id in ("20261205-094130-6b6fb3", "20261205-094141-7efe39"):
        (tmp_path / "results" / "quickstart" / run_id).mkdir(parents=True)
    command = 'seqbench predict results/quickstart/RUN -o "a b.csv"  # a comment'
    newest = "results/quickstart/20261205-094141-7efe39"
    assert argv(command, tmp_path) == ["predict", newest, "-o", "a b.csv"]
