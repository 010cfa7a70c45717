"""Exceptions that carry a user-facing message and the exit code the CLI returns.

Exit codes: 0 success; 1 the run itself failed (diverged, disk full, out of memory);
2 the user's input is wrong; 130 interrupted (Ctrl-C or SIGTERM; what was written is kept).
"""


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
