"""Exceptions that carry a user-facing message and the exit code the CLI returns."""


class SeqbenchError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""

    exit_code = 2


class SpecError(SeqbenchError):
    """The experiment spec is malformed, has an unknown key or a bad value."""


class DataError(SeqbenchError):
    """A dataset cannot be read, downloaded or windowed as asked."""


class RunFailed(SeqbenchError):
    """The run itself failed (diverged, disk full): exit code 1."""

    exit_code = 1
