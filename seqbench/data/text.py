"""Text files as bytes for byte-level language models, and downloads of two public corpora.

`read_text_bytes` reads a file's raw bytes (no decoding: a byte-level model sees UTF-8 as it is
stored). `split_bytes` cuts them into contiguous train / val / test parts, train first, as
nanoGPT does (`split: [0.9, 0.1, 0.0]` leaves no test part).

`download_corpus` caches a corpus as `data_dir/NAME.txt`. While that file exists it is returned
without touching the network. A download is streamed to a temporary file beside it, its size and
sha256 checked, and only then renamed into place, so a failed, cut or wrong download leaves
nothing behind. enwik8 comes as a zip: the zip is spooled to an anonymous temporary file (an
HTTP stream cannot seek) and its one member is unzipped, checked and written chunk by chunk, so
100 MB are never held in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import math
import os
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from seqbench.data.files import regular_file
from seqbench.errors import DataError, shown
from seqbench.io import atomic_path

MAX_BYTES = 2 * 1024**3  # 2 GiB: larger text is not what a byte-level benchmark here reads into memory
CHUNK = 1024**2  # bytes read and written at a time while downloading
COUNT_CHUNK = 2**18  # bytes `byte_counts` counts at a time (np.bincount copies them as int64)
TIMEOUT_S = 60.0  # the default fetch's socket timeout (connect and each read)
PARTS = ("train", "val", "test")

Fetch = Callable[[str], "bytes | IO[bytes]"]
# what a fetch or a read from its stream raises when the network fails: DNS, refused, reset, timeout
NETWORK_ERRORS = (OSError, http.client.HTTPException)  # URLError and TimeoutError are OSErrors
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError)


@dataclass(frozen=True)
class Corpus:
    """A public file whose size and sha256 are known, so that a download can be checked.

    size and sha256 None: not pinned (the download is kept unchecked, and says so).
    """

    name: str
    url: str
    size: int | None  # bytes of the text (for a zip: of the member, unzipped)
    sha256: str | None  # of the text (for a zip: of the member, unzipped)
    member: str | None = None  # the zip member that holds the text; None: the URL serves the text
    about: str = ""
    suffix: str = ".txt"  # of the cached file, data/NAME.SUFFIX

    @property
    def limit(self) -> int:
        """The most bytes a download may give."""
        return self.size if self.size is not None else MAX_BYTES


CORPORA: dict[str, Corpus] = {
    corpus.name: corpus
    for corpus in (
        Corpus(
            name="enwik8",
            url="http://mattmahoney.net/dc/enwik8.zip",
            size=100_000_000,
            sha256="2b49720ec4d78c3c9fabaee6e4179a5e997302b3a70029f30f2d582218c024a8",
            member="enwik8",
            about="first 10^8 bytes of a 2006 English Wikipedia XML dump (the Hutter Prize file)",
        ),
        Corpus(
            name="tinyshakespeare",
            url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            size=1_115_394,
            sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            about="char-rnn / nanoGPT's excerpt of Shakespeare's plays, ASCII",
        ),
    )
}


# --- a text file ------------------------------------------------------------------------------


def read_text_bytes(path: Path) -> np.ndarray:
    """The raw bytes of the file at `path` as a 1-D uint8 array; a DataError for anything else."""
    path = Path(path)
    size = _regular_file_size(path)
    if size == 0:
        raise DataError(f"{path}: the file is empty")
    if size > MAX_BYTES:
        raise DataError(
            f"{path}: the file is {size:,} bytes, over the limit of {_gib(MAX_BYTES)} ({MAX_BYTES:,} bytes) "
            "for a text dataset; use a part of it"
        )
    try:
        return np.fromfile(path, dtype=np.uint8, count=size)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None


def byte_counts(data: np.ndarray) -> np.ndarray:
    """(256,) int64 occurrences of each byte value in the uint8 `data`, COUNT_CHUNK bytes at a time
    (np.bincount of the whole array would first copy it as 8-byte integers)."""
    counts = np.zeros(256, dtype=np.int64)  # (256,)
    for i in range(0, len(data), COUNT_CHUNK):
        counts += np.bincount(data[i : i + COUNT_CHUNK], minlength=256)
    return counts


def _regular_file_size(path: Path) -> int:
    """The size of the regular file at `path`, checked before it is opened (a FIFO would block)."""
    return regular_file(path, "text file", _download_hint(path)).st_size


def _download_hint(path: Path) -> str:
    name = path.stem.lower()
    return f"; `seqbench download {name}` saves it as data/{name}.txt" if name in CORPORA else ""


def _gib(n: int) -> str:
    return f"{n / 1024**3:g} GiB"


# --- splits -----------------------------------------------------------------------------------


def split_bytes(
    data: np.ndarray,
    split: tuple[float, float, float],
    min_len: int = 2,
    *,
    label: str = "text",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contiguous train, val and test parts of `data` (views, train first), sized by `split`.

    Train and val take `round(n * fraction)` bytes each, test the rest; a test fraction of 0 gives
    val the rest and test nothing. Train, and every part whose fraction is above 0, must hold at
    least `min_len` bytes (a window of seq_len inputs and their next-byte targets: seq_len + 1);
    otherwise a DataError names the part, its size and the size it needs. `label` (the file or
    corpus) begins each message.
    """
    fractions = _fractions(split)
    n = len(data)
    n_train = min(round(n * fractions[0]), n)
    n_val = n - n_train if fractions[2] == 0 else min(round(n * fractions[1]), n - n_train)
    bounds = (0, n_train, n_train + n_val, n)
    parts = tuple(data[bounds[i] : bounds[i + 1]] for i in range(3))
    for name, part, fraction in zip(PARTS, parts, fractions, strict=True):
        if (name == "train" or fraction > 0) and len(part) < min_len:
            raise DataError(
                f"{label}: the {name} part has {len(part):,} bytes ({fraction:g} of {n:,}), fewer than the "
                f"{min_len:,} it needs (dataset.seq_len + 1); use a shorter dataset.seq_len, more text "
                f"or a larger {name} fraction in dataset.split"
            )
    return parts  # type: ignore[return-value]


