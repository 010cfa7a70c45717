"""`seqbench download ETTh1` (and ETTh2, ETTm1, ETTm2): pinned where known, cached, offline one line."""

import hashlib
import os
import urllib.error
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seqbench.cli import app
from seqbench.data.ett import ETT_FILES, download_ett, is_ett, is_pinned
from seqbench.errors import DataError

REPO = Path(__file__).resolve().parents[2]
ETTH1 = Path(os.environ.get("SEQBENCH_SHARED", REPO.parent / "shared")) / "data" / "ETTh1.csv"
runner = CliRunner()


def offline(url):
    raise urllib.error.URLError("no network")


def test_the_four_files_and_their_urls():
    assert {f.name for f in ETT_FILES.values()} == {"ETTh1", "ETTh2", "ETTm1", "ETTm2"}
    assert ETT_FILES["etth1"].url.endswith("/zhouhaoyi/ETDataset/main/ETT-small/ETTh1.csv")
    assert is_ett("etth1") and is_ett("ETTm2") and not is_ett("AAPL")
    assert is_pinned("ETTh1") and not is_pinned("ETTm1")


def test_offline_is_one_clear_error_and_writes_nothing(tmp_path):
    with pytest.raises(DataError, match=r"network is unreachable.*dataset\.path: FILE\.csv"):
        download_ett("ETTh1", tmp_path / "data", fetch=offline)
    assert not (tmp_path / "data").exists()


def test_a_wrong_file_is_refused(tmp_path):
    with pytest.raises(DataError, match="expected"):
        download_ett("ETTh1", tmp_path, fetch=lambda url: b"date,OT\n")
    assert list(tmp_path.iterdir()) == []


def test_an_unpinned_file_is_kept_and_cached(tmp_path):
    body = b"date,OT\n2016-07-01 00:00:00,1.0\n"
    path = download_ett("ETTm1", tmp_path, fetch=lambda url: body)
    assert path == tmp_path / "ETTm1.csv" and path.read_bytes() == body
    assert download_ett("ETTm1", tmp_path, fetch=offline) == path  # cached: no network


@pytest.mark.skipif(not ETTH1.is_file(), reason=f"ETTh1 is not at {ETTH1} (set SEQBENCH_SHARED)")
def test_etth1_is_checked_against_its_pinned_sha256(tmp_path):
    body = ETTH1.read_bytes()
    assert hashlib.sha256(body).hexdigest() == ETT_FILES["etth1"].sha256
    assert download_ett("etth1", tmp_path, fetch=lambda url: body).read_bytes() == body


def test_cli_offline_exits_2_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr("seqbench.data.text.urllib_fetch", offline)
    result = runner.invoke(app, ["download", "ETTh2", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert "ETTh2" in result.stderr and not (tmp_path / "data").exists()
