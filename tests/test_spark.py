"""The Spark engine against the local engine, in Spark local mode: the same store (manifest,
X with NaN in the same places, y, ids, metadata, side series, content hash), the same
skipped records and errors, the same sampling draw.

One SparkSession (``local[2]``) serves the module; without pyspark or Java 17 the tests skip
and say why.
"""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest

from flareseq.data import load_dataset
from flareseq.data.ingest import ingest
from flareseq.data.sampling import sample_fraction
from flareseq.data.store import content_hash, read_store, write_store
from flareseq.data.synthetic import write_synthetic_kaggle, write_synthetic_swansf
from flareseq.errors import DataFormatError, FlareseqError

# One JVM: every test of this module runs on the same xdist worker (make test uses --dist loadgroup).
pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]

# the content hash of the 12 real samples (docs/store.md's test vector)
REAL_SAMPLES_HASH = "sha256:2006488f973891de6012c9c243784d41af16383000728f91259d3690438f3a1f"
SPARK_TEST_CONF = {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2",
                   "spark.default.parallelism": "2", "spark.driver.memory": "1g"}


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'flareseq[spark]')")
    from flareseq.data.spark.session import check_java, spark_session

    try:
        check_java()
    except FlareseqError as exc:
        pytest.skip(f"no usable Java for Spark: {exc}")
    with spark_session("local[2]", conf=SPARK_TEST_CONF) as session:
        yield session


def spark_ingest(spark, inputs, out, **options):
    """Through the public entry point, as a user would: ingest(..., engine="spark")."""
    return ingest(inputs, out, engine="spark", spark=spark, progress=False, **options)


def assert_same_store(spark_store, local_store, *, n_samples):
    """Both engines' stores: one manifest but for created_by, one dataset."""
    from flareseq.data.store import read_manifest

    a, b = read_manifest(spark_store), read_manifest(local_store)
    assert a.pop("created_by").endswith("(spark engine)") and b.pop("created_by").endswith("(python engine)")
    assert a == b
    assert a["counts"]["n_samples"] == n_samples
    A, B = read_store(spark_store, aux=True), read_store(local_store, aux=True)
    assert list(A.ids) == list(B.ids)
    assert np.array_equal(A.X, B.X, equal_nan=True)  # NaN in the same places
    assert (A.y is None and B.y is None) or np.array_equal(A.y, B.y)
    assert A.meta.equals(B.meta)
    assert sorted(A.aux) == sorted(B.aux)
    for name, values in B.aux.items():
        if values.dtype == object:
            assert [None if v is None else str(v) for v in A.aux[name].ravel()] == \
                   [None if v is None else str(v) for v in values.ravel()]
        else:
            assert np.array_equal(A.aux[name], values, equal_nan=True)
    assert content_hash(A) == a["content_hash"]
    return A


def lines_of(path):
    return path.read_text().splitlines()


def edit(line: str, change) -> str:
    obj = json.loads(line)  # the stdlib reads bare NaN
    change(obj)
    return json.dumps(obj)  # and writes it back bare


# -- the same store -------------------------------------------------------------------------------
def test_real_samples_in_both_layouts_give_the_local_store(spark, swan_samples, tmp_path):
    samples = swan_samples
    inputs = [samples / "bigdatacup_layout.jsonl", samples / "mvts"]
    report = spark_ingest(spark, inputs, tmp_path / "spark")
    ingest(inputs, tmp_path / "local", workers=1, progress=False)
    stored = assert_same_store(tmp_path / "spark", tmp_path / "local", n_samples=24)
    assert report.n_driver_parsed == 0  # every real record was read by Spark itself
    assert content_hash(stored.subset(np.arange(12))) == REAL_SAMPLES_HASH
    # the two layouts of the same 12 samples, as Spark read them
    manifest = (samples / "manifest.csv").read_text().splitlines()[1:]
    order = {row.split(",")[1]: i for i, row in enumerate(manifest)}
    swan = stored.subset(np.arange(12, 24))
    by_file = np.array([order[name] for name in swan.ids])
    assert np.array_equal(stored.X[:12][by_file], swan.X, equal_nan=True)
    assert np.array_equal(stored.y[:12][by_file], swan.y)
    assert int(np.isnan(swan.X).sum()) > 0 and swan.aux["NOAA_AR"].dtype == object


def test_synthetic_files_give_the_local_store(spark, tmp_path):
    labelled = write_synthetic_kaggle(tmp_path / "fold.jsonl", 150, seed=11)
    unlabelled = write_synthetic_kaggle(tmp_path / "test.jsonl", 40, seed=12, labelled=False)
    packed = tmp_path / "test.jsonl.gz"
    packed.write_bytes(gzip.compress(unlabelled.read_bytes()))
    swan = tmp_path / "swan"  # the same generator as SWAN-SF files, under partition1..3/
    write_synthetic_swansf(swan, 45, seed=13)
    inputs = [labelled, packed, swan]
    report = spark_ingest(spark, inputs, tmp_path / "spark")
    ingest(inputs, tmp_path / "local", workers=1, progress=False)
    stored = assert_same_store(tmp_path / "spark", tmp_path / "local", n_samples=235)
    assert report.n_driver_parsed == 0
    assert report.input_bytes == sum(f.stat().st_size for f in [labelled, unlabelled, *swan.rglob("*.csv")])
    assert np.isnan(stored.X).sum() > 0 and (stored.y[150:190] == -1).all()
    assert sorted(set(stored.meta["fold"][190:])) == [1, 2, 3]
    assert report.manifest["counts"]["n_missing_values"] == int(np.isnan(stored.X).sum())