def _fractions(split: tuple[float, float, float]) -> tuple[float, float, float]:
    values = tuple(float(f) for f in split)
    valid = len(values) == 3 and all(math.isfinite(f) and f >= 0 for f in values)
    if not valid or abs(sum(values) - 1) > 1e-6:
        raise DataError(
            f"dataset.split must be three fractions >= 0 (train, val, test) that sum to 1, got {list(values)}"
        )
    return values  # type: ignore[return-value]


# --- downloads --------------------------------------------------------------------------------


def is_corpus(name: str) -> bool:
    """Whether `name` is a corpus `download_corpus` knows (any case), not a ticker."""
    return isinstance(name, str) and name.lower() in CORPORA


def corpus_named(name: str) -> Corpus:
    """The corpus called `name` (any case), or a DataError that lists the known ones."""
    if not is_corpus(name):
        raise DataError(f"unknown corpus '{shown(name)}'; known corpora: {', '.join(sorted(CORPORA))}")
    return CORPORA[name.lower()]


def corpus_path(name: str, data_dir: str | Path = Path("data")) -> Path:
    """Where the corpus `name` is (or would be) cached."""
    return Path(data_dir) / f"{corpus_named(name).name}.txt"


def download_corpus(name: str, data_dir: str | Path = Path("data"), fetch: Fetch | None = None) -> Path:
    """Download the corpus `name` into `data_dir/NAME.txt`, checked; return that path.

    A cached file is returned without network. `fetch(url) -> bytes | binary file-like` replaces
    the default urllib fetch (tests inject one); a stream it returns is closed afterwards.
    """
    return download_public(corpus_named(name), data_dir, fetch)


def download_public(corpus: Corpus, data_dir: str | Path = Path("data"), fetch: Fetch | None = None) -> Path:
    """Download `corpus` into `data_dir/NAME.SUFFIX`, checked where pinned; a cached file is kept."""
    data_dir = Path(data_dir)
    path = data_dir / f"{corpus.name}{corpus.suffix}"
    if os.path.lexists(path):
        _check_cached(path, corpus)
        return path
    source = _call_fetch(fetch or urllib_fetch, corpus, path)
    made = _missing_dirs(data_dir)
    try:
        with atomic_path(path) as tmp:
            if corpus.member is None:
                _write_verified(_network_chunks(source, corpus, path, corpus.limit), tmp, corpus)
            else:
                _unzip_verified(source, tmp, corpus, path)
    except BaseException:
        _remove_empty(made)  # a failed download leaves no folder either
        raise
    finally:
        _close(source)
    return path


def urllib_fetch(url: str) -> IO[bytes]:
    """The default fetch: an HTTP response to read from (streamed), with a timeout."""
    from seqbench import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"seqbench/{__version__}"})
    return urllib.request.urlopen(request, timeout=TIMEOUT_S)


