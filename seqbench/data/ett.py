"""The ETT series (Electricity Transformer Temperature, ETDataset's ETT-small): public CSV files,
downloaded once into data/NAME.csv and checked against a pinned sha256 where one is known.

Only ETTh1's digest is pinned (verified against an offline copy); ETTh2, ETTm1 and ETTm2 are
downloaded unchecked until theirs are, and the download says so.
"""

from __future__ import annotations

from pathlib import Path

from seqbench.data.text import Corpus, Fetch, download_public

BASE_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small"
PINNED = {"ETTh1": (2_589_657, "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066")}
ABOUT = {"h": "hourly", "m": "every 15 minutes"}

ETT_FILES: dict[str, Corpus] = {
    name.lower(): Corpus(
        name=name,
        url=f"{BASE_URL}/{name}.csv",
        size=PINNED.get(name, (None, None))[0],
        sha256=PINNED.get(name, (None, None))[1],
        about=f"Electricity Transformer Temperature, station {name[-1]}, {ABOUT[name[3]]}, 7 channels",
        suffix=".csv",
    )
    for name in ("ETTh1", "ETTh2", "ETTm1", "ETTm2")
}


def is_ett(name: str) -> bool:
    """Whether `name` is one of the ETT files (any case)."""
    return isinstance(name, str) and name.lower() in ETT_FILES


def is_pinned(name: str) -> bool:
    """Whether the ETT file `name` is checked against a pinned sha256."""
    return ETT_FILES[name.lower()].sha256 is not None


def download_ett(name: str, data_dir: str | Path = Path("data"), fetch: Fetch | None = None) -> Path:
    """Download the ETT file `name` into data_dir/NAME.csv (cached; checked where pinned)."""
    return download_public(ETT_FILES[name.lower()], data_dir, fetch)