def test_unusual_but_valid_lines_give_the_local_store(spark, tmp_path):
    base = lines_of(write_synthetic_kaggle(tmp_path / "base.jsonl", 12, seed=5))
    steps_as_text = sorted(str(t) for t in range(60))  # how Spark and other tools write the keys
    lines = [
        base[0],
        edit(base[1], lambda o: o.update(values={p: {k: s[k] for k in steps_as_text}
                                                 for p, s in sorted(o["values"].items())})),
        edit(base[2], lambda o: o.update(id="AR-11158/3")),  # a string id
        "",  # a blank line holds no record
        "  " + base[3] + " \r",  # JSON whitespace around the object, a CRLF line end
        edit(base[4], lambda o: o["values"]["USFLUX"].update({"0": None, "1": None})),  # null = missing
        edit(base[5], lambda o: (o.pop("classNum"), o.pop("fold"))),  # test-set layout
        edit(base[6], lambda o: o.update(fold=None)),  # unknown fold
        edit(base[7], lambda o: o.update(id="xNaNy")),  # the strict parser must see this one
        edit(base[8], lambda o: o["values"]["EPSX"].update({"5": 0, "6": -0.0, "7": 1e-45})),
        " \t",
    ]
    path = tmp_path / "unusual.jsonl"
    path.write_text("\n".join(lines))  # and no newline at the end
    report = spark_ingest(spark, path, tmp_path / "spark")
    ingest(path, tmp_path / "local", workers=1, progress=False)
    stored = assert_same_store(tmp_path / "spark", tmp_path / "local", n_samples=9)
    assert report.n_driver_parsed == 1  # only the id with "NaN" in it left Spark's own reading
    assert report.manifest["sources"][0]["n_blank_lines"] == 2
    assert np.isnan(stored.X[4, :2, list(stored.feature_names).index("USFLUX")]).all()


# -- bad records ----------------------------------------------------------------------------------
def bad_kaggle_file(tmp_path):
    base = lines_of(write_synthetic_kaggle(tmp_path / "base.jsonl", 24, seed=3))
    bad = list(base)
    bad[1] = base[1][:-5]  # truncated JSON
    bad[2] = edit(base[2], lambda o: o["values"].pop("TOTPOT"))  # a parameter missing
    bad[3] = edit(base[3], lambda o: o["values"]["EPSX"].pop("59"))  # 59 steps
    bad[4] = edit(base[4], lambda o: o["values"]["EPSX"].update({"7": "abc"}))  # not a number
    bad[5] = edit(base[5], lambda o: o["values"]["EPSY"].update({"3": "NaN"}))  # a string, not NaN
    bad[6] = edit(base[6], lambda o: o.update(id=1))  # the id of line 1
    bad[7] = edit(base[7], lambda o: o.update(classNum=2))
    bad[8] = edit(base[8], lambda o: o["values"]["TOTPOT"].update({"0": 1e39}))  # beyond float32
    bad[9] = edit(base[9], lambda o: o["values"].update(EXTRA=o["values"]["EPSX"]))
    bad[10] = base[10] + ' {"id": 99}'  # trailing data
    bad[11] = base[11].replace('"', "'")  # single quotes
    bad[12] = edit(base[12], lambda o: o.update(classNum=None))
    bad[13] = edit(base[13], lambda o: o.update(id=1.5))
    bad[14] = edit(base[14], lambda o: o["values"]["EPSX"].update({"7": float("inf")}))  # Infinity
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(bad) + "\n")
    return path


def test_bad_records_are_skipped_and_listed_like_the_local_engine(spark, tmp_path):
    from flareseq.data.spark.session import sql_conf

    path = bad_kaggle_file(tmp_path)
    # ~100 kB splits: the file's 24 lines are read by ~10 tasks, and line numbers must still be right
    with sql_conf(spark, {"spark.sql.files.maxPartitionBytes": "100000"}):
        assert spark.read.text(str(path)).rdd.getNumPartitions() >= 8
        report = spark_ingest(spark, path, tmp_path / "spark", on_error="skip")
    local = ingest(path, tmp_path / "local", workers=1, on_error="skip", progress=False)
    assert_same_store(tmp_path / "spark", tmp_path / "local", n_samples=10)
    listed = [(r.path, r.line, r.field, r.reason) for r in report.skips.records]
    assert listed == [(r.path, r.line, r.field, r.reason) for r in local.skips.records]
    assert [r[1] for r in listed] == list(range(2, 16))
    assert (tmp_path / "spark" / "skipped.tsv").read_text() == (tmp_path / "local" / "skipped.tsv").read_text()
    # the bad lines, and only they, went to the strict parser (a repeated id is well-formed: Spark reads it)
    assert report.n_driver_parsed == 13