def _check_cached(path: Path, corpus: Corpus) -> None:
    """A cached file is returned as it is, if it is a regular file of the corpus's size."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{path} is not a regular file; move it away to download {corpus.name} again")
    if corpus.size is not None and info.st_size != corpus.size:
        raise DataError(
            f"{path} is {info.st_size:,} bytes, not the {corpus.size:,} bytes of {corpus.name}; "
            f"move it away to download {corpus.name} again"
        )


def _call_fetch(fetch: Fetch, corpus: Corpus, path: Path) -> IO[bytes]:
    try:
        result = fetch(corpus.url)
    except DataError:
        raise
    except NETWORK_ERRORS as exc:
        raise _unreachable(corpus, path, exc) from exc
    if isinstance(result, bytes | bytearray | memoryview):
        return io.BytesIO(result)
    if not hasattr(result, "read"):
        raise TypeError(f"fetch({corpus.url!r}) returned {type(result).__name__}, not bytes or a binary file")
    return result


def _network_chunks(source: IO[bytes], corpus: Corpus, path: Path, limit: int) -> Iterator[bytes]:
    """The stream's bytes in chunks, at most `limit` + 1 in all; a network failure is a DataError."""
    total = 0
    while total <= limit:
        try:
            chunk = source.read(CHUNK)
        except NETWORK_ERRORS as exc:
            raise _unreachable(corpus, path, exc) from exc
        if not chunk:
            return
        total += len(chunk)
        yield chunk


def _write_verified(chunks: Iterator[bytes], tmp: Path, corpus: Corpus) -> None:
    """Write `chunks` to `tmp`, then check their size and sha256 against the corpus's."""
    digest, size = hashlib.sha256(), 0
    with tmp.open("wb") as out:
        for chunk in chunks:
            size += len(chunk)
            if size > corpus.limit:
                raise DataError(
                    f"download {corpus.name}: {corpus.url} gave more than the expected {corpus.limit:,} "
                    "bytes; nothing was written"
                )
            digest.update(chunk)
            out.write(chunk)
    actual = digest.hexdigest()
    if corpus.sha256 is not None and actual != corpus.sha256:
        raise DataError(
            f"download {corpus.name}: sha256 mismatch: expected {corpus.sha256} ({corpus.size:,} bytes), "
            f"got {actual} ({size:,} bytes); nothing was written"
        )


def _unzip_verified(source: IO[bytes], tmp: Path, corpus: Corpus, path: Path) -> None:
    """Unzip the corpus's member from the zip `source` into `tmp`, checked."""
    if _seekable(source):
        _unzip_member(source, tmp, corpus)
        return
    with tempfile.TemporaryFile(dir=path.parent, prefix=f".{corpus.name}.", suffix=".zip") as spool:
        for chunk in _network_chunks(source, corpus, path, MAX_BYTES):
            spool.write(chunk)
        spool.seek(0)
        _unzip_member(spool, tmp, corpus)


def _unzip_member(archive: IO[bytes], tmp: Path, corpus: Corpus) -> None:
    def damaged(exc: BaseException) -> DataError:
        reason = shown(str(exc) or type(exc).__name__, 80)
        return DataError(
            f"download {corpus.name}: {corpus.url} did not give a readable zip file ({reason}); "
            "nothing was written"
        )

    try:
        with zipfile.ZipFile(archive) as zf:
            if corpus.member not in zf.namelist():
                held = ", ".join(shown(n, 40) for n in zf.namelist()[:5]) or "nothing"
                raise DataError(
                    f"download {corpus.name}: the zip from {corpus.url} holds no member "
                    f"'{corpus.member}' (it holds: {held}); nothing was written"
                )
            with zf.open(str(corpus.member)) as member:
                _write_verified(_zip_chunks(member, damaged, corpus.limit), tmp, corpus)
    except ZIP_ERRORS as exc:
        raise damaged(exc) from exc


def _zip_chunks(
    member: IO[bytes], damaged: Callable[[BaseException], DataError], limit: int
) -> Iterator[bytes]:
    total = 0
    while total <= limit:
        try:
            chunk = member.read(CHUNK)
        except ZIP_ERRORS as exc:  # a bad CRC is only found at the end of the member
            raise damaged(exc) from exc
        if not chunk:
            return
        total += len(chunk)
        yield chunk


def _unreachable(corpus: Corpus, path: Path, exc: BaseException) -> DataError:
    unzipped = " unzipped" if corpus.member else ""
    local = (
        f"use a local copy of the file instead (dataset.path: FILE{corpus.suffix}), "
        f"or save it{unzipped} as {path}"
    )
    if isinstance(exc, urllib.error.HTTPError):
        return DataError(
            f"could not download {corpus.name} from {corpus.url}: HTTP {exc.code} "
            f"{shown(exc.reason, 60)}; {local}"
        )
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    text = shown(str(reason) or type(reason).__name__, 80)
    return DataError(
        f"could not download {corpus.name} from {corpus.url}: the network is unreachable ({text}); {local}"
    )


def _seekable(stream: IO[bytes]) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _close(stream: IO[bytes]) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        with contextlib.suppress(OSError, http.client.HTTPException):  # the result is already decided
            close()


def _missing_dirs(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist yet, deepest first."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (someone else wrote there) or already gone
