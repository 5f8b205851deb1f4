"""The resumable, checksum-verified transfer against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from flareseq.data.download.http import (
    Checksum,
    download_file,
    file_checksum,
    safe_member_target,
)
from flareseq.errors import DataFormatError, DownloadError

# Fast retries: the tests exercise the retry path, not the waiting.
FAST = dict(retries=3, backoff=0.01, timeout=5, progress=False, chunk_size=64)
CONTENT = os.urandom(5000)
MD5 = Checksum("MD5", hashlib.md5(CONTENT).hexdigest())


def _serve(server, content=CONTENT, path="/data.bin") -> str:
    server.files[path] = content
    return server.url + path


def test_download_verifies_and_renames(file_server, tmp_path):
    url = _serve(file_server)
    dest = download_file(url, tmp_path / "data.bin", checksum=MD5, size=len(CONTENT), **FAST)
    assert dest.read_bytes() == CONTENT
    assert not (tmp_path / "data.bin.part").exists()
    assert [s.status for s in file_server.seen] == [200]


def test_resumes_an_existing_part_file_with_a_range_request(file_server, tmp_path):
    url = _serve(file_server)
    (tmp_path / "data.bin.part").write_bytes(CONTENT[:1234])
    dest = download_file(url, tmp_path / "data.bin", checksum=MD5, **FAST)
    assert dest.read_bytes() == CONTENT
    assert [(s.range, s.status) for s in file_server.seen] == [("bytes=1234-", 206)]


def test_dropped_connection_resumes_to_a_byte_identical_file(file_server, tmp_path):
    url = _serve(file_server)
    file_server.drops["/data.bin"] = [1500, 700]  # two drops: first at 1500 bytes, then 700 more
    dest = download_file(url, tmp_path / "data.bin", checksum=MD5, size=len(CONTENT), **FAST)
    assert dest.read_bytes() == CONTENT
    assert [(s.range, s.status) for s in file_server.seen] == [
        (None, 200), ("bytes=1500-", 206), ("bytes=2200-", 206)
    ]


def test_many_drops_that_make_progress_do_not_exhaust_the_retries(file_server, tmp_path):
    url = _serve(file_server)
    file_server.drops["/data.bin"] = [500] * 8  # more drops than retries, each adding bytes
    dest = download_file(url, tmp_path / "data.bin", checksum=MD5, **{**FAST, "retries": 1})
    assert dest.read_bytes() == CONTENT
    assert len(file_server.seen) == 9


def test_corrupted_file_is_a_checksum_error_and_leaves_no_complete_looking_file(file_server, tmp_path):
    url = _serve(file_server)
    file_server.corrupt.add("/data.bin")
    with pytest.raises(DownloadError) as info:
        download_file(url, tmp_path / "data.bin", checksum=MD5, size=len(CONTENT), **FAST)
    message = str(info.value)
    corrupted = CONTENT[:-1] + bytes([CONTENT[-1] ^ 0xFF])
    assert "data.bin" in message and "checksum mismatch" in message
    assert MD5.value in message and hashlib.md5(corrupted).hexdigest() in message
    assert not (tmp_path / "data.bin").exists()
    assert not (tmp_path / "data.bin.part").exists()  # deleted: resuming damaged bytes cannot help
    # A rerun once the server is fixed fetches it afresh.
    file_server.corrupt.clear()
    assert download_file(url, tmp_path / "data.bin", checksum=MD5, **FAST).read_bytes() == CONTENT


def test_server_ignoring_range_restarts_from_zero(file_server, tmp_path):
    url = _serve(file_server)
    file_server.range_support = False
    (tmp_path / "data.bin.part").write_bytes(b"x" * 999)  # would corrupt the file if appended to
    file_server.drops["/data.bin"] = [2000]
    dest = download_file(url, tmp_path / "data.bin", checksum=MD5, **FAST)
    assert dest.read_bytes() == CONTENT
    assert [(s.range, s.status) for s in file_server.seen] == [("bytes=999-", 200), ("bytes=2000-", 200)]


def test_complete_part_file_is_finished_without_a_body(file_server, tmp_path):
    url = _serve(file_server)
    (tmp_path / "data.bin.part").write_bytes(CONTENT)
    # size unknown: the client asks for the tail and the server answers 416 (nothing left)
    dest = download_file(url, tmp_path / "data.bin", checksum=MD5, **FAST)
    assert dest.read_bytes() == CONTENT
    assert [s.status for s in file_server.seen] == [416]
    # size known: no request at all
    dest.unlink()
    (tmp_path / "data.bin.part").write_bytes(CONTENT)
    download_file(url, tmp_path / "data.bin", checksum=MD5, size=len(CONTENT), **FAST)
    assert len(file_server.seen) == 1


def test_transient_statuses_are_retried_with_backoff(file_server, tmp_path):
    url = _serve(file_server)
    file_server.statuses["/data.bin"] = [503, 502]
    started = time.monotonic()
    download_file(url, tmp_path / "data.bin", checksum=MD5, **{**FAST, "backoff": 0.1})
    assert time.monotonic() - started >= 0.1 + 0.2  # 0.1 s, then doubled
    assert [s.status for s in file_server.seen] == [503, 502, 200]


def test_retries_run_out_with_a_message_saying_how_to_resume(file_server, tmp_path):
    url = _serve(file_server)
    file_server.drops["/data.bin"] = [1000, 0, 0, 0, 0]
    with pytest.raises(DownloadError, match=r"4 attempts in a row failed.*1,000 bytes.*data\.bin\.part.*resume"):
        download_file(url, tmp_path / "data.bin", checksum=MD5, **FAST)
    assert (tmp_path / "data.bin.part").read_bytes() == CONTENT[:1000]  # kept for the next run
    assert not (tmp_path / "data.bin").exists()


def test_client_errors_are_not_retried(file_server, tmp_path):
    with pytest.raises(DownloadError, match=r"HTTP 404.*Check the URL"):
        download_file(file_server.url + "/missing", tmp_path / "x", **FAST)
    assert len(file_server.seen) == 1


def test_size_mismatch_is_an_error(file_server, tmp_path):
    url = _serve(file_server)
    with pytest.raises(DownloadError, match=r"expected 6,000 bytes, downloaded 5,000"):
        download_file(url, tmp_path / "data.bin", size=6000, **FAST)
    assert not (tmp_path / "data.bin").exists() and not (tmp_path / "data.bin.part").exists()


def test_existing_complete_file_is_not_downloaded_again(file_server, tmp_path):
    url = _serve(file_server)
    (tmp_path / "data.bin").write_bytes(CONTENT)
    download_file(url, tmp_path / "data.bin", checksum=MD5, **FAST)
    assert file_server.seen == []


def test_existing_different_file_is_kept_and_reported(file_server, tmp_path):
    url = _serve(file_server)
    (tmp_path / "data.bin").write_bytes(b"mine")
    with pytest.raises(DownloadError, match=r"already exists but is not the published file.*Move or delete"):
        download_file(url, tmp_path / "data.bin", checksum=MD5, **FAST)
    assert (tmp_path / "data.bin").read_bytes() == b"mine"


def test_other_checksum_algorithms_and_unknown_ones(file_server, tmp_path):
    url = _serve(file_server)
    sha1 = Checksum("SHA-1", hashlib.sha1(CONTENT).hexdigest())
    assert download_file(url, tmp_path / "a", checksum=sha1, **FAST).read_bytes() == CONTENT
    assert file_checksum(tmp_path / "a", "SHA-1") == sha1.value
    with pytest.raises(DownloadError, match=r"'CRC32' is not supported; expected one of MD5"):
        download_file(url, tmp_path / "b", checksum=Checksum("CRC32", "0"), **FAST)


def test_bad_url_is_reported_without_retrying(tmp_path):
    with pytest.raises(DownloadError, match=r"not a valid download URL"):
        download_file("nowhere/file", tmp_path / "x", **FAST)


@pytest.mark.parametrize(
    "name, match",
    [
        ("../outside.txt", "leaves the destination folder"),
        ("a/../../outside.txt", "leaves the destination folder"),
        ("/etc/passwd", "leaves the destination folder"),
        ("C:/Windows/x", "leaves the destination folder"),
        ("..\\outside.txt", "leaves the destination folder"),
    ],
)
def test_member_paths_that_escape_are_refused(tmp_path, name, match):
    with pytest.raises(DataFormatError, match=match) as info:
        safe_member_target("archive.tar.gz", name, tmp_path)
    assert info.value.path == "archive.tar.gz" and info.value.field == name


def test_member_paths_inside_are_accepted(tmp_path):
    assert safe_member_target("a.zip", "partition1/FL/x.csv", tmp_path) == (tmp_path / "partition1/FL/x.csv").resolve()
    assert safe_member_target("a.zip", "./a/./b", tmp_path) == (tmp_path / "a/b").resolve()
    assert isinstance(safe_member_target("a.zip", "top", Path(tmp_path)), Path)
