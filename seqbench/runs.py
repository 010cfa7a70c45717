"""Run folders: `results/<name>/<run_id>/`, created once, never overwritten.

A run id is the start time to the second plus a random suffix, and the folder is made with
`mkdir` (which fails if it exists), so two runs started in the same second, in two processes,
never share a folder. While a run (or a resume) writes into its folder it holds `.lock` there
(an OS lock, released by the kernel when its process dies), so that a second process cannot resume
the same run at the same time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seqbench.errors import RunFailed, SeqbenchError
from seqbench.spec import NAME_PATTERN

LOCK_FILE = ".lock"


def new_run_id(now: dt.datetime | None = None) -> str:
    """Sortable by time, unique thanks to a random suffix: e.g. 20261122-153012-3f9a1c."""
    now = now or dt.datetime.now()
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def create_run_dir(results_dir: Path, name: str) -> tuple[Path, str]:
    """Make a new, empty run folder under `results_dir/name` and return it with its id.

    `mkdir(exist_ok=False)` makes creation atomic: two processes can never share a folder.
    """
    if not NAME_PATTERN.match(name) or ".." in name:
        raise SeqbenchError(f"'{name}' is not a valid run name (letters, digits, '.', '_', '-')")
    parent = Path(results_dir) / name
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            run_id = new_run_id()
            run_dir = parent / run_id
            try:
                run_dir.mkdir()
            except FileExistsError:
                continue
            return run_dir, run_id
    except OSError as exc:
        raise write_error(parent, exc) from exc
    raise RunFailed(f"could not create a new run folder under {parent}")


def write_error(where: Path, exc: OSError) -> RunFailed:
    """One line for a failed write (disk full, permission denied, read-only file system)."""
    reason = exc.strerror or str(exc)
    hint = {
        errno.ENOSPC: "free some disk space",
        errno.EACCES: "check the folder's permissions or use --results DIR",
        errno.EROFS: "use --results DIR on a writable disk",
    }.get(exc.errno or 0, "check the disk and the folder's permissions")
    target = exc.filename if exc.filename else where
    return RunFailed(f"cannot write to {target}: {reason}; {hint} (earlier runs are untouched)")


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an OS lock (flock) on `run_dir/.lock` for the block; one held elsewhere is a SeqbenchError.

    The kernel drops the lock when its holder exits, however it exits (kill -9 included), so a
    stale `.lock` file never blocks anyone; the file holds the holder's pid, for the message only.
    """
    lock = run_dir / LOCK_FILE
    for _ in range(10):
        fd = os.open(lock, os.O_CREAT | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            which = f" (pid {owner})" if owner.isdigit() else ""
            raise SeqbenchError(
                f"{run_dir} is in use by another seqbench process{which}; wait for it to finish"
            ) from None
        if _same_file(fd, lock):  # not a file that its last holder unlinked meanwhile
            break
        os.close(fd)
    else:
        raise SeqbenchError(f"{run_dir} is in use by another seqbench process ({lock} keeps changing)")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield
    finally:
        lock.unlink(missing_ok=True)  # while still holding it: a waiter then sees another file
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
    except FileNotFoundError:
        return False


def check_plain_files(run_dir: Path) -> None:
    """A run folder holds plain files only: a symbolic link in it (which a write would follow
    out of the folder) is a SeqbenchError."""
    links = sorted(entry.name for entry in run_dir.iterdir() if entry.is_symlink())
    if links:
        raise SeqbenchError(
            f"cannot write into {run_dir}: {', '.join(links)} is a symbolic link, and seqbench writes "
            "only plain files inside a run folder; replace it with the file itself"
        )


def append_line(path: Path, text: str) -> None:
    """Append to `path` without following a symbolic link (which would write outside the folder)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(text)


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """The run's metrics.json as a dict; {} when it has none (yet) or it is unreadable."""
    try:
        metrics: Any = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return metrics if isinstance(metrics, dict) else {}


def read_status(run_dir: Path) -> str | None:
    """The `status` in the run's metrics.json, or None when it has none (yet)."""
    status = read_metrics(run_dir).get("status")
    return status if isinstance(status, str) else None
