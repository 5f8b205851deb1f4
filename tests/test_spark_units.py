"""The Spark engine's parts that need no JVM: Java and pyspark checks, input checks before
Spark starts, the sampling draw, and the ordered reading of staged parts."""

from __future__ import annotations

import math
import os
import sys
import zipfile

import numpy as np
import pytest

from flareseq.data.dataset import FlareDataset, empty_meta
from flareseq.data.sampling import sample_fraction
from flareseq.data.spark.ingest import ingest_spark, sampled_positions
from flareseq.data.spark.session import check_java, import_pyspark, java_major_version
from flareseq.data.spark.staging import StagedParts
from flareseq.data.store import write_store
from flareseq.data.synthetic import synthetic_dataset, write_synthetic_kaggle
from flareseq.errors import (
    ConfigError,
    FlareseqError,
    MissingDependencyError,
    StoreError,
    UnsupportedInputError,
)


# -- Java and pyspark ---------------------------------------------------------------------------
@pytest.mark.parametrize("output, major", [
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('openjdk version "21" 2023-09-19', 21),
    ('java version "1.8.0_292"', 8),
    ('openjdk version "11.0.2" 2019-01-15', 11),
    ("no version here", None),
])
def test_java_major_version(output, major):
    assert java_major_version(output) == major


def _fake_java(tmp_path, version_line: str):
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(0o755)
    return home


@pytest.mark.parametrize("version_line, match", [
    ('java version "1.8.0_292"', r"needs Java 17 or newer; .* gives Java 8\. Install Java 17"),
    ('openjdk version "11.0.2"', r"gives Java 11"),
])
def test_old_java_is_refused_with_the_fix(tmp_path, monkeypatch, version_line, match):
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path, version_line)))
    with pytest.raises(FlareseqError, match=match):
        check_java()


def test_missing_java_is_refused_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(FlareseqError, match=r"needs Java 17 or newer; found none \(JAVA_HOME=.*has no bin/java\)"):
        check_java()
    monkeypatch.delenv("JAVA_HOME")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FlareseqError, match=r"no `java` on PATH and JAVA_HOME is not set\).*openjdk-17"):
        check_java()


def test_java_17_passes(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path, 'openjdk version "17.0.15" 2025-04-15')))
    assert check_java() == 17


def test_missing_pyspark_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m == "pyspark" or m.startswith("pyspark.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyspark", None)  # what an absent package looks like to import
    with pytest.raises(MissingDependencyError, match=r"pip install 'flareseq\[spark\]'"):
        import_pyspark()


# -- refused before Spark starts -------------------------------------------------------------------
def test_inputs_spark_cannot_read_are_refused_up_front(tmp_path):
    kaggle = write_synthetic_kaggle(tmp_path / "fold.jsonl", 3, seed=1)
    zipped = tmp_path / "fold.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.write(kaggle, "fold.jsonl")
    store = tmp_path / "store"
    write_store(synthetic_dataset(3), store)
    (tmp_path / "swan.tar").write_bytes(b"")
    cases = [
        (zipped, r"fold\.zip: the Spark engine cannot read inside a zip archive\. Extract it first"),
        (store, r"store: is a flareseq store; the Spark engine reads Kaggle JSON-lines files and SWAN-SF folders"),
        (tmp_path / "swan.tar", r"swan\.tar: the Spark engine reads SWAN-SF folders, not archives"),
        (tmp_path / "absent.jsonl", r"absent\.jsonl: expected .*found nothing at this path"),
    ]
    for path, match in cases:
        with pytest.raises(UnsupportedInputError, match=match):
            ingest_spark([kaggle, path], tmp_path / "out")
    with pytest.raises(ConfigError, match=r"fraction must be in \(0, 1\], got 1\.5"):
        ingest_spark(kaggle, tmp_path / "out", fraction=1.5)
    with pytest.raises(ConfigError, match=r"on_error must be one of"):
        ingest_spark(kaggle, tmp_path / "out", on_error="ignore")
    with pytest.raises(StoreError, match=r"already exists"):
        ingest_spark(kaggle, store)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fold.jsonl", "fold.zip", "store", "swan.tar"]


# -- sampling ----------------------------------------------------------------------------------
def _labels_dataset(labels: np.ndarray) -> FlareDataset:
    n = labels.size
    y = None if (labels == -1).all() else labels
    return FlareDataset(X=np.zeros((n, 1, 1), np.float32), y=y, ids=np.arange(n).astype(str),
                        feature_names=("f",), meta=empty_meta(n))


@pytest.mark.parametrize("fraction, stratify, seed", [(0.3, True, 0), (0.3, False, 0), (0.05, True, 7),
                                                       (0.5, False, 3), (1.0, True, 0)])
@pytest.mark.parametrize("kind", ["labelled", "mixed", "unlabelled"])
def test_the_draw_is_the_local_engines(fraction, stratify, seed, kind):
    rng = np.random.default_rng(1)
    labels = (rng.random(1000) < 0.16).astype(np.int8)
    if kind == "mixed":
        labels[600:] = -1
    elif kind == "unlabelled":
        labels[:] = -1
    expected = sample_fraction(_labels_dataset(labels), fraction, stratify=stratify, random_state=seed)
    got = sampled_positions(labels, fraction, stratify=stratify, seed=seed)
    if fraction == 1.0:
        assert got is None
    else:
        assert np.array_equal(expected.ids.astype(int), got)
    assert sampled_positions(labels, None) is None


def test_stratified_draw_hits_the_fraction_per_class():
    # 4,000 samples, 16 % positive; a Bernoulli draw of fraction f from a class of n would be
    # off by sd = sqrt(n f (1 - f)); the tolerance is 4 sd (the exact draw is within 0.5)
    rng = np.random.default_rng(2)
    labels = (rng.random(4000) < 0.16).astype(np.int8)
    for fraction in (0.05, 0.1, 0.3):
        kept = labels[sampled_positions(labels, fraction, stratify=True, seed=11)]
        for label in (0, 1):
            n = int((labels == label).sum())
            off = abs(int((kept == label).sum()) - fraction * n)
            assert off <= 4 * math.sqrt(n * fraction * (1 - fraction))
            assert off <= 0.5 + 1e-9


# -- staged parts, read back in the driver's order ------------------------------------------------
def test_staged_rows_come_back_in_any_order(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setattr("flareseq.data.spark.staging.READ_BATCH_ROWS", 3)  # many batches per part
    values = {0: np.arange(0, 10), 1: np.arange(100, 107), 2: np.arange(200, 200)}
    for part, v in values.items():
        pq.write_table(pa.table({"v": pa.array(v, pa.int64())}), tmp_path / f"part-{part:05d}-x.parquet")
    staged = StagedParts(tmp_path)
    small = staged.read_columns(["v"])
    assert small.column("_part").to_pylist() == [0] * 10 + [1] * 7
    # interleaved parts, runs, skipped rows, and one step backwards within part 0
    order = [(1, 0), (0, 0), (0, 1), (0, 2), (1, 3), (0, 7), (1, 4), (1, 5), (0, 8), (0, 4), (1, 6)]
    parts, rows = np.array(order).T
    got = [v for t in staged.iter_rows(parts, rows, ["v"], batch_size=4) for v in t.column("v").to_pylist()]
    assert got == [values[p][r] for p, r in order]
    assert [t.num_rows for t in staged.iter_rows(parts, rows, ["v"], batch_size=4)] == [4, 4, 3]
    assert os.listdir(tmp_path)  # reading never removes the parts
