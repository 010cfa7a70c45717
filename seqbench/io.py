"""Atomic file writes: write to a temporary name in the same folder, then rename; files from anyone
read back with bounds (regular files of a limited size, checked before reading); and .npz files read
back without trusting them."""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from seqbench.errors import SeqbenchError, shown


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` if the block succeeds.

    On any exception the temporary file is removed and `path` is left untouched, so a reader
    sees either the old file or the complete new one, never a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        _fsync(tmp)  # the data is on disk before the name points at it
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno is not None and (exc.filename is None or str(exc.filename) == str(tmp)):
            exc.filename = str(path)  # name the file the user knows, not the temporary one
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDWR)  # (Windows cannot fsync a read-only handle)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileRefused(SeqbenchError):
    """A file that is not read: not a regular file (a pipe would block), or over its kind's size limit."""


@contextmanager
def regular_file_fd(path: str | Path) -> Iterator[tuple[int, int]]:
    """`(fd, size)` of the regular file at `path`, open for reading; a FileRefused for anything else.

    Opened without blocking (a FIFO's open waits for a writer) and checked with `fstat` on the open
    file, so nothing swapped in after a check is read. A missing file is `open`'s OSError.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a pipe, socket or device"
            raise FileRefused(f"{shown(path, 300)} is not a regular file ({kind})")
        yield fd, info.st_size
    finally:
        os.close(fd)


def read_regular(path: str | Path, limit: int, kind: str) -> bytes:
    """The bytes of the regular file at `path`, refused (FileRefused) when it holds over `limit`
    bytes, before any is read; `kind` names such a file in the message (e.g. "a metrics.json")."""
    with regular_file_fd(path) as (fd, size):
        if size > limit:
            raise FileRefused(f"{shown(path, 300)} is {size:,} bytes, over the limit of {limit:,} for {kind}")
        return _read_fd(fd, limit)


def read_head(path: str | Path, limit: int) -> tuple[bytes, int]:
    """The first `limit` bytes of the regular file at `path` (FileRefused for anything else), and
    its size."""
    with regular_file_fd(path) as (fd, size):
        return _read_fd(fd, limit), size


def _read_fd(fd: int, limit: int) -> bytes:
    """At most `limit` bytes (a file that grew since its size was checked is cut there)."""
    with open(fd, "rb", closefd=False) as f:
        return f.read(limit)


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file, read a MiB at a time (however big it is)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, dumps_strict(obj, indent=2) + "\n")


def strict_json(obj: Any) -> Any:
    """`obj` with every NaN or infinite float replaced by None, and NumPy values as Python ones."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: strict_json(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict_json(value) for value in obj]
    if isinstance(obj, np.generic | np.ndarray):
        return strict_json(obj.tolist())
    return obj


def loads_json(text: str | bytes) -> Any:
    """`json.loads` of a file from anyone: a document nested deeper than Python's recursion limit
    (``[[[[...`` thousands deep) is a JSONDecodeError like any other unreadable JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply to read", "", 0) from None


def dumps_strict(obj: Any, **kwargs: Any) -> str:
    """JSON that every parser reads: no NaN or Infinity tokens (`null` where a value is undefined)."""
    return json.dumps(strict_json(obj), allow_nan=False, default=_json_default, **kwargs)


def atomic_write_with(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_path)` and move the result onto `path` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)


def _json_default(obj: Any) -> Any:
    """Make NumPy scalars and arrays, dates and paths JSON-serialisable."""
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return str(obj)
