"""The command line's own syntax: usage lines, each option's default, and usage errors as one line."""

import re

import pytest
import typer
from cli_helpers import one_line_error
from typer.testing import CliRunner

from seqbench.cli import app
from seqbench.cli_syntax import Context

runner = CliRunner()
COMMANDS = typer.main.get_command(app).commands


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], prog_name="seqbench")


def usage_line(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()[0]


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        ("sample", "Usage: seqbench sample [OPTIONS] RUN"),
        ("predict", "Usage: seqbench predict [OPTIONS] RUN"),
        ("reference", "Usage: seqbench reference [OPTIONS] RUN"),
        ("download", "Usage: seqbench download [OPTIONS] TICKER"),
        ("convert", "Usage: seqbench convert [OPTIONS] SOURCE"),
        ("compare", "Usage: seqbench compare [OPTIONS] [RUNS]..."),
        ("report", "Usage: seqbench report [OPTIONS] [RUNS]..."),
        ("train", "Usage: seqbench train [OPTIONS]"),
    ],
)
def test_usage_lines_name_arguments_in_capitals(command, usage):
    assert usage_line(command) == usage


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_help_prints_a_metavar_in_braces_or_lower_case(command):
    help_text = invoke(command, "--help").stdout
    assert "{" not in usage_line(command) and "<list[str]>" not in help_text
    arguments = help_text.partition("Arguments:\n")[2].partition("\n\n")[0]
    for line in arguments.splitlines():
        name = line.split()[0] if line.startswith("  ") and not line.startswith("   ") else None
        assert name is None or re.fullmatch(r"[A-Z_]+(\.\.\.)?", name), line


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_option_states_its_default_once(command):
    ctx = Context(COMMANDS[command], info_name=command)
    for param in COMMANDS[command].get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        help_text = " ".join(record[1].split())
        assert help_text.lower().count("default") <= 1, (command, record)
        assert not re.search(r"\[default: *[\];]", help_text), (command, record)


def test_sample_help_gives_the_prompt_and_top_k_defaults_once():
    help_text = " ".join(invoke("sample", "--help").stdout.split())
    assert "--prompt TEXT" not in help_text and "[default: (a newline)]" in help_text
    assert "1 to 256 (256: every byte). [default: 40]" in help_text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sample"], "error: missing argument 'RUN'; see 'seqbench sample --help'"),
        (["sample", "RUN", "--length", "0"], "error: --length must be between 1 and 1,000,000 bytes, got 0"),
        (["sample", "RUN", "--length", "abc"], "error: --length must be an integer, got abc"),
        (["sample", "RUN", "--seed", "-1"], "error: --seed must be 0 or more, got -1"),
        (["train", "--seeds", "0"], "error: --seeds must be 1 or more, got 0"),
        (["sweep", "--seeds", "0"], "error: --seeds must be 1 or more, got 0"),
        (["sweep", "--workers", "0"], "error: --workers must be 1 or more, got 0"),
        (["gradcheck", "--tolerance", "-1"], "error: --tolerance must be 0 or more, got -1"),
        (["compare", "--level", "x"], "error: --level must be a number, got x"),
        (
            ["compare", "--format"],
            "error: option '--format' requires an argument; see 'seqbench compare --help'",
        ),
        (["train", "--nope"], "error: no such option: --nope"),
        (["reference", "RUN"], "error: missing option '--output' / '-o'; see 'seqbench reference --help'"),
        (["download"], "error: missing argument 'TICKER'; see 'seqbench download --help'"),
        (["bogus"], "error: no such command 'bogus'; see 'seqbench --help'"),
        (["--nope"], "error: no such option: --nope; see 'seqbench --help'"),
        (["train", "--seeds", "x\x1b[31m"], "error: --seeds must be an integer, got x\\x1b[31m"),
    ],
)
def test_usage_errors_are_one_error_line_exit_2(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = invoke(*args)
    one_line_error(result, message)
    assert result.stderr.startswith(message) and result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_a_bare_seqbench_still_prints_its_help():
    result = invoke()
    assert "Usage: seqbench [OPTIONS] COMMAND [ARGS]..." in result.output and "error:" not in result.output
