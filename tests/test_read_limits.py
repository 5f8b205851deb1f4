"""Archive bombs and endless inputs are refused in bounded memory, with one paragraph (issue 16, item 2).

The bombs here expand 64 MiB of zeros (~1,000:1): four times the point where the ratio is
checked, small enough to build in a fraction of a second. Before the limits, each of them
was read (the zip member whole, the line gathered whole).
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zipfile

import pytest

from flareseq.cli import main
from flareseq.data import load_dataset
from flareseq.data.ingest import ingest
from flareseq.data.kaggle import iter_line_chunks
from flareseq.data.limits import LIMITS_ENV, LimitError, ReadLimits, current_limits
from flareseq.data.swansf import format_sample_name, read_swansf
from flareseq.data.synthetic import write_synthetic_kaggle
from flareseq.errors import ConfigError, DataFormatError

BOMB_BYTES = 64 << 20
SAMPLE = format_sample_name("NF", "1", "2014-01-01T00:00", "2014-01-01T11:48")


def _zeros_zip(path, member: str, n: int = BOMB_BYTES) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, archive.open(member, "w") as out:
        block = b"\0" * (1 << 20)
        for _ in range(n >> 20):
            out.write(block)


def _zeros_tar_gz(path, member: str, n: int = BOMB_BYTES) -> None:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = n
        tar.addfile(info, io.BytesIO(bytes(n)))


def test_a_zip_bomb_of_json_is_refused_before_it_is_read(tmp_path, capsys):
    bomb = tmp_path / "fold1Training.zip"
    _zeros_zip(bomb, "fold1Training.json")
    assert bomb.stat().st_size < BOMB_BYTES / 500
    assert main(["ingest", str(bomb), "--out", str(tmp_path / "store"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "fold1Training.zip:fold1Training.json: expected at most 100 bytes out per compressed byte" in err
    assert "--limit max_ratio=VALUE" in err and "Traceback" not in err and len(err) < 600
    assert not (tmp_path / "store").exists()


def test_a_gzip_bomb_stops_once_the_ratio_is_passed(tmp_path):
    bomb = tmp_path / "fold1Training.json.gz"
    bomb.write_bytes(gzip.compress(bytes(BOMB_BYTES), compresslevel=1))
    with pytest.raises(LimitError, match=r"json\.gz: expected at most 100 bytes out per compressed byte"):
        load_dataset(bomb)
    # a genuine input past the default is readable with a raised limit
    raised = ReadLimits(max_ratio=2000, max_line_bytes=128 << 20)
    with pytest.raises(DataFormatError, match="line 1: expected one JSON object per line") as info:
        ingest(bomb, tmp_path / "s", limits=raised)
    assert not isinstance(info.value, LimitError)


def test_a_line_without_end_is_not_gathered_whole(tmp_path):
    endless = io.BytesIO(b'{"id": 1, ' + b" " * (3 << 20))
    chunks = iter_line_chunks(endless, 1 << 20, max_line_bytes=2 << 20, name="x.json")
    with pytest.raises(LimitError, match=r"x\.json, line 1: expected a JSON line of at most 2,097,152 bytes"):
        list(chunks)
    good = io.BytesIO(b"a\nbb\n" + b"c" * 100)
    assert list(iter_line_chunks(good, 4, max_line_bytes=200)) == [b"a\n", b"bb\n", b"c" * 100]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_plain_file_without_line_breaks_is_refused(tmp_path, workers):
    path = tmp_path / "big.jsonl"
    write_synthetic_kaggle(path, 2, seed=1)
    with path.open("ab") as handle:
        handle.write(b"x" * (3 << 20))  # a third "line" of 3 MB
    with pytest.raises(DataFormatError, match="max_line_bytes"):
        ingest(path, tmp_path / "store", workers=workers, chunk_bytes=1 << 20,
               limits=ReadLimits(max_line_bytes=2 << 20))
    assert not (tmp_path / "store").exists()


def test_swan_sf_tar_bomb_is_refused_even_when_its_member_is_skipped(tmp_path, capsys):
    bomb = tmp_path / "partition1.tar.gz"
    _zeros_tar_gz(bomb, f"partition1/NF/{SAMPLE}")
    # the member itself is too large for a sample: a bad record under --on-error raise
    with pytest.raises(LimitError, match=r"expected a sample file of at most 16,777,216 bytes.*67,108,864"):
        read_swansf(bomb)
    # skipping it still decompresses the archive past it: the ratio stops that
    assert main(["ingest", str(bomb), "--out", str(tmp_path / "store"), "--on-error", "skip", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "partition1.tar.gz: expected at most 100 bytes out per compressed byte" in err
    assert not (tmp_path / "store").exists()


def test_swan_sf_zip_bomb_is_refused_by_its_declared_sizes(tmp_path):
    bomb = tmp_path / "partition2.zip"
    _zeros_zip(bomb, f"partition2/NF/{SAMPLE}")
    with pytest.raises(LimitError, match=r"sample file of at most"):
        read_swansf(bomb)
    with pytest.raises(LimitError, match=r"partition2\.zip:partition2/NF/.*: expected at most 100 bytes out"):
        read_swansf(bomb, on_error="skip", limits=ReadLimits(max_sample_bytes=1 << 30))


def test_limits_from_settings_environment_and_cli(tmp_path, monkeypatch, capsys):
    limits = ReadLimits().with_settings("max_ratio=500, max_member_bytes=2G,max_line_bytes=1.5M")
    assert (limits.max_ratio, limits.max_member_bytes, limits.max_line_bytes) == (500.0, 2 << 30, 3 << 19)
    for bad, match in [("max_ratio=0.5", "max_ratio expects a number >= 1"), ("size=1", "unknown limit 'size'"),
                       ("max_total_bytes=lots", "expects a positive size"), ("max_ratio", "NAME=VALUE")]:
        with pytest.raises(ConfigError, match=match):
            ReadLimits().with_settings(bad)
    monkeypatch.setenv(LIMITS_ENV, "max_ratio=3000")
    assert current_limits().max_ratio == 3000.0
    bomb = tmp_path / "fold1Training.json.gz"
    bomb.write_bytes(gzip.compress(bytes(BOMB_BYTES), compresslevel=1))
    # the environment allows the ratio; --limit on the command line tightens it again
    code = main(["summary", str(bomb), "--no-progress", "--limit", "max_ratio=50"])
    assert code == 2 and "at most 50 bytes out per compressed byte" in capsys.readouterr().err
    monkeypatch.setenv(LIMITS_ENV, "max_ratio=nope")
    with pytest.raises(ConfigError, match=f"\\${LIMITS_ENV}: limits: max_ratio expects"):
        current_limits()


def test_real_kaggle_layout_reads_under_the_default_limits(shared_data, tmp_path):
    """The real sample in a zip and a gzip: real data is nowhere near the limits."""
    source = shared_data / "swan-sf-samples" / "bigdatacup_layout.jsonl"
    with zipfile.ZipFile(tmp_path / "real.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(source, "fold1Training.json")
    (tmp_path / "real.jsonl.gz").write_bytes(gzip.compress(source.read_bytes()))
    plain = load_dataset(source)
    for path in (tmp_path / "real.zip", tmp_path / "real.jsonl.gz"):
        assert list(load_dataset(path).ids) == list(plain.ids)
    assert os.path.getsize(source) / os.path.getsize(tmp_path / "real.jsonl.gz") < 5  # far below max_ratio
