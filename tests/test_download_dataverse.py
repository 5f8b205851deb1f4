"""SWAN-SF from Dataverse: file listing, partition mapping, extraction, end to end on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from flareseq.cli import main
from flareseq.data.download.dataverse import (
    DATAVERSE_URL_ENV,
    DEFAULT_DATAVERSE_URL,
    MARKER_DIR,
    SWAN_SF_DOI,
    DataverseFile,
    download_swan_sf,
    extract_tar,
    list_dataset_files,
    parse_dataset_files,
    resolve_base_url,
    select_partition_files,
)
from flareseq.data.download.http import Checksum
from flareseq.errors import ConfigError, DataFormatError, DownloadError, FlareseqWarning

FAST = dict(retries=2, backoff=0.01, timeout=5, progress=False)
DATASET_PATH = f"/api/datasets/:persistentId/?persistentId={SWAN_SF_DOI}"
HEADER = "Timestamp\tTOTUSJH\tTOTBSQ\tR_VALUE\n"


def _csv(i: int) -> bytes:
    rows = "".join(f"2014-01-0{1 + i % 9} 00:{m:02d}:00\t{i + m}.5\t{m * 2}.0\t{0.1 * m:.1f}\n" for m in range(0, 60, 12))
    return (HEADER + rows).encode()


def swan_sf_tar(partition: int, extra: list[tuple[tarfile.TarInfo, bytes | None]] = ()) -> tuple[bytes, dict[str, bytes]]:
    """A small partition archive laid out as SWAN-SF's: partitionN/{FL,NF}/lab[...].csv."""
    members = {
        f"partition{partition}/FL/lab[M]1.5@7571_id[3686]_st[2014-02-03T17:00:00]_et[2014-02-04T04:48:00].csv": _csv(1),
        f"partition{partition}/FL/lab[X]1.0@7000_id[3500]_st[2014-02-01T00:00:00]_et[2014-02-01T11:48:00].csv": _csv(2),
        f"partition{partition}/NF/lab[NF]0.0@7473_id[3648]_st[2014-01-22T23:12:00]_et[2014-01-23T11:00:00].csv": _csv(3),
        f"partition{partition}/NF/lab[C]1.0@7151_id[3415]_st[2013-11-27T19:00:00]_et[2013-11-28T06:48:00].csv": _csv(4),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for folder in (f"partition{partition}", f"partition{partition}/FL", f"partition{partition}/NF"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue(), members


def dataset_json(entries: list[dict]) -> dict:
    return {"status": "OK", "data": {"id": 1, "latestVersion": {"versionNumber": 1, "files": entries}}}


def file_entry(file_id: int, filename: str, content: bytes, *, old_md5: bool = False) -> dict:
    md5 = hashlib.md5(content).hexdigest()
    data_file = {"id": file_id, "filename": filename, "filesize": len(content)}
    data_file.update({"md5": md5} if old_md5 else {"checksum": {"type": "MD5", "value": md5}})
    return {"label": filename, "restricted": False, "dataFile": data_file}


def publish(server, partitions=(1, 2)) -> dict[int, dict[str, bytes]]:
    """Serve a Dataverse-like dataset: the listing JSON and one archive per partition."""
    entries, contents = [], {}
    for p in partitions:
        archive, members = swan_sf_tar(p)
        entries.append(file_entry(100 + p, f"partition{p}_instances.tar.gz", archive))
        server.files[f"/api/access/datafile/{100 + p}"] = archive
        contents[p] = members
    entries.append(file_entry(99, "README.txt", b"read me", old_md5=True))
    server.json[DATASET_PATH] = dataset_json(entries)
    return contents


# -- listing and mapping ------------------------------------------------------------------


def test_lists_the_dataset_files_from_the_native_api(file_server):
    publish(file_server)
    files = list_dataset_files(base_url=file_server.url, **{k: FAST[k] for k in ("retries", "backoff", "timeout")})
    by_name = {f.filename: f for f in files}
    assert set(by_name) == {"partition1_instances.tar.gz", "partition2_instances.tar.gz", "README.txt"}
    archive = file_server.files["/api/access/datafile/101"]
    assert by_name["partition1_instances.tar.gz"] == DataverseFile(
        101, "partition1_instances.tar.gz", len(archive), Checksum("MD5", hashlib.md5(archive).hexdigest())
    )
    assert by_name["README.txt"].checksum == Checksum("MD5", hashlib.md5(b"read me").hexdigest())  # "md5" field
    assert by_name["README.txt"].access_url("http://h") == "http://h/api/access/datafile/99"


def test_unknown_doi_names_the_server_message(file_server):
    with pytest.raises(DownloadError, match=r"HTTP 404.*not found.*Check the DOI"):
        list_dataset_files("doi:10.0/NOPE", base_url=file_server.url, retries=0)


@pytest.mark.parametrize(
    "document, field",
    [
        ({"status": "ERROR", "message": "Dataset not found"}, "status"),
        ({"status": "OK", "data": {"versions": []}}, "data.latestVersion.files"),
        (dataset_json([{"dataFile": {"filename": "x.tar.gz"}}]), "data.latestVersion.files[0].dataFile"),
    ],
)
def test_unexpected_json_names_the_field(document, field):
    with pytest.raises(DataFormatError) as info:
        parse_dataset_files(document, source="http://h/api/datasets")
    assert info.value.field == field and info.value.path == "http://h/api/datasets"


def test_partitions_map_to_archives_by_name():
    files = [DataverseFile(i, name, 1, None) for i, name in enumerate(
        ["partition2_instances.tar.gz", "Partition1_Instances.TAR.GZ", "partition3.tgz", "partition1_readme.txt"]
    )]
    chosen = select_partition_files(files, [1, 2, 3, 1])
    assert {p: f.id for p, f in chosen.items()} == {1: 1, 2: 0, 3: 2}


def test_missing_partition_lists_what_the_dataset_has():
    files = [DataverseFile(1, "partition1_instances.tar.gz", 1, None), DataverseFile(2, "notes.pdf", 1, None)]
    with pytest.raises(DownloadError, match=r"partition 4: expected one archive.*found no archive.*"
                       r"The dataset has: notes\.pdf, partition1_instances\.tar\.gz"):
        select_partition_files(files, [1, 4])


def test_partition_numbers_are_checked():
    with pytest.raises(ConfigError, match=r"expected numbers among \[1, 2, 3, 4, 5\], found \[0, 6\]"):
        select_partition_files([], [0, 1, 6])


def test_base_url_from_argument_then_environment_then_default(monkeypatch):
    monkeypatch.delenv(DATAVERSE_URL_ENV, raising=False)
    assert resolve_base_url() == DEFAULT_DATAVERSE_URL
    monkeypatch.setenv(DATAVERSE_URL_ENV, "http://mirror.example/")
    assert resolve_base_url() == "http://mirror.example"
    assert resolve_base_url("https://other.example") == "https://other.example"
    with pytest.raises(ConfigError, match=r"--base-url: expected an http\(s\) URL.*found 'dataverse\.harvard\.edu'"):
        resolve_base_url("dataverse.harvard.edu")
    monkeypatch.setenv(DATAVERSE_URL_ENV, "ftp://x")
    with pytest.raises(ConfigError, match=DATAVERSE_URL_ENV):
        resolve_base_url()


# -- extraction -----------------------------------------------------------------------------


def test_extracts_a_swan_sf_layout(tmp_path):
    archive, members = swan_sf_tar(3)
    (tmp_path / "p3.tar.gz").write_bytes(archive)
    result = extract_tar(tmp_path / "p3.tar.gz", tmp_path / "out", progress=False)
    assert result.n_files == 4 and result.paths == (tmp_path / "out" / "partition3",)
    for name, data in members.items():
        assert (tmp_path / "out" / name).read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["partition3"]  # no staging left


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 4
    return info


@pytest.mark.parametrize(
    "extra, match",
    [
        ([(_file("../escaped.csv"), b"evil")], r"leaves the destination folder \('\.\./escaped\.csv'\)"),
        ([(_file("/tmp/abs.csv"), b"evil")], "leaves the destination folder"),
        ([(_link("partition1/link", "../../escaped.csv"), None)], "leaves the destination folder"),
        ([(_link("partition1/hard", "../escaped.csv", tarfile.LNKTYPE), None)], "leaves the destination folder"),
        ([(_link("partition1/fifo", "", tarfile.FIFOTYPE), None)], "expected a regular file or folder"),
    ],
)
def test_extraction_refuses_members_that_escape(tmp_path, extra, match):
    archive, _ = swan_sf_tar(1, extra)
    (tmp_path / "p1.tar.gz").write_bytes(archive)
    (tmp_path / "out").mkdir()
    with pytest.raises(DataFormatError, match=match):
        extract_tar(tmp_path / "p1.tar.gz", tmp_path / "out", progress=False)
    assert list((tmp_path / "out").iterdir()) == []  # nothing half-extracted left in place
    assert not (tmp_path / "escaped.csv").exists()


def test_truncated_archive_is_a_format_error(tmp_path):
    archive, _ = swan_sf_tar(1)
    (tmp_path / "p1.tar.gz").write_bytes(archive[: len(archive) // 2])
    with pytest.raises(DataFormatError, match=r"p1\.tar\.gz: expected a complete tar.*Delete the archive"):
        extract_tar(tmp_path / "p1.tar.gz", tmp_path / "out", progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_extraction_does_not_overwrite_an_existing_folder(tmp_path):
    archive, _ = swan_sf_tar(1)
    (tmp_path / "p1.tar.gz").write_bytes(archive)
    (tmp_path / "out" / "partition1").mkdir(parents=True)
    (tmp_path / "out" / "partition1" / "mine.txt").write_text("keep")
    with pytest.raises(DownloadError, match=r"partition1 already exists.*Remove it"):
        extract_tar(tmp_path / "p1.tar.gz", tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "partition1" / "mine.txt").read_text() == "keep"


# -- end to end ------------------------------------------------------------------------------


def test_download_swan_sf_end_to_end_with_a_dropped_connection(file_server, tmp_path):
    contents = publish(file_server)
    file_server.drops["/api/access/datafile/102"] = [300]
    results = download_swan_sf(tmp_path, [1, 2], base_url=file_server.url, **FAST)
    assert {p: r.n_files for p, r in results.items()} == {1: 4, 2: 4}
    for members in contents.values():
        for name, data in members.items():
            assert (tmp_path / name).read_bytes() == data
    assert ("bytes=300-", 206) in [(s.range, s.status) for s in file_server.requests_for("/api/access/datafile/102")]
    assert not list(tmp_path.glob("*.tar.gz*"))  # archives removed after extraction
    # A rerun finds both partitions done: only the listing is fetched.
    n_before = len(file_server.seen)
    again = download_swan_sf(tmp_path, [1, 2], base_url=file_server.url, **FAST)
    assert again == results
    assert [s.path for s in file_server.seen[n_before:]] == ["/api/datasets/:persistentId/"]


def test_download_swan_sf_checksum_failure_leaves_nothing_complete(file_server, tmp_path):
    publish(file_server, partitions=(1,))
    file_server.corrupt.add("/api/access/datafile/101")
    with pytest.raises(DownloadError, match=r"partition1_instances\.tar\.gz: checksum mismatch: the publisher lists MD5"):
        download_swan_sf(tmp_path, [1], base_url=file_server.url, **FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_download_swan_sf_keeps_archives_on_request(file_server, tmp_path):
    publish(file_server, partitions=(1,))
    download_swan_sf(tmp_path, [1], base_url=file_server.url, keep_archives=True, **FAST)
    assert (tmp_path / "partition1_instances.tar.gz").read_bytes() == file_server.files["/api/access/datafile/101"]
    marker = json.loads((tmp_path / MARKER_DIR / "partition1_instances.tar.gz.json").read_text())
    assert marker["paths"] == ["partition1"] and marker["n_files"] == 4


def test_cli_swan_sf_uses_the_environment_base_url(file_server, tmp_path, monkeypatch, capsys):
    publish(file_server, partitions=(1, 2))
    monkeypatch.setenv(DATAVERSE_URL_ENV, file_server.url)
    rc = main(["download", "swan-sf", "--partitions", "2", "--dest", str(tmp_path), "--no-progress"])
    assert rc == 0
    assert "partition 2: 4 files in" in capsys.readouterr().out
    assert (tmp_path / "partition2" / "NF").is_dir() and not (tmp_path / "partition1").exists()


def test_cli_reports_errors_without_traceback(file_server, tmp_path, capsys):
    publish(file_server, partitions=(1,))
    rc = main(["download", "swan-sf", "--partitions", "3", "--dest", str(tmp_path),
               "--base-url", file_server.url, "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("flareseq download: error: partition 3: expected one archive")
    assert "Traceback" not in err


@pytest.mark.realdata
def test_real_swan_sf_samples_survive_download_and_extraction(swan_samples, file_server, tmp_path):
    """The 12 real SWAN-SF sample files, packed as a partition archive, come out byte-identical
    (their names hold brackets, '@' and ':', which must pass through tar and the file system)."""
    samples = sorted((swan_samples / "mvts").glob("*.csv"))
    assert len(samples) == 12
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in samples:
            folder = "FL" if path.name.startswith(("lab[M]", "lab[X]")) else "NF"
            tar.add(path, arcname=f"partition4/{folder}/{path.name}")
    archive = buffer.getvalue()
    file_server.files["/api/access/datafile/7"] = archive
    file_server.json[DATASET_PATH] = dataset_json([file_entry(7, "partition4_instances.tar.gz", archive)])
    file_server.drops["/api/access/datafile/7"] = [len(archive) // 2]
    result = download_swan_sf(tmp_path, [4], base_url=file_server.url, **FAST)
    assert result[4].n_files == 12
    extracted = sorted((tmp_path / "partition4").rglob("*.csv"))
    assert sorted(p.name for p in extracted) == sorted(p.name for p in samples)
    assert len(list((tmp_path / "partition4" / "FL").iterdir())) == 4  # 4 positives, as the README says
    for path in samples:
        match = next(p for p in extracted if p.name == path.name)
        assert match.read_bytes() == path.read_bytes()


def test_a_file_without_published_checksum_warns_and_is_size_checked(file_server, tmp_path):
    archive, _ = swan_sf_tar(5)
    entry = {"dataFile": {"id": 5, "filename": "partition5_instances.tar.gz", "filesize": len(archive)}}
    file_server.json[DATASET_PATH] = dataset_json([entry])
    file_server.files["/api/access/datafile/5"] = archive
    with pytest.warns(FlareseqWarning, match=r"partition5_instances\.tar\.gz: the dataset publishes no checksum"):
        result = download_swan_sf(tmp_path, [5], base_url=file_server.url, **FAST)
    assert result[5].n_files == 4
