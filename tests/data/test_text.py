"""Text files as bytes, contiguous byte splits, and corpus downloads (cached, checked). No network."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqbench.data import text
from seqbench.data.text import (
    CORPORA,
    Corpus,
    download_corpus,
    is_corpus,
    read_text_bytes,
    split_bytes,
)
from seqbench.errors import DataError, SeqbenchError

SHAKESPEARE = b"First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 20
WIKI = "<mediawiki>\n  <page><title>caf\u00e9</title></page>\n</mediawiki>\n".encode() * 30


def one_line(call, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert info.value.exit_code == 2
    return message


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


class Stream(io.RawIOBase):
    """An HTTP response stand-in: reads in small pieces, cannot seek, records whether it was closed."""

    def __init__(self, data: bytes, piece: int = 7, fail_after: int | None = None) -> None:
        self.data, self.at, self.piece, self.fail_after = data, 0, piece, fail_after

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        if self.fail_after is not None and self.at >= self.fail_after:
            raise TimeoutError("The read operation timed out")
        n = self.piece if size < 0 else min(size, self.piece)
        chunk = self.data[self.at : self.at + n]
        self.at += len(chunk)
        return chunk


class Recorder:
    """A fetch that returns `result` (bytes, or a stream made by calling it) and records the URLs."""

    def __init__(self, result) -> None:
        self.result, self.urls = result, []

    def __call__(self, url: str):
        self.urls.append(url)
        return self.result() if callable(self.result) else self.result


def never(url: str):
    raise AssertionError("fetch must not be called")


@pytest.fixture
def fake_shakespeare(monkeypatch) -> Corpus:
    corpus = Corpus("tinyshakespeare", "https://example.org/input.txt", len(SHAKESPEARE), sha(SHAKESPEARE))
    monkeypatch.setitem(CORPORA, "tinyshakespeare", corpus)
    return corpus


@pytest.fixture
def fake_enwik8(monkeypatch) -> Corpus:
    corpus = Corpus("enwik8", "http://example.org/enwik8.zip", len(WIKI), sha(WIKI), member="enwik8")
    monkeypatch.setitem(CORPORA, "enwik8", corpus)
    return corpus


# --- read_text_bytes ----------------------------------------------------------------------------


def test_reads_the_raw_bytes_without_decoding(tmp_path):
    raw = b"caf\xc3\xa9 \xff\x00\r\n" + bytes(range(256))
    path = tmp_path / "t.txt"
    path.write_bytes(raw)
    data = read_text_bytes(path)
    assert data.dtype == np.uint8
    assert data.ndim == 1
    assert data.tobytes() == raw


def test_missing_absolute_path(tmp_path):
    path = tmp_path / "nope.txt"
    assert one_line(read_text_bytes, path) == f"text file not found: {path}"


def test_missing_relative_path_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert one_line(read_text_bytes, Path("sub/nope.txt")) == (
        f"text file not found: sub/nope.txt (looked for {tmp_path / 'sub' / 'nope.txt'}; "
        "a relative dataset.path is taken from the current directory)"
    )


def test_missing_corpus_file_says_how_to_download_it(tmp_path):
    path = tmp_path / "tinyshakespeare.txt"
    assert one_line(read_text_bytes, path) == (
        f"text file not found: {path}; "
        "`seqbench download tinyshakespeare` saves it as data/tinyshakespeare.txt"
    )


def test_a_directory_is_not_a_text_file(tmp_path):
    assert one_line(read_text_bytes, tmp_path) == f"{tmp_path} is a directory, not a text file"


@pytest.fixture
def no_hang():
    """Fail (instead of blocking forever) if the test takes more than 5 seconds."""

    def timeout(signum, frame):
        raise AssertionError("timed out: the read blocked")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(5)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_a_fifo_is_refused_without_hanging(tmp_path, no_hang):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    assert one_line(read_text_bytes, fifo) == (
        f"{fifo} is not a regular file (a pipe, socket or device); save the data to a file"
    )


def test_a_device_is_refused(no_hang):
    assert "is not a regular file" in one_line(read_text_bytes, Path("/dev/zero"))


def test_empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    assert one_line(read_text_bytes, path) == f"{path}: the file is empty"


def test_a_file_over_the_limit_is_refused_before_reading(tmp_path, monkeypatch):
    assert text.MAX_BYTES == 2 * 1024**3
    monkeypatch.setattr(text, "MAX_BYTES", 1024)
    monkeypatch.setattr(np, "fromfile", never)
    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * 1025)
    assert one_line(read_text_bytes, path).startswith(f"{path}: the file is 1,025 bytes, over the limit of ")


def test_the_real_limit_is_named_in_gib(tmp_path):
    path = tmp_path / "sparse.txt"
    with path.open("wb") as f:
        f.truncate(2 * 1024**3 + 1)  # sparse: no disk space used, never read
    assert one_line(read_text_bytes, path) == (
        f"{path}: the file is 2,147,483,649 bytes, over the limit of 2 GiB (2,147,483,648 bytes) "
        "for a text dataset; use a part of it"
    )


# --- split_bytes --------------------------------------------------------------------------------


def test_nanogpt_split_has_no_test_part():
    data = np.arange(1_115_394, dtype=np.int64).astype(np.uint8)
    train, val, test = split_bytes(data, (0.9, 0.1, 0.0), min_len=257)
    assert (len(train), len(val), len(test)) == (1_003_855, 111_539, 0)
    assert np.shares_memory(train, data)  # views, not copies
    assert np.array_equal(np.concatenate([train, val, test]), data)


def test_test_fraction_zero_gives_val_the_rest_whatever_the_rounding():
    data = np.zeros(25, dtype=np.uint8)  # round(22.5) = 22 and round(2.5) = 2 would leave 1 byte over
    train, val, test = split_bytes(data, (0.9, 0.1, 0.0))
    assert (len(train), len(val), len(test)) == (22, 3, 0)


def test_three_parts_train_first():
    data = np.frombuffer(bytes(range(100)), dtype=np.uint8)
    train, val, test = split_bytes(data, (0.8, 0.15, 0.05))
    assert train.tobytes() == bytes(range(80))
    assert val.tobytes() == bytes(range(80, 95))
    assert test.tobytes() == bytes(range(95, 100))


def test_a_test_part_that_rounds_to_nothing_is_an_error():
    data = np.zeros(100, dtype=np.uint8)
    assert one_line(split_bytes, data, (0.5, 0.496, 0.004), 2) == (
        "text: the test part has 0 bytes (0.004 of 100), fewer than the 2 it needs (dataset.seq_len + 1); "
        "use a shorter dataset.seq_len, more text or a larger test fraction in dataset.split"
    )


def test_a_part_shorter_than_min_len_names_part_size_and_need():
    data = np.zeros(1000, dtype=np.uint8)
    assert one_line(split_bytes, data, (0.9, 0.05, 0.05), 257, label="data/x.txt") == (
        "data/x.txt: the val part has 50 bytes (0.05 of 1,000), fewer than the 257 it needs "
        "(dataset.seq_len + 1); use a shorter dataset.seq_len, more text or a larger val fraction in "
        "dataset.split"
    )


def test_train_is_checked_first():
    message = one_line(split_bytes, np.zeros(100, dtype=np.uint8), (0.9, 0.1, 0.0), 257)
    assert message.startswith("text: the train part has 90 bytes (0.9 of 100), fewer than the 257")


@pytest.mark.parametrize("split", [(0.5, 0.5, 0.5), (1.2, -0.1, -0.1), (0.9, 0.1), (float("nan"), 0.5, 0.5)])
def test_bad_fractions(split):
    assert one_line(split_bytes, np.zeros(100, dtype=np.uint8), split).startswith(
        "dataset.split must be three fractions >= 0 (train, val, test) that sum to 1, got "
    )


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 3000),
    train=st.integers(1, 98),
    val=st.integers(1, 98),
    min_len=st.integers(1, 300),
    no_test=st.booleans(),
)
def test_split_parts_are_contiguous_and_long_enough_or_refused(n, train, val, min_len, no_test):
    total = train + val if no_test else 100
    if train + val >= total and not no_test:
        return
    fractions = (train / total, val / total, 0.0 if no_test else (total - train - val) / total)
    data = (np.arange(n) % 251).astype(np.uint8)
    try:
        parts = split_bytes(data, fractions, min_len)
    except DataError as exc:
        assert "\n" not in str(exc)
        return
    assert np.array_equal(np.concatenate(parts), data)
    assert all(len(p) >= min_len for p, f in zip(parts, fractions, strict=True) if f > 0)
    assert len(parts[2]) == 0 if no_test else len(parts[2]) >= min_len


# --- corpora ------------------------------------------------------------------------------------


def test_the_real_corpora():
    shakespeare, enwik8 = CORPORA["tinyshakespeare"], CORPORA["enwik8"]
    assert shakespeare.url == (
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
    )
    assert (shakespeare.size, shakespeare.member) == (1_115_394, None)
    assert shakespeare.sha256 == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    assert enwik8.url == "http://mattmahoney.net/dc/enwik8.zip"
    assert (enwik8.size, enwik8.member) == (100_000_000, "enwik8")
    assert enwik8.sha256 == "2b49720ec4d78c3c9fabaee6e4179a5e997302b3a70029f30f2d582218c024a8"


def test_is_corpus():
    assert is_corpus("tinyshakespeare")
    assert is_corpus("enwik8")
    assert is_corpus("TinyShakespeare")
    assert not is_corpus("AAPL")
    assert not is_corpus("enwik9")


def test_unknown_corpus_lists_the_known_ones(tmp_path):
    assert one_line(download_corpus, "enwik9", tmp_path, fetch=never) == (
        "unknown corpus 'enwik9'; known corpora: enwik8, tinyshakespeare"
    )


def test_download_writes_the_checked_text(tmp_path, fake_shakespeare):
    fetch = Recorder(SHAKESPEARE)
    path = download_corpus("tinyshakespeare", tmp_path / "data", fetch=fetch)
    assert path == tmp_path / "data" / "tinyshakespeare.txt"
    assert path.read_bytes() == SHAKESPEARE
    assert fetch.urls == ["https://example.org/input.txt"]
    assert files(tmp_path / "data") == ["tinyshakespeare.txt"]
    assert read_text_bytes(path).tobytes() == SHAKESPEARE


def test_download_from_a_stream_in_pieces_and_closes_it(tmp_path, fake_shakespeare, monkeypatch):
    monkeypatch.setattr(text, "CHUNK", 64)
    stream = Stream(SHAKESPEARE)
    path = download_corpus("tinyshakespeare", tmp_path, fetch=Recorder(stream))
    assert path.read_bytes() == SHAKESPEARE
    assert stream.closed


def test_a_cached_file_is_returned_without_network(tmp_path, fake_shakespeare):
    (tmp_path / "tinyshakespeare.txt").write_bytes(SHAKESPEARE)
    assert download_corpus("tinyshakespeare", tmp_path, fetch=never) == tmp_path / "tinyshakespeare.txt"


def test_a_second_download_is_a_cache_hit(tmp_path, fake_shakespeare):
    download_corpus("tinyshakespeare", tmp_path, fetch=Recorder(SHAKESPEARE))
    assert download_corpus("TINYSHAKESPEARE", tmp_path, fetch=never) == tmp_path / "tinyshakespeare.txt"


def test_a_cached_file_of_the_wrong_size_is_refused(tmp_path, fake_shakespeare):
    path = tmp_path / "tinyshakespeare.txt"
    path.write_bytes(b"not it")
    assert one_line(download_corpus, "tinyshakespeare", tmp_path, fetch=never) == (
        f"{path} is 6 bytes, not the {len(SHAKESPEARE):,} bytes of tinyshakespeare; "
        "move it away to download tinyshakespeare again"
    )


def test_checksum_mismatch_names_both_and_writes_nothing(tmp_path, fake_shakespeare):
    wrong = SHAKESPEARE.replace(b"speak", b"SPEAK")
    data_dir = tmp_path / "data" / "sub"
    message = one_line(download_corpus, "tinyshakespeare", data_dir, fetch=Recorder(wrong))
    assert message == (
        f"download tinyshakespeare: sha256 mismatch: expected {sha(SHAKESPEARE)} "
        f"({len(SHAKESPEARE):,} bytes), got {sha(wrong)} ({len(wrong):,} bytes); nothing was written"
    )
    assert files(tmp_path) == []  # not even the folders it made


def test_mismatch_in_an_existing_folder_leaves_what_was_there(tmp_path, fake_shakespeare):
    (tmp_path / "AAPL.csv").write_text("Date,Close\n")
    one_line(download_corpus, "tinyshakespeare", tmp_path, fetch=Recorder(b"short"))
    assert files(tmp_path) == ["AAPL.csv"]


def test_a_longer_download_stops_at_the_expected_size(tmp_path, fake_shakespeare, monkeypatch):
    monkeypatch.setattr(text, "CHUNK", 64)
    endless = Stream(SHAKESPEARE * 1000)
    message = one_line(download_corpus, "tinyshakespeare", tmp_path, fetch=Recorder(endless))
    assert message == (
        f"download tinyshakespeare: https://example.org/input.txt gave more than the expected "
        f"{len(SHAKESPEARE):,} bytes; nothing was written"
    )
    assert endless.at < len(SHAKESPEARE) + 1000
    assert files(tmp_path) == []


def offline(url: str):
    raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))


def test_offline_says_the_network_is_unreachable(tmp_path, fake_shakespeare):
    data_dir = tmp_path / "data"
    assert one_line(download_corpus, "tinyshakespeare", data_dir, fetch=offline) == (
        "could not download tinyshakespeare from https://example.org/input.txt: the network is "
        "unreachable ([Errno -3] Temporary failure in name resolution); use a local copy of the file "
        f"instead (dataset.path: FILE.txt), or save it as {data_dir / 'tinyshakespeare.txt'}"
    )
    assert files(tmp_path) == []


def test_offline_with_the_default_fetch(tmp_path, monkeypatch):
    seen = {}

    def urlopen(request, timeout):
        seen["url"], seen["timeout"] = request.full_url, timeout
        seen["agent"] = request.get_header("User-agent")
        raise urllib.error.URLError(TimeoutError("timed out"))

    monkeypatch.setattr(text.urllib.request, "urlopen", urlopen)
    message = one_line(download_corpus, "enwik8", tmp_path)
    assert message == (
        "could not download enwik8 from http://mattmahoney.net/dc/enwik8.zip: the network is unreachable "
        "(timed out); use a local copy of the file instead (dataset.path: FILE.txt), or save it unzipped "
        f"as {tmp_path / 'enwik8.txt'}"
    )
    assert seen == {"url": "http://mattmahoney.net/dc/enwik8.zip", "timeout": 60.0, "agent": "seqbench/0.1.0"}


def test_a_timeout_mid_download_is_unreachable_and_writes_nothing(tmp_path, fake_shakespeare):
    stream = Stream(SHAKESPEARE, fail_after=100)
    message = one_line(download_corpus, "tinyshakespeare", tmp_path, fetch=Recorder(stream))
    assert "the network is unreachable (The read operation timed out)" in message
    assert stream.closed
    assert files(tmp_path) == []


def test_an_http_error_gives_its_status(tmp_path, fake_shakespeare):
    def not_found(url):
        raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)

    assert one_line(download_corpus, "tinyshakespeare", tmp_path, fetch=not_found) == (
        "could not download tinyshakespeare from https://example.org/input.txt: HTTP 404 Not Found; "
        "use a local copy of the file instead (dataset.path: FILE.txt), or save it as "
        f"{tmp_path / 'tinyshakespeare.txt'}"
    )


def test_the_errors_are_seqbench_errors_with_exit_code_2(tmp_path, fake_shakespeare):
    with pytest.raises(SeqbenchError) as info:
        download_corpus("tinyshakespeare", tmp_path, fetch=offline)
    assert info.value.exit_code == 2


# --- enwik8: a zip --------------------------------------------------------------------------------


def test_enwik8_unzips_its_member(tmp_path, fake_enwik8):
    fetch = Recorder(zipped({"enwik8": WIKI}))
    path = download_corpus("enwik8", tmp_path, fetch=fetch)
    assert path == tmp_path / "enwik8.txt"
    assert path.read_bytes() == WIKI
    assert fetch.urls == ["http://example.org/enwik8.zip"]
    assert files(tmp_path) == ["enwik8.txt"]


def test_enwik8_from_a_stream_is_spooled_then_unzipped(tmp_path, fake_enwik8, monkeypatch):
    monkeypatch.setattr(text, "CHUNK", 100)
    stream = Stream(zipped({"enwik8": WIKI}), piece=33)
    path = download_corpus("enwik8", tmp_path, fetch=Recorder(stream))
    assert path.read_bytes() == WIKI
    assert stream.closed
    assert files(tmp_path) == ["enwik8.txt"]  # the spooled zip is gone


def test_enwik8_checks_the_unzipped_member(tmp_path, fake_enwik8):
    wrong = WIKI.replace(b"page", b"PAGE")
    message = one_line(download_corpus, "enwik8", tmp_path, fetch=Recorder(zipped({"enwik8": wrong})))
    assert message == (
        f"download enwik8: sha256 mismatch: expected {sha(WIKI)} ({len(WIKI):,} bytes), "
        f"got {sha(wrong)} ({len(wrong):,} bytes); nothing was written"
    )
    assert files(tmp_path) == []


def test_a_zip_without_the_member(tmp_path, fake_enwik8):
    archive = zipped({"readme.txt": b"hi", "enwik9": WIKI})
    assert one_line(download_corpus, "enwik8", tmp_path, fetch=Recorder(archive)) == (
        "download enwik8: the zip from http://example.org/enwik8.zip holds no member 'enwik8' "
        "(it holds: readme.txt, enwik9); nothing was written"
    )
    assert files(tmp_path) == []


def test_not_a_zip(tmp_path, fake_enwik8):
    page = b"<html>captive portal</html>"
    assert one_line(download_corpus, "enwik8", tmp_path, fetch=Recorder(Stream(page))) == (
        "download enwik8: http://example.org/enwik8.zip did not give a readable zip file "
        "(File is not a zip file); nothing was written"
    )
    assert files(tmp_path) == []


def test_a_damaged_zip_member(tmp_path, fake_enwik8):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("enwik8", WIKI)
    archive = buffer.getvalue()
    at = archive.index(WIKI[:40]) + 10
    damaged = archive[:at] + b"X" + archive[at + 1 :]  # same length, bad CRC
    message = one_line(download_corpus, "enwik8", tmp_path, fetch=Recorder(damaged))
    assert message == (
        "download enwik8: http://example.org/enwik8.zip did not give a readable zip file "
        "(Bad CRC-32 for file 'enwik8'); nothing was written"
    )
    assert files(tmp_path) == []


def test_a_folder_in_place_of_the_cached_file_is_refused(tmp_path, fake_shakespeare):
    (tmp_path / "tinyshakespeare.txt").mkdir()
    assert one_line(download_corpus, "tinyshakespeare", str(tmp_path), fetch=never) == (
        f"{tmp_path / 'tinyshakespeare.txt'} is not a regular file; "
        "move it away to download tinyshakespeare again"
    )
