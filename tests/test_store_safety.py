"""`--overwrite` and interrupted writes never lose data that flareseq did not create."""

from __future__ import annotations

import errno
import os

import pytest

from flareseq.cli import main
from flareseq.data.store import StoreWriter, read_store, recover_leftovers, write_store
from flareseq.data.synthetic import synthetic_dataset, write_synthetic_kaggle
from flareseq.errors import StoreError


@pytest.fixture(scope="module")
def dataset():
    return synthetic_dataset(40, seed=5)


def test_overwrite_refuses_a_folder_of_other_files(tmp_path, dataset):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not a flareseq store"):
        write_store(dataset, folder, overwrite=True)
    assert (folder / "notes.txt").read_text() == "mine"


def test_overwrite_refuses_a_plain_file(tmp_path, dataset):
    target = tmp_path / "thesis.tex"
    target.write_text("chapter 1")
    with pytest.raises(StoreError, match="is a file, not a flareseq store"):
        write_store(dataset, target, overwrite=True)
    assert target.read_text() == "chapter 1"


def test_overwrite_refuses_a_store_holding_foreign_files(tmp_path, dataset):
    store = tmp_path / "store"
    write_store(dataset, store)
    (store / "analysis.ipynb").write_text("{}")
    with pytest.raises(StoreError, match=r"also holds \['analysis.ipynb'\]"):
        write_store(dataset, store, overwrite=True)
    assert (store / "analysis.ipynb").exists() and read_store(store).n_samples == 40


def test_overwrite_replaces_a_store(tmp_path, dataset):
    store = tmp_path / "store"
    write_store(dataset, store)
    write_store(dataset.subset(slice(0, 10)), store, overwrite=True)
    assert read_store(store).n_samples == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]  # nothing moved aside is left


def test_cli_never_writes_over_its_own_input(tmp_path, capsys):
    """The reviewer's case: `ingest proj/x.jsonl --out proj --overwrite` removed x.jsonl."""
    project = tmp_path / "proj"
    project.mkdir()
    raw = project / "x.jsonl"
    write_synthetic_kaggle(raw, 5, seed=1)
    before = raw.read_bytes()
    assert main(["ingest", str(raw), "--out", str(project), "--overwrite", "--no-progress"]) == 2
    assert "a folder holding the input" in capsys.readouterr().err
    assert raw.read_bytes() == before
    assert main(["ingest", str(raw), "--out", str(raw), "--overwrite", "--no-progress"]) == 2
    assert raw.read_bytes() == before


def test_a_store_is_not_its_own_input(tmp_path, dataset):
    store = tmp_path / "store"
    write_store(dataset, store)
    with pytest.raises(StoreError, match="the input"):
        StoreWriter(store, feature_names=dataset.feature_names, n_timesteps=60, overwrite=True, protect=[store])


def test_a_failing_close_leaves_no_partial_store(tmp_path, dataset, monkeypatch):
    """Disk full at the last part: the hidden partial store used to stay, keeping the disk full."""
    def disk_full(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(StoreWriter, "_close_part", disk_full)
    with pytest.raises(StoreError, match="No space left on device.*nothing of this ingest is left behind"):
        write_store(dataset, tmp_path / "store")
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_killed_writers_are_cleaned_or_restored(tmp_path, dataset):
    store = tmp_path / "store"
    write_store(dataset, store)
    # a killed overwrite: the old store moved aside, the new one never renamed into place
    aside = tmp_path / ".store.old-0123abcd"
    store.rename(aside)
    dead_pid = 2**22 + 12345  # above the kernel's pid_max default: no such process
    partial = tmp_path / f".store.tmp-{dead_pid}-feedbeef"
    partial.mkdir()
    (partial / "part-00000.parquet").write_bytes(b"PAR1")
    live = tmp_path / f".store.tmp-{os.getpid()}-cafe0000"  # a writer still running: left alone
    live.mkdir()
    done = recover_leftovers(store)
    assert read_store(store).n_samples == 40 and not aside.exists() and not partial.exists()
    assert live.exists() and len(done) == 2


def test_leftover_cleanup_keeps_foreign_files(tmp_path):
    partial = tmp_path / ".store.tmp-4300000-feedbeef"
    partial.mkdir()
    (partial / "part-00000.parquet").write_bytes(b"PAR1")
    (partial / "keep.txt").write_text("not ours")
    recover_leftovers(tmp_path / "store")
    assert sorted(p.name for p in partial.iterdir()) == ["keep.txt"]
