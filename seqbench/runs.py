"""Run folders: `results/<name>/<run_id>/`, created once, never overwritten.

A run id is the start time to the second plus a random suffix, and the folder is made with
`mkdir` (which fails if it exists), so two runs started in the same second, in two processes,
never share a folder. While a run (or a resume) writes into its folder it holds `.lock` there,
so that a second process cannot resume the same run at the same time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
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
    """Hold `run_dir/.lock` for the block; a lock held by a live process is a SeqbenchError."""
    lock = run_dir / LOCK_FILE
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = _lock_owner(lock)
            if pid is not None and _alive(pid):
                raise SeqbenchError(
                    f"{run_dir} is in use by another seqbench process (pid {pid}); wait for it to finish"
                ) from None
            lock.unlink(missing_ok=True)  # left behind by a process that was killed
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        break
    else:
        raise SeqbenchError(f"{run_dir} is in use by another seqbench process ({lock} exists)")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _lock_owner(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # on Windows, os.kill(pid, 0) would send Ctrl-C
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_status(run_dir: Path) -> str | None:
    """The `status` in the run's metrics.json, or None when it has none (yet)."""
    try:
        metrics: Any = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return metrics.get("status") if isinstance(metrics, dict) else None
