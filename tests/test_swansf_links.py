"""SWAN-SF folders and archives: regular files only (issue 16, items 2 and 10).

A sample-named link to ``/dev/zero`` used to be read until the memory ran out; one to a file
outside the folder put that file's first line into the error and into skipped.tsv.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile

import pytest

from flareseq.cli import main
from flareseq.data import detect_format, load_dataset
from flareseq.data.ingest import ingest
from flareseq.data.skips import SkipLog
from flareseq.data.swansf import (
    format_sample_name,
    parse_swansf_files,
    read_swansf,
    write_swansf,
)
from flareseq.data.synthetic import synthetic_dataset
from flareseq.errors import DataFormatError

SECRET = "s3cr3t-line-that-must-never-appear"


def _name(i: int) -> str:
    return format_sample_name("NF", str(900 + i), f"2015-01-0{1 + i}T00:00", f"2015-01-0{1 + i}T11:48")


@pytest.fixture
def folder(tmp_path):
    """A partition folder with 4 real-looking samples, and a secret file beside it."""
    write_swansf(synthetic_dataset(4, seed=3), tmp_path / "swan")
    (tmp_path / "secret.csv").write_text(SECRET + "\tx\n")
    return tmp_path / "swan"


def _partition(folder):
    return next(folder.glob("partition*"))


@pytest.mark.parametrize("target", ["/dev/zero", "secret"])
def test_a_link_leaving_the_folder_is_never_read(folder, target, capsys):
    target = str(folder.parent / "secret.csv") if target == "secret" else target
    (_partition(folder) / _name(0)).symlink_to(target)
    with pytest.raises(DataFormatError, match="found a symbolic link to a path outside the folder being read") as info:
        read_swansf(folder)
    assert SECRET not in str(info.value)
    out = folder.parent / "store"
    assert main(["ingest", str(folder), "--out", str(out), "--on-error", "skip", "--no-progress"]) == 0
    captured = capsys.readouterr()
    skipped = (out / "skipped.tsv").read_text()
    assert _name(0) in skipped and "symbolic link to a path outside" in skipped
    assert SECRET not in skipped + captured.out + captured.err
    assert load_dataset(out).n_samples == 4  # the 4 regular files; the link counted as skipped
    assert ": 4 read, 1 skipped of 5 records" in captured.out


def test_a_link_inside_the_folder_is_read(folder):
    first = sorted(_partition(folder).glob("*.csv"))[0]
    (folder / "links").mkdir()
    (folder / "links" / first.name).symlink_to(first)
    dataset = read_swansf(folder)
    assert dataset.n_samples == 5 and list(dataset.ids).count(first.name) == 2


def test_fifos_and_linked_folders_do_not_hang_or_leak(folder):
    os.mkfifo(_partition(folder) / _name(1))  # opening it for reading would block forever
    (folder / "elsewhere").symlink_to(folder.parent, target_is_directory=True)  # not descended into
    skips = SkipLog()
    dataset = read_swansf(folder, on_error="skip", skips=skips)
    assert dataset.n_samples == 4
    assert [r.reason for r in skips.records] == ["expected a regular sample file, found a device, pipe, socket or folder"]


def test_the_worker_path_reads_regular_files_only(folder):
    """Large folders are parsed by worker processes (parse_swansf_files): same rules."""
    link = _partition(folder) / _name(2)
    link.symlink_to(folder.parent / "secret.csv")
    files = sorted(str(p) for p in folder.rglob("*.csv"))
    dataset, skipped = parse_swansf_files(files, "swan", "skip", 60, str(folder))
    assert dataset.n_samples == 4 and [s.path for s in skipped] == [str(link)]
    assert SECRET not in skipped[0].reason
    with pytest.raises(DataFormatError, match="symbolic link"):
        parse_swansf_files(files, "swan", "raise", 60, str(folder))


def test_a_folder_of_only_links_is_still_recognised_and_refused(tmp_path):
    (tmp_path / "swan").mkdir()
    (tmp_path / "swan" / _name(0)).symlink_to("/etc/hostname")
    assert detect_format(tmp_path / "swan") == "swansf"
    with pytest.raises(DataFormatError, match="symbolic link"):
        ingest(tmp_path / "swan", tmp_path / "store")


def test_archive_links_and_devices_are_bad_records(tmp_path):
    write_swansf(synthetic_dataset(2, seed=4), tmp_path / "src")
    files = sorted((tmp_path / "src").rglob("*.csv"))
    with tarfile.open(tmp_path / "p.tar.gz", "w:gz") as tar:
        for f in files:
            tar.add(f, arcname=f"partition1/{f.name}")
        link = tarfile.TarInfo(f"partition1/{_name(3)}")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        device = tarfile.TarInfo(f"partition1/{_name(4)}")
        device.type, device.devmajor, device.devminor = tarfile.CHRTYPE, 1, 5
        tar.addfile(device)
    with zipfile.ZipFile(tmp_path / "p.zip", "w") as archive:
        for f in files:
            archive.write(f, f"partition1/{f.name}")
        info = zipfile.ZipInfo(f"partition1/{_name(3)}")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    for path in (tmp_path / "p.tar.gz", tmp_path / "p.zip"):
        skips = SkipLog()
        assert read_swansf(path, on_error="skip", skips=skips).n_samples == 2
        assert all("expected a regular sample file, found a link" in r.reason for r in skips.records)
        assert len(skips) == (2 if path.suffix == ".gz" else 1)
        with pytest.raises(DataFormatError, match="a link, folder or special file"):
            read_swansf(path)


def test_a_truncated_tar_is_one_paragraph(tmp_path, capsys):
    write_swansf(synthetic_dataset(3, seed=5), tmp_path / "src")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(tmp_path / "src", arcname="partition1")
    (tmp_path / "p.tar.gz").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    assert main(["ingest", str(tmp_path / "p.tar.gz"), "--out", str(tmp_path / "s"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "p.tar.gz: expected a complete, undamaged compressed stream" in err and "Traceback" not in err


def test_the_spark_engine_refuses_links_before_spark_opens_them(folder):
    from flareseq.data.spark.swansf import check_regular_files
    from flareseq.errors import FlareseqError

    check_regular_files(folder)  # regular files only: fine
    (_partition(folder) / _name(0)).symlink_to("/dev/zero")
    with pytest.raises(FlareseqError, match="1 .csv entries are symbolic links or special files"):
        check_regular_files(folder)
