"""Run folders: `results/<name>/<run_id>/`, created once, never overwritten."""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

from seqbench.errors import SeqbenchError
from seqbench.spec import NAME_PATTERN


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
    parent = results_dir / name
    parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        run_id = new_run_id()
        run_dir = parent / run_id
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        return run_dir, run_id
    raise SeqbenchError(f"could not create a new run folder under {parent}")
