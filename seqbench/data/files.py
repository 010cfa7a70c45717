"""The one check every data file passes before it is opened: it exists, and it is a regular file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from seqbench.errors import DataError


def regular_file(path: Path, kind: str, hint: str = "") -> os.stat_result:
    """`os.stat` of the regular file at `path`, checked before it is opened (a FIFO would block).

    `kind` names the file in messages ("CSV file", "text file"); `hint` ends the not-found one.
    A relative path that does not exist is explained in full.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        where = ""
        if not path.is_absolute():
            where = (
                f" (looked for {Path.cwd() / path}; a relative dataset.path is taken from the "
                "current directory)"
            )
        raise DataError(f"{kind} not found: {path}{where}{hint}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"{path} is a directory, not a {kind}")
    if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
        raise DataError(f"{path} is not a regular file (a pipe, socket or device); save the data to a file")
    return info
