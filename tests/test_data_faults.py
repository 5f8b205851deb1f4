"""Faults that used to end in a traceback: one paragraph and exit 2, or a counted skip
(issue 16, item 6), and writers racing for one --out.

Deeply nested JSON raised RecursionError (even with --on-error skip), a truncated .gz
EOFError (ingest and summary), a read-only or full output directory OSError.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import signal
import subprocess
import sys

import pytest

from flareseq.cli import main
from flareseq.cli.data import reports_os_errors
from flareseq.data import load_dataset
from flareseq.data.ingest import ingest
from flareseq.data.kaggle import read_kaggle
from flareseq.data.skips import SkipLog
from flareseq.data.store import StoreWriter, read_store, verify_store, write_store
from flareseq.data.synthetic import synthetic_dataset, write_synthetic_kaggle
from flareseq.errors import DataFormatError, FlareseqError, StoreError

NESTED = b'{"id": 2, "values": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"


@pytest.fixture
def nested_file(tmp_path):
    good = write_synthetic_kaggle(tmp_path / "good.jsonl", 3, seed=4).read_bytes().splitlines()
    path = tmp_path / "fold1Training.json"
    path.write_bytes(b"\n".join([good[0], NESTED, good[1], good[2]]) + b"\n")
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_deeply_nested_json_is_a_bad_record(nested_file, tmp_path, workers, capsys):
    with pytest.raises(DataFormatError, match=r"line 2: expected one JSON object per line.*nested deeper"):
        ingest(nested_file, tmp_path / "raise", workers=workers)
    skips = SkipLog()
    assert read_kaggle(nested_file, on_error="skip", skips=skips).n_samples == 3
    assert [(r.line, r.field) for r in skips.records] == [(2, None)]
    out = tmp_path / f"skip{workers}"
    assert main(["ingest", str(nested_file), "--out", str(out), "--on-error", "skip", "--workers", str(workers),
                 "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["n_samples"] == 3 and manifest["n_skipped"] == 1
    assert manifest["sources"][0]["n_records"] == 4
    assert "nested deeper" in (out / "skipped.tsv").read_text()
    capsys.readouterr()


@pytest.mark.parametrize("first", [b"0", b"[1, 2]", b'"text"', b"null"])
def test_a_first_line_that_is_not_an_object_is_a_bad_record(tmp_path, first):
    """Found by the property tests: the fast path's layout step raised TypeError on it."""
    good = write_synthetic_kaggle(tmp_path / "good.jsonl", 2, seed=3).read_bytes()
    path = tmp_path / "k.jsonl"
    path.write_bytes(first + b"\n" + good)
    with pytest.raises(DataFormatError, match=r"k\.jsonl, line 1: expected a JSON object per line"):
        read_kaggle(path)
    skips = SkipLog()
    assert read_kaggle(path, on_error="skip", skips=skips).n_samples == 2 and len(skips) == 1


def test_a_truncated_gzip_is_one_paragraph_in_ingest_and_summary(tmp_path, capsys):
    raw = write_synthetic_kaggle(tmp_path / "x.jsonl", 20, seed=1).read_bytes()
    packed = gzip.compress(raw)
    (tmp_path / "fold1Training.json.gz").write_bytes(packed[: len(packed) // 2])
    for argv in (["ingest", str(tmp_path / "fold1Training.json.gz"), "--out", str(tmp_path / "s")],
                 ["summary", str(tmp_path / "fold1Training.json.gz")]):
        assert main([*argv, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert "fold1Training.json.gz: expected a complete, undamaged compressed stream, found EOFError" in err
        assert "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "s").exists()
    (tmp_path / "fake.json.gz").write_bytes(raw)  # not gzip at all
    with pytest.raises(DataFormatError, match=r"expected gzip data \(as the file name says\)"):
        load_dataset(tmp_path / "fake.json.gz")


def _read_only_folder(tmp_path):
    folder = tmp_path / "readonly"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return folder, lambda: folder.chmod(0o755)
    # root ignores permissions: a read-only file system is the only way to refuse it
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"running as root and cannot mount a read-only tmpfs: {done.stderr.decode().strip()}")
    return folder, lambda: subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_output_folder_is_one_paragraph(tmp_path, capsys):
    source = write_synthetic_kaggle(tmp_path / "x.jsonl", 5, seed=1)
    folder, restore = _read_only_folder(tmp_path)
    try:
        assert main(["ingest", str(source), "--out", str(folder / "store"), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"cannot write the store {folder / 'store'}: " in err and "Traceback" not in err
        assert "choose another --out" in err
        assert os.listdir(folder) == []
    finally:
        restore()


def test_a_full_disk_is_one_paragraph_and_leaves_nothing(tmp_path):
    """A file-size limit (RLIMIT_FSIZE, honoured by root too) fails the part's write as a
    full disk does; the partial store is removed."""
    source = write_synthetic_kaggle(tmp_path / "x.jsonl", 400, seed=1)
    out = tmp_path / "out"
    out.mkdir()

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failing write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 10, 256 << 10))

    done = subprocess.run([sys.executable, "-m", "flareseq", "ingest", str(source), "--out", str(out / "store"),
                           "--no-progress", "--workers", "1"], capture_output=True, text=True,
                          preexec_fn=limit_file_size, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"flareseq ingest: error: cannot write the store {out / 'store'}: ")
    assert "File too large" in done.stderr and "Traceback" not in done.stderr
    assert os.listdir(out) == []  # no hidden partial store keeps the space


def test_the_first_of_two_writers_keeps_its_store(tmp_path):
    """Two ingests to one --out: the one that finishes second used to replace the first's
    store even without --overwrite; now it is refused and leaves nothing."""
    data = synthetic_dataset(30, seed=2)
    path = tmp_path / "store"
    first = StoreWriter(path, feature_names=data.feature_names, n_timesteps=60).__enter__()
    second = StoreWriter(path, feature_names=data.feature_names, n_timesteps=60).__enter__()
    first.write(data.subset(slice(0, 10)))
    second.write(data.subset(slice(10, 30)))
    first.__exit__(None, None, None)  # the first finishes while the second is still writing
    with pytest.raises(StoreError, match="was created by another process while this ingest ran"):
        second.__exit__(None, None, None)
    assert read_store(path).n_samples == 10 and verify_store(path, full=True).ok
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_operating_system_errors_left_over_are_one_paragraph():
    @reports_os_errors
    def run(args):
        raise PermissionError(13, "Permission denied", "/data/fold1Training.json")

    with pytest.raises(FlareseqError, match=r"^/data/fold1Training.json: Permission denied\. Check that the path"):
        run(None)


def test_write_store_is_unchanged_for_good_input(tmp_path):
    data = synthetic_dataset(12, seed=9)
    manifest = write_store(data, tmp_path / "s")
    assert manifest["counts"]["n_samples"] == 12 and verify_store(tmp_path / "s").ok
