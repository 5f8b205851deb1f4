"""Parallel ingestion: order, ids, line numbers and content hash as in a serial read."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from flareseq.data import load_dataset, summarize_paths
from flareseq.data.ingest import ingest
from flareseq.data.store import content_hash, read_store
from flareseq.data.synthetic import synthetic_dataset, write_synthetic_kaggle
from flareseq.errors import DataFormatError


@pytest.fixture(scope="module")
def kaggle_file(tmp_path_factory):
    return write_synthetic_kaggle(tmp_path_factory.mktemp("ingest") / "fold.jsonl", 120, seed=8)


def test_parallel_ingest_matches_the_serial_read(kaggle_file, tmp_path):
    # tiny chunks over 2 spawned workers, results taken back in order: byte ranges of the
    # plain file, then chunks of a gzip stream that the parent decompresses and hands out
    packed = tmp_path / "fold.jsonl.gz"
    packed.write_bytes(gzip.compress(kaggle_file.read_bytes()))
    report = ingest([kaggle_file, packed], tmp_path / "store", workers=2, chunk_bytes=200_000, progress=False)
    assert report.workers == 2 and report.fast_chunks >= 40 and report.strict_chunks <= 2
    stored = read_store(tmp_path / "store")
    expected = synthetic_dataset(120, seed=8)
    for half in (slice(0, 120), slice(120, 240)):
        part = stored.subset(half)
        assert list(part.ids) == list(expected.ids)
        assert np.array_equal(part.X, expected.X, equal_nan=True) and np.array_equal(part.y, expected.y)
    assert content_hash(stored.subset(slice(0, 120))) == content_hash(expected)
    assert [s["n_records"] for s in report.manifest["sources"]] == [120, 120]
    assert report.input_bytes == 2 * kaggle_file.stat().st_size  # bytes parsed, decompressed


def test_errors_in_later_chunks_name_the_true_line(kaggle_file, tmp_path):
    lines = kaggle_file.read_bytes().splitlines()
    obj = json.loads(lines[96])
    obj["values"]["EPSX"]["10"] = "bad"
    lines[96] = json.dumps(obj).encode()
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(DataFormatError, match=r"bad\.jsonl, line 97: field 'EPSX\[\"10\"\]'"):
        ingest(bad, tmp_path / "store", workers=1, chunk_bytes=600_000, progress=False)
    assert not (tmp_path / "store").exists()
    report = ingest(bad, tmp_path / "store", workers=1, chunk_bytes=600_000, on_error="skip", progress=False)
    assert [r.line for r in report.skips.records] == [97]
    assert report.manifest["counts"]["n_samples"] == 119


def test_mixed_inputs_keep_side_series(kaggle_file, swan_samples, tmp_path):
    swan = swan_samples / "mvts"
    report = ingest([kaggle_file, swan], tmp_path / "store", workers=1, progress=False)
    stored = load_dataset(tmp_path / "store", aux=True)
    assert load_dataset(tmp_path / "store").aux == {}  # side series only on request
    assert list(load_dataset(tmp_path / "store", aux=["NOAA_AR"]).aux) == ["NOAA_AR"]
    assert stored.n_samples == 132 and len(report.manifest["sources"]) == 2
    assert stored.aux["QUALITY"].shape == (132, 60)
    assert np.isnan(stored.aux["QUALITY"][:120]).all() and not np.isnan(stored.aux["QUALITY"][120:]).all()
    # a store ingests like any other input, and the summary of a store needs only its manifest
    again = ingest(tmp_path / "store", tmp_path / "copy", progress=False)
    assert again.manifest["content_hash"] == report.manifest["content_hash"]
    total, _ = summarize_paths([tmp_path / "copy"])
    assert total["n_samples"] == 132 and total["n_positive"] == stored.n_positive


def test_swan_sf_folder_in_parallel_equals_the_serial_read(tmp_path, monkeypatch):
    import flareseq.data.ingest as ingest_module
    from flareseq.data.swansf import write_swansf

    write_swansf(synthetic_dataset(40, seed=9), tmp_path / "swan")
    bad = next((tmp_path / "swan").rglob("*.csv"))
    bad.rename(bad.with_name("not-a-sample.csv"))
    serial = ingest(tmp_path / "swan", tmp_path / "serial", workers=1, on_error="skip", progress=False)
    monkeypatch.setattr(ingest_module, "SWANSF_FILES_PER_TASK", 6)  # 7 tasks over 2 workers
    parallel = ingest(tmp_path / "swan", tmp_path / "parallel", workers=2, on_error="skip", progress=False)
    assert parallel.workers == 2
    assert parallel.manifest["content_hash"] == serial.manifest["content_hash"]
    assert parallel.manifest["sources"] == serial.manifest["sources"]
    assert parallel.manifest["sources"][0]["n_records"] == 40 and parallel.manifest["n_skipped"] == 1
    assert [r.path for r in parallel.skips.records] == [str(bad.with_name("not-a-sample.csv"))]


def test_engine_is_checked_and_spark_options_need_the_spark_engine(tmp_path):
    from flareseq.errors import ConfigError

    data = write_synthetic_kaggle(tmp_path / "fold.jsonl", 5, seed=1)
    with pytest.raises(ConfigError, match="engine must be 'local' or 'spark', got 'dask'"):
        ingest(data, tmp_path / "a", engine="dask", progress=False)
    with pytest.raises(ConfigError, match="fraction, stratify: options of engine='spark' only"):
        ingest(data, tmp_path / "b", fraction=0.5, stratify=True, progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
