"""Run folders: `results/<name>/<run_id>/`, created once, never overwritten.

A run id is the start time to the second plus a random suffix, and the folder is made with
`mkdir` (which fails if it exists), so two runs started in the same second, in two processes,
never share a folder. While a run (or a resume) writes into its folder it holds `.lock` there
(an OS lock, released by the kernel when its process dies), so that a second process cannot resume
the same run at the same time.

`find_runs` and `load_run(s)` find run folders under targets (folders, globs, links) and read
their metrics.json, for compare and sweeps.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import glob
import json
import os
import secrets
import stat
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqbench.errors import RunFailed, SeqbenchError, shown
from seqbench.io import FileRefused, loads_json, read_regular
from seqbench.spec import NAME_PATTERN

METRICS_FILE = "metrics.json"
MAX_METRICS_BYTES = 16 * 2**20  # a run's metrics.json is a few KB; a larger file is not one
QUICKSTART = "seqbench train --config experiments/quickstart.yaml"

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


def is_run_folder(folder: Path) -> bool:
    """Whether `folder` is a run folder: it holds metrics.json, or spec.yaml and run.log (a run that
    has not finished, or was killed)."""
    folder = Path(folder)
    return (folder / METRICS_FILE).is_file() or (
        (folder / "spec.yaml").is_file() and (folder / "run.log").is_file()
    )


def check_output(path: Path, force: bool, example: str) -> None:
    """`path` is a file that `-o` may write (convert, predict, report), or a SeqbenchError says why not.

    Never inside a run folder, at any depth (its files are the run's record: a finished run folder is
    never written again), whether by its own name or through a link; never onto a folder; and onto an
    existing file only with `force`. `example` is a file name for the message (e.g. forecast.csv).
    """
    path = Path(path)
    lexical = Path(os.path.abspath(path))  # a link named inside a run folder is replaced there
    try:
        real = path.resolve()  # a link (or a folder link above it) into a run folder writes there
    except (OSError, RuntimeError):  # a loop of links
        real = lexical
    for where in (real, lexical):
        run_dir = next((folder for folder in where.parents if is_run_folder(folder)), None)
        if run_dir is not None:
            raise SeqbenchError(
                f"-o {shown(path, 200)} is inside the run folder {shown(run_dir, 200)}, and seqbench never "
                f"writes into a run folder; give -o a path outside it, e.g. -o {example}"
            )
    if path.is_dir():
        raise SeqbenchError(f"{shown(path, 200)} is a folder; give -o a file name, e.g. -o {path / example}")
    if (path.exists() or path.is_symlink()) and not force:
        raise SeqbenchError(f"{shown(path, 200)} exists; add --force to replace it, or give -o another file")


def append_line(path: Path, text: str) -> None:
    """Append to `path` without following a symbolic link (which would write outside the folder)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(text)


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """The run's metrics.json as a dict; {} when it has none (yet) or it is unreadable; a FileRefused
    when it is not a regular file or is too large to be one."""
    try:
        metrics = _metrics_json(Path(run_dir))
    except (OSError, ValueError):
        return {}
    return metrics if isinstance(metrics, dict) else {}


def _metrics_json(run_dir: Path) -> Any:
    """The parsed metrics.json of `run_dir`, read only if it is a regular file of bounded size."""
    data = read_regular(run_dir / METRICS_FILE, MAX_METRICS_BYTES, f"a {METRICS_FILE}")
    return loads_json(data.decode("utf-8"))


def read_status(run_dir: Path) -> str | None:
    """The `status` in the run's metrics.json, or None when it has none (yet)."""
    status = read_metrics(run_dir).get("status")
    return status if isinstance(status, str) else None


# --- finding and reading run folders (compare, sweeps) ---------------------------------------------


def find_runs(targets: list[str], results_dir: Path = Path("results")) -> list[Path]:
    """Run folders named by `targets` (run folders, folders above them, or globs), sorted by run_id.

    A relative target that matches nothing as given is also tried under `results_dir`, so that
    `seqbench compare aapl-mingru` and `seqbench compare 'aapl-*'` work from the project root.
    No targets means every run under `results_dir`. Links to run folders are followed; a link to
    a folder above it (`/`, a loop) is not. Folders left out are a warning each: run folders
    without metrics.json (a killed run, or one still running), links not followed.
    """
    results_dir = Path(results_dir)
    found = Found()
    if not targets:
        found = _runs_under(results_dir)
        if not found.runs:
            _warn_skipped(found)
            raise SeqbenchError(f"no runs found in {results_dir}/; make one with `{QUICKSTART}`")
    for target in targets:
        found_here = _runs_for_target(target, results_dir)
        found.extend(found_here)
        if not found_here.runs:
            _warn_skipped(found)
            raise SeqbenchError(
                f"no runs found for '{shown(target)}' (looked for {METRICS_FILE} there and under "
                f"{results_dir}/); run `seqbench compare` with no arguments to list every run"
            )
    _warn_skipped(found)
    return _sorted_unique(found.runs)


