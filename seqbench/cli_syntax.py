"""How the command line words its own syntax and its errors: usage lines and argument names in
capitals (`RUN`, `TICKER`, `[RUNS]...`); click's usage errors (an unknown option, a missing
argument, a value out of range) as seqbench's one `error:` line with exit 2, like every other bad
input; and `handles_errors`, which says a command's failures in one line with their exit code.

`Command` is each command's class and `Group` the `seqbench` group's (`cli.py` names them).
"""

from __future__ import annotations

import contextlib
import functools
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

from seqbench.errors import SeqbenchError, error_line, shown

try:  # typer 0.26 and later carry their own copy of click, whose exceptions these are
    from typer._click import Context, HelpFormatter
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # an older typer on click itself
    from click import Context, HelpFormatter
    from click.exceptions import NoArgsIsHelpError, UsageError

# pydantic's error types (typer checks values with pydantic): a number outside min= / max=,
# and a value that is not a number, with the words for what it must be
OUT_OF_RANGE = {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}
NOT_A_NUMBER = {"int_parsing": "an integer", "int_from_float": "an integer", "float_parsing": "a number"}
state = {"debug": False}  # `seqbench --debug`: let exceptions and their tracebacks through

F = TypeVar("F", bound=Callable[..., Any])


def handles_errors(command: F) -> F:
    """Run a command with its failures said in one or two lines, and its exit code.

    The line and the exit code are `seqbench.errors.error_line`'s (2 bad input, 1 failed run, 130
    interrupted). Warnings are one `warning: ...` line each. `--debug` lets the exception and its
    traceback through (a SeqbenchError's traceback, then its line and exit code).
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                if not state["debug"]:
                    warnings.simplefilter("ignore", DeprecationWarning)
                    warnings.simplefilter("ignore", FutureWarning)
                return command(*args, **kwargs)
        except (SeqbenchError, KeyboardInterrupt, MemoryError, OSError) as exc:
            if state["debug"] and not isinstance(exc, (SeqbenchError, KeyboardInterrupt)):
                raise
            if state["debug"] and isinstance(exc, SeqbenchError):  # the traceback, then the same exit code
                traceback.print_exc()
            line, exit_code = error_line(exc)
            print(line, file=sys.stderr)
            raise typer.Exit(exit_code) from None

    return wrapper  # type: ignore[return-value]


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    print(f"warning: {message}", file=sys.stderr)


class Command(TyperCommand):
    """A command whose usage line and Arguments section name each argument in capitals.

    Typer prints a required argument as `{run}` and an optional one as `[runs]...`; click's own
    convention, kept here, is `RUN` and `[RUNS]...`. The same name is what an error about the
    argument quotes ("missing argument 'RUN'").
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.param_type_name == "argument" and param.metavar is None and param.name:
                param.metavar = param.name.upper()

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        path = " ".join(filter(None, [parent.command_path if parent else "seqbench", info_name]))
        with one_line_usage_errors(path):
            return super().make_context(info_name, args, parent=parent, **extra)

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                pieces.append(argument_usage(param))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((argument_usage(param, bracket=False), record[1]))
            else:
                options.append(record)
        for title, records in (("Arguments", arguments), ("Options", options)):
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


class Group(TyperGroup):
    """The `seqbench` group: a usage error anywhere (its own options, a command's name, a
    command's options and arguments) is one `error:` line on stderr, exit 2."""

    def make_context(self, *args: Any, **kwargs: Any) -> Context:
        with one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Context) -> Any:
        with one_line_usage_errors():
            return super().invoke(ctx)


def argument_usage(param: Any, bracket: bool = True) -> str:
    """`RUN` for a required argument, `[RUNS]...` for an optional list (`RUNS...` without brackets)."""
    name = param.metavar or (param.name or "").upper()
    if bracket and not param.required:
        name = f"[{name}]"
    return name + ("..." if param.nargs != 1 else "")


class OneLineUsageError(UsageError):
    """A usage error shown as seqbench shows bad input: `error: MESSAGE`, one line, exit 2."""

    def show(self, file: Any = None) -> None:
        print(f"error: {self.message}", file=file or sys.stderr)


@contextlib.contextmanager
def one_line_usage_errors(command: str = "seqbench") -> Iterator[None]:
    """Turn click's usage errors (usage, a hint and `Error: ...` on three lines) into one line.

    The help that a bare `seqbench` prints (no_args_is_help) is left as it is.
    """
    try:
        yield
    except (NoArgsIsHelpError, OneLineUsageError):
        raise
    except UsageError as exc:
        raise OneLineUsageError(usage_message(exc, command)) from exc


def usage_message(exc: UsageError, command: str = "seqbench") -> str:
    """The one line for a usage error: a bad value as a command's own checks word one; anything
    else (a missing argument, an unknown option) with where to read the right usage."""
    value = value_message(exc)
    if value is not None:
        return value
    message = exc.format_message().replace("\n", " ").rstrip(".")
    message = shown(message[:1].lower() + message[1:], 300)
    command = exc.ctx.command_path if exc.ctx is not None else command
    return f"{message}; see '{command} --help'"


def value_message(exc: UsageError) -> str | None:
    """`--seeds must be 1 or more, got 0`, `--length must be an integer, got abc`: a bad number
    in seqbench's words (as a command's own checks put it); None for any other error."""
    param = getattr(exc, "param", None)
    errors = getattr(exc.__cause__, "errors", None)
    if param is None or not callable(errors) or not errors():
        return None
    kind, given = errors()[0].get("type"), errors()[0].get("input")
    name = max(param.opts, key=len) if param.opts else str(param.name)
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if kind in NOT_A_NUMBER:
        return f"{name} must be {NOT_A_NUMBER[kind]}, got {shown(given)}"
    if kind not in OUT_OF_RANGE or (low is None and high is None):
        return None
    if low is not None and high is not None:
        bounds = f"between {low} and {high}"
    else:
        bounds = f"{low} or more" if low is not None else f"{high} or less"
    return f"{name} must be {bounds}, got {shown(given)}"
