"""A server or an archive can never write outside --dest, nor fill the disk (issue 16, items 2 and 3).

The Dataverse tests run a real HTTP server on 127.0.0.1 (the ``file_server`` fixture). Before,
the server's ``filename`` was joined to --dest unchecked (``../../x`` and ``/abs/x`` both
escaped), and a 1 MB .tar.gz expanded to 1 GiB on disk with exit 0.
"""

from __future__ import annotations

import io
import os
import tarfile
import zipfile

import pytest
from test_download_dataverse import (
    DATASET_PATH,
    FAST,
    dataset_json,
    file_entry,
    swan_sf_tar,
)

from flareseq.cli import main
from flareseq.data.download.dataverse import download_swan_sf, extract_tar
from flareseq.data.download.http import download_file
from flareseq.data.download.kaggle import (
    MAX_NESTED_ARCHIVES,
    extract_zip,
    unpack_kaggle_archives,
)
from flareseq.data.limits import LimitError, ReadLimits
from flareseq.errors import DownloadError


def _files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def sandbox(tmp_path):
    """``tmp_path/a/b/dest`` is --dest; everything under ``tmp_path`` but dest is watched."""
    dest = tmp_path / "a" / "b" / "dest"
    dest.mkdir(parents=True)
    return tmp_path, dest


@pytest.mark.parametrize("filename", [
    "../../partition1_instances.tar.gz", "../partition1_instances.tar.gz", "sub/../../partition1_instances.tar.gz",
    "/tmp/partition1_instances.tar.gz", "x/partition1_instances.tar.gz", "partition1_instances\n.tar.gz",
    "..\\partition1_instances.tar.gz",
])
def test_a_server_file_name_never_leaves_dest(file_server, sandbox, filename, capsys):
    root, dest = sandbox
    archive, _ = swan_sf_tar(1)
    file_server.json[DATASET_PATH] = dataset_json([file_entry(101, filename, archive)])
    file_server.files["/api/access/datafile/101"] = archive
    before = _files_under(root)
    code = main(["download", "swan-sf", "--partitions", "1", "--dest", str(dest), "--base-url", file_server.url,
                 "--keep-archives", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "expected a plain file name" in err and "Traceback" not in err
    assert _files_under(root) == before  # nothing written anywhere, in dest or outside it
    assert not os.path.exists("/tmp/partition1_instances.tar.gz")
    assert not [s for s in file_server.seen if s.path.startswith("/api/access")]  # nothing even downloaded


@pytest.mark.parametrize("name", ["partition1_instances.tar.gz", "partition1_instances.tar.gz.part"])
def test_a_link_in_dest_is_not_written_through(file_server, sandbox, name):
    root, dest = sandbox
    outside = root / "victim.txt"
    outside.write_text("keep me")
    archive, _ = swan_sf_tar(1)
    file_server.json[DATASET_PATH] = dataset_json([file_entry(101, "partition1_instances.tar.gz", archive)])
    file_server.files["/api/access/datafile/101"] = archive
    (dest / name).symlink_to(outside)
    with pytest.raises(DownloadError, match="is a symbolic link"):
        download_swan_sf(dest, [1], base_url=file_server.url, **FAST)
    assert outside.read_text() == "keep me"
    with pytest.raises(DownloadError, match="is a symbolic link"):  # the transfer itself refuses too
        download_file(file_server.url + "/api/access/datafile/101", dest / "partition1_instances.tar.gz", **FAST)
    assert outside.read_text() == "keep me"


def _zeros_tar_gz(n: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("partition1/NF/big.csv")
        info.size = n
        tar.addfile(info, io.BytesIO(bytes(n)))
    return buffer.getvalue()


def test_a_tar_bomb_from_the_server_is_refused_and_removed(file_server, sandbox, capsys):
    root, dest = sandbox
    archive = _zeros_tar_gz(64 << 20)
    assert len(archive) < (64 << 20) / 500
    file_server.json[DATASET_PATH] = dataset_json([file_entry(101, "partition1_instances.tar.gz", archive)])
    file_server.files["/api/access/datafile/101"] = archive
    code = main(["download", "swan-sf", "--partitions", "1", "--dest", str(dest), "--base-url", file_server.url,
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "expected at most 100 bytes out per compressed byte" in err and "Traceback" not in err
    # the archive stays (it matched the published checksum); nothing extracted is left
    assert _files_under(dest) == ["partition1_instances.tar.gz"]
    # the same archive within raised limits extracts
    result = extract_tar(dest / "partition1_instances.tar.gz", dest, progress=False,
                         limits=ReadLimits(max_ratio=2000))
    assert result.n_files == 1 and (dest / "partition1" / "NF" / "big.csv").stat().st_size == 64 << 20


def test_tar_members_beyond_the_member_limit_are_refused(tmp_path):
    archive, _ = swan_sf_tar(2)
    (tmp_path / "p2.tar.gz").write_bytes(archive)
    with pytest.raises(LimitError, match="max_member_bytes"):
        extract_tar(tmp_path / "p2.tar.gz", tmp_path / "out", progress=False, limits=ReadLimits(max_member_bytes=100))
    assert _files_under(tmp_path / "out") == []


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_zip_bomb_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "bundle.zip").write_bytes(_zip_bytes({"a.json": b"{}\n", "fold1Training.json": bytes(64 << 20)}))
    with pytest.raises(LimitError, match=r"bundle\.zip: expected at most 100 bytes out per compressed byte"):
        extract_zip(tmp_path / "bundle.zip", tmp_path / "out", progress=False)
    assert _files_under(tmp_path / "out") == []


def test_a_failed_zip_extraction_removes_what_it_wrote(tmp_path):
    data = _zip_bytes({"first/a.json": b"{}\n" * 1000, "second/b.json": b"{}\n" * 1000})
    # damage the second member's compressed bytes: the first is written, then the CRC fails
    second = data.rfind(b"second/b.json", 0, data.find(b"PK\x01\x02"))
    broken = bytearray(data)
    broken[second + 20] ^= 0xFF
    (tmp_path / "x.zip").write_bytes(bytes(broken))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    with pytest.raises(Exception) as info:
        extract_zip(tmp_path / "x.zip", tmp_path / "out", progress=False)
    assert "complete zip" in str(info.value)
    assert _files_under(tmp_path / "out") == ["mine.txt"]


def test_zips_nested_deeper_than_a_kaggle_download_are_refused(tmp_path):
    inner = _zip_bytes({"fold1Training.json": b"{}\n"})
    for level in range(MAX_NESTED_ARCHIVES):
        inner = _zip_bytes({f"level{level}/next.zip": inner})
    (tmp_path / "bundle.zip").write_bytes(inner)
    with pytest.raises(LimitError, match="levels of zips inside zips"):
        unpack_kaggle_archives(tmp_path, progress=False)
    # two levels, as Kaggle ships them, unpack
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "bundle.zip").write_bytes(_zip_bytes({"fold1Training.json.zip": _zip_bytes(
        {"fold1Training.json": b"{}\n"})}))
    unpack_kaggle_archives(tmp_path / "ok", progress=False)
    assert (tmp_path / "ok" / "fold1Training.json").read_bytes() == b"{}\n"
