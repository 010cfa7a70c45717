"""Exceptions that carry a user-facing message and the exit code the CLI returns.

Exit codes: 0 success; 1 the run itself failed (diverged, disk full, out of memory);
2 the user's input is wrong; 130 interrupted (Ctrl-C or SIGTERM; what was written is kept).
"""

import reprlib


class SeqbenchError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""

    exit_code = 2
    label = "error"  # the word the CLI prints before the message


class SpecError(SeqbenchError):
    """The experiment spec is malformed, has an unknown key or a bad value."""


class DataError(SeqbenchError):
    """A dataset cannot be read, downloaded or windowed as asked."""


class RunFailed(SeqbenchError):
    """The run itself failed (diverged, disk full): exit code 1."""

    exit_code = 1


class RunInterrupted(SeqbenchError):
    """The run was stopped by Ctrl-C or SIGTERM; what it had is kept: exit code 130."""

    exit_code = 130
    label = "interrupted"


def error_line(exc: SeqbenchError | KeyboardInterrupt | MemoryError | OSError) -> tuple[str, int]:
    """The one line a command's failure is said in, and its exit code: a SeqbenchError's message and
    code; Ctrl-C outside a run, 130; running out of memory where no layer below said why, or a failed
    read or write (OSError) that no layer below turned into a message, 1."""
    if isinstance(exc, SeqbenchError):
        return f"{exc.label}: {exc}", exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", 130
    if isinstance(exc, MemoryError):
        return "error: ran out of memory; free memory or give the command less to hold", 1
    where = f"{exc.filename}: " if exc.filename else ""
    return f"error: {where}{exc.strerror or exc}", 1


def shown(text: object, limit: int = 100) -> str:
    """User text (a key, a column name, a value) for one line: control characters escaped, at most
    `limit` characters."""
    text = str(text)
    text = text if text.isprintable() else repr(text)[1:-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def brief(value: object, limit: int = 80) -> str:
    """`repr(value)` cut to `limit` characters, so that no message prints a huge value."""
    value = value.item() if hasattr(value, "item") and getattr(value, "ndim", None) == 0 else value
    short = reprlib.Repr()
    short.maxstring = short.maxother = limit
    short.maxlist = short.maxtuple = short.maxdict = 8
    short.maxlevel = 3
    text = short.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