@dataclass
class Found:
    """What a search for run folders found: runs, and the folders it left out, with why."""

    runs: list[Path] = field(default_factory=list)
    unfinished: list[Path] = field(default_factory=list)  # a spec.yaml but no metrics.json
    not_followed: list[Path] = field(default_factory=list)  # links to a folder above them

    def extend(self, other: Found) -> None:
        self.runs += other.runs
        self.unfinished += other.unfinished
        self.not_followed += other.not_followed


def _warn_skipped(found: Found) -> None:
    unfinished = _sorted_unique(found.unfinished)
    if unfinished:
        listed = ", ".join(shown(path, 300) for path in unfinished[:3]) + (
            ", ..." if len(unfinished) > 3 else ""
        )
        warnings.warn(
            f"skipped {len(unfinished)} run folder(s) without {METRICS_FILE} (killed, or still running): "
            f"{listed}; `seqbench train --resume FOLDER` finishes one that was stopped",
            stacklevel=3,
        )
    for link in _sorted_unique(found.not_followed):
        target = shown(os.path.realpath(link), 300)
        warnings.warn(
            f"not following {shown(link, 300)}: it links to {target}, a folder above it", stacklevel=3
        )


def _runs_for_target(target: str, results_dir: Path) -> Found:
    """Runs for one target, trying it as given first, then relative to `results_dir`."""
    candidates = [target]
    if not Path(target).is_absolute():
        candidates.append(str(results_dir / target))
    found = Found()
    for candidate in candidates:
        matches = glob.glob(candidate, recursive=True) if _is_glob(candidate) else [candidate]
        found = Found()
        for match in matches:
            found.extend(_runs_under(Path(match)))
        if found.runs:
            return found
    return found


def _is_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")


def _runs_under(path: Path) -> Found:
    """`path` itself if it is a run folder (or its metrics.json), else every run folder below it.

    The walk follows links to folders, each folder once, but not a link to one of its own
    ancestors (a link to `/` or a loop), and does not look inside run folders.
    """
    found = Found()
    if path.is_file():
        found.runs += [path.parent] if path.name == METRICS_FILE else []
        return found
    seen: set[tuple[int, int]] = set()
    stack = [path]
    while stack:
        folder = stack.pop()
        try:
            info = folder.stat()
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        if (folder / METRICS_FILE).is_file():
            found.runs.append(folder)
            continue
        if is_run_folder(folder):  # (no metrics.json: a spec.yaml and run.log)
            found.unfinished.append(folder)
            continue
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name, reverse=True)
        except OSError:
            continue
        real = Path(os.path.realpath(folder))
        for entry in entries:
            child = folder / entry.name
            if entry.is_symlink():
                target = Path(os.path.realpath(child))
                if target == real or target in real.parents:
                    if target.is_dir():
                        found.not_followed.append(child)
                    continue
            stack.append(child)
    return found


def _sorted_unique(runs: Iterable[Path]) -> list[Path]:
    """De-duplicate by resolved path; sort by run_id (the folder name), then by full path."""
    unique: dict[Path, Path] = {}
    for run in runs:
        unique.setdefault(run.resolve(), run)
    return sorted(unique.values(), key=lambda run: (run.name, str(run)))


# --- loading -----------------------------------------------------------------------------------


def load_run(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's metrics.json as a dict, plus `run_dir` (and `test_model_space` from an older run's
    `test_scaled`); None (with a warning) if unreadable."""
    run_dir = Path(run_dir)
    try:
        metrics = _metrics_json(run_dir)
    except FileRefused as err:
        warnings.warn(f"skipping {run_dir}: {err}", stacklevel=2)
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        warnings.warn(f"skipping {run_dir}: cannot read {METRICS_FILE} ({err})", stacklevel=2)
        return None
    if not isinstance(metrics, dict):
        warnings.warn(f"skipping {run_dir}: {METRICS_FILE} is not a JSON object", stacklevel=2)
        return None
    metrics.setdefault("run_id", run_dir.name)
    metrics.setdefault("name", run_dir.parent.name)
    if "test_scaled" in metrics:  # a run from before `test_model_space` had its name
        metrics.setdefault("test_model_space", metrics["test_scaled"])
    metrics["run_dir"] = str(run_dir)
    return metrics


def load_runs(run_dirs: Iterable[str | Path]) -> list[dict[str, Any]]:
    """`load_run` for each folder, skipping (with a warning) the unreadable ones."""
    return [run for run in map(load_run, run_dirs) if run is not None]