def test_a_bad_record_stops_the_ingest_naming_file_line_and_field(spark, tmp_path):
    base = lines_of(write_synthetic_kaggle(tmp_path / "base.jsonl", 8, seed=4))
    base[5] = edit(base[5], lambda o: o["values"]["MEANGAM"].update({"3": "n/a"}))
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(base) + "\n")
    with pytest.raises(DataFormatError) as spark_error:
        spark_ingest(spark, path, tmp_path / "spark")
    with pytest.raises(DataFormatError) as local_error:
        ingest(path, tmp_path / "local", workers=1, progress=False)
    assert str(spark_error.value) == str(local_error.value)
    assert str(spark_error.value).startswith(f"{path}, line 6: field 'MEANGAM[\"3\"]': expected a number or NaN, "
                                             "found 'n/a'.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "base.jsonl"]  # no store, no staging


def test_bad_swansf_files_are_skipped_and_refused_like_the_local_engine(spark, swan_samples, tmp_path):
    folder = tmp_path / "partition3"
    shutil.copytree(swan_samples / "mvts", folder)
    files = sorted(folder.iterdir())
    rows = [row.split("\t") for row in files[0].read_text().split("\n")]
    rows[5][1] = "abc"  # line 6, TOTUSJH: not a number
    files[0].write_text("\n".join("\t".join(row) for row in rows))
    files[1].rename(folder / "sample-1.csv")  # a name that does not parse
    files[2].write_text("\n".join(files[2].read_text().split("\n")[:-3]) + "\n")  # 58 rows
    files[3].write_bytes(files[3].read_bytes().replace(b"TOTPOT", b"TOTPOX", 1))  # a column missing
    files[4].write_bytes(files[4].read_bytes().replace(b"None", b"N\xe9ne", 1))  # not UTF-8
    files[5].write_text(files[5].read_text().replace("\n", "\r\n"))  # CRLF: fine
    report = spark_ingest(spark, folder, tmp_path / "spark", on_error="skip")
    local = ingest(folder, tmp_path / "local", workers=1, on_error="skip", progress=False)
    stored = assert_same_store(tmp_path / "spark", tmp_path / "local", n_samples=7)
    assert set(stored.meta["fold"]) == {3}
    listed = [(r.path, r.line, r.field, r.reason) for r in report.skips.records]
    assert listed == [(r.path, r.line, r.field, r.reason) for r in local.skips.records] and len(listed) == 5
    # the four bad contents went to the driver's parser; the bad name is read on the driver
    # anyway, and the CRLF file was read by Spark itself
    assert report.n_driver_parsed == 4
    with pytest.raises(DataFormatError) as spark_error:
        spark_ingest(spark, folder, tmp_path / "spark2")
    with pytest.raises(DataFormatError) as local_error:
        ingest(folder, tmp_path / "local2", workers=1, progress=False)
    assert str(spark_error.value) == str(local_error.value)
    assert str(spark_error.value).startswith(f"{files[0]}, line 6: field 'TOTUSJH': expected a number or an "
                                             "empty cell, found 'abc'.")


# -- sampling ------------------------------------------------------------------------------------
def test_sampling_draws_what_the_local_engine_draws(spark, tmp_path):
    path = write_synthetic_kaggle(tmp_path / "fold.jsonl", 300, seed=21)
    report = spark_ingest(spark, path, tmp_path / "spark", fraction=0.3, stratify=True, seed=5)
    everything = load_dataset(path)
    expected = sample_fraction(everything, 0.3, stratify=True, random_state=5)
    write_store(expected, tmp_path / "local")
    stored = read_store(tmp_path / "spark")
    assert list(stored.ids) == list(expected.ids)
    assert report.manifest["content_hash"] == content_hash(expected)
    for label in (0, 1):  # stratified: each class keeps round(0.3 n) of its n samples
        assert int((stored.y == label).sum()) == round(0.3 * int((everything.y == label).sum()))
    source = report.manifest["sources"][0]
    assert source["n_read"] == 300 and source["n_sampled"] == 90
    assert source["sampling"] == {"fraction": 0.3, "stratify": True, "seed": 5}


# -- the command line -----------------------------------------------------------------------------
def test_cli_ingest_with_the_spark_engine(spark, tmp_path, capsys):
    from flareseq.cli import main

    path = write_synthetic_kaggle(tmp_path / "fold.jsonl", 40, seed=2)
    code = main(["ingest", str(path), "--out", str(tmp_path / "store"), "--engine", "spark", "--master", "local[2]",
                 "--fraction", "0.5", "--stratify", "--seed", "3", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "Spark engine on local[2]" in out
    expected = sample_fraction(load_dataset(path), 0.5, stratify=True, random_state=3)
    assert f"content hash {content_hash(expected)}" in out
    assert read_store(tmp_path / "store").n_samples == 20
