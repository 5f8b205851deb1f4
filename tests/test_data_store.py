"""The columnar store: round trip, folds, atomic writes, manifest, content hash."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flareseq.data.dataset import concat_datasets
from flareseq.data.schema import STORE_SCHEMA_VERSION
from flareseq.data.store import (
    StoreWriter,
    content_hash,
    iter_store_batches,
    read_manifest,
    read_store,
    write_store,
)
from flareseq.data.synthetic import synthetic_dataset
from flareseq.errors import StoreError


@pytest.fixture(scope="module")
def dataset():
    return synthetic_dataset(300, seed=11)


def test_round_trip_keeps_everything(tmp_path, dataset):
    manifest = write_store(dataset, tmp_path / "store")
    back = read_store(tmp_path / "store")
    assert np.array_equal(back.X, dataset.X, equal_nan=True) and back.X.dtype == np.float32
    assert list(back.ids) == list(dataset.ids) and np.array_equal(back.y, dataset.y)
    for column in ("fold", "region", "start", "end", "goes_class", "source"):
        assert back.meta[column].equals(dataset.meta[column]), column
    assert manifest["schema_version"] == STORE_SCHEMA_VERSION
    assert manifest["counts"] == {"n_samples": 300, "n_positive": dataset.n_positive,
                                  "n_negative": 300 - dataset.n_positive, "n_unlabelled": 0,
                                  "n_missing_values": dataset.n_missing_values}
    assert manifest["content_hash"] == content_hash(dataset) == content_hash(back)


def test_folds_are_read_selectively(tmp_path, dataset):
    write_store(dataset, tmp_path / "store")
    fold2 = read_store(tmp_path / "store", folds=[2])
    expected = dataset.subset((dataset.meta["fold"] == 2).to_numpy(bool))
    assert fold2.n_samples == expected.n_samples > 0
    assert list(fold2.ids) == list(expected.ids)
    batches = list(iter_store_batches(tmp_path / "store", batch_size=50, folds=[1, 3]))
    assert sum(b.n_samples for b in batches) == 300 - fold2.n_samples


def test_content_hash_ignores_chunking_but_not_content(tmp_path, dataset):
    with StoreWriter(tmp_path / "chunked", feature_names=dataset.feature_names, n_timesteps=60,
                     row_group_size=64) as writer:
        for start in range(0, 300, 37):
            writer.write(dataset.subset(slice(start, start + 37)))
            if start == 148:
                writer.new_part()
    manifest = read_manifest(tmp_path / "chunked")
    assert len(manifest["parts"]) == 2
    assert manifest["content_hash"] == content_hash(dataset)
    X = dataset.X.copy()
    X[5, 3, 2] = np.nextafter(X[5, 3, 2], np.inf)  # one value, one ulp
    assert content_hash(dataset.with_X(X)) != content_hash(dataset)
    swapped = concat_datasets([dataset.subset([1]), dataset.subset([0]), dataset.subset(slice(2, None))])
    assert content_hash(swapped) != content_hash(dataset)


def test_interrupted_write_leaves_nothing(tmp_path, dataset):
    with pytest.raises(RuntimeError):
        with StoreWriter(tmp_path / "store", feature_names=dataset.feature_names, n_timesteps=60) as writer:
            writer.write(dataset)
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_store_without_manifest_is_incomplete(tmp_path, dataset):
    write_store(dataset, tmp_path / "store")
    (tmp_path / "store" / "manifest.json").unlink()
    with pytest.raises(StoreError, match="incomplete"):
        read_store(tmp_path / "store")


def test_other_schema_version_is_refused(tmp_path, dataset):
    write_store(dataset, tmp_path / "store")
    path = tmp_path / "store" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["schema_version"] = 999
    path.write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="schema version 1, found format 'flareseq-store' version 999"):
        read_store(tmp_path / "store")


def test_existing_store_needs_overwrite(tmp_path, dataset):
    write_store(dataset, tmp_path / "store")
    with pytest.raises(StoreError, match="already exists"):
        write_store(dataset, tmp_path / "store")
    small = dataset.subset(slice(0, 10))
    write_store(small, tmp_path / "store", overwrite=True)
    assert read_store(tmp_path / "store").n_samples == 10


def test_parquet_encoding_is_as_documented(tmp_path, dataset):
    import pyarrow.parquet as pq

    write_store(dataset, tmp_path / "store")
    meta = pq.ParquetFile(tmp_path / "store" / "part-00000.parquet").metadata
    names = [meta.schema.column(i).path for i in range(meta.num_columns)]
    column = meta.row_group(0).column(names.index("USFLUX.list.element"))
    assert column.compression == "ZSTD" and "BYTE_STREAM_SPLIT" in column.encodings


def test_content_hash_test_vector_of_docs_store_md(swan_samples):
    """The value documented for other engines (docs/store.md): changing the canonical
    serialisation changes every store's hash, so it must be deliberate."""
    from flareseq.data import load_dataset

    dataset = load_dataset(swan_samples / "bigdatacup_layout.jsonl")
    assert content_hash(dataset) == "sha256:2006488f973891de6012c9c243784d41af16383000728f91259d3690438f3a1f"


def test_canonical_record_layout_by_hand():
    """One sample hashed by hand from the documented recipe."""
    import hashlib

    from flareseq.data.dataset import FlareDataset, empty_meta

    X = np.array([[[1.5, np.nan], [-0.0, 2.0]]], dtype=np.float32)  # (1, T=2, F=2)
    dataset = FlareDataset(X=X, y=np.array([-1], np.int8), ids=np.array(["é7"]), feature_names=("a", "b"),
                           meta=empty_meta(1))
    record = (len("é7".encode()).to_bytes(4, "little") + "é7".encode() + b"\xff"
              + np.float32(1.5).tobytes() + bytes.fromhex("0000c07f") + np.float32(-0.0).tobytes()
              + np.float32(2.0).tobytes())
    header = b'flareseq-content-v1\n{"feature_names":["a","b"],"n_timesteps":2}\n'
    expected = hashlib.sha256(header + hashlib.sha256(record).digest()).hexdigest()
    assert content_hash(dataset) == "sha256:" + expected


def test_fold_reads_across_parts_and_batches(tmp_path, dataset, monkeypatch):
    import flareseq.data.store_read as store_read

    with StoreWriter(tmp_path / "store", feature_names=dataset.feature_names, n_timesteps=60,
                     row_group_size=32) as writer:
        writer.write(dataset.subset(slice(0, 130)))
        writer.new_part()
        writer.write(dataset.subset(slice(130, None)))
    monkeypatch.setattr(store_read, "READ_BATCH_ROWS", 45)  # batches that cut row groups and parts
    for folds in ([2], [1, 3], None):
        got = read_store(tmp_path / "store", folds=folds)
        keep = np.ones(300, bool) if folds is None else dataset.meta["fold"].isin(folds).to_numpy(bool)
        expected = dataset.subset(keep)
        assert list(got.ids) == list(expected.ids)
        assert np.array_equal(got.X, expected.X, equal_nan=True) and np.array_equal(got.y, expected.y)
