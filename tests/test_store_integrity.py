"""Store integrity: part checksums, verify_store, flareseq verify, summary cross-checks (issue 16, item 4).

Before, a truncated part, rewritten labels or flipped bytes loaded silently, ``summary``
printed an edited ``n_positive`` as is, and the content hash logged was the manifest's,
whatever the rows held.
"""

from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from flareseq.cli import main
from flareseq.data.store import (
    StoreVerificationError,
    content_hash,
    iter_store_batches,
    read_manifest,
    read_store,
    verify_store,
    write_store,
)
from flareseq.data.store_format import DIGEST_KEY, manifest_digest
from flareseq.data.store_verify import cross_check_counts
from flareseq.data.synthetic import synthetic_dataset
from flareseq.errors import FlareseqWarning, StoreError


@pytest.fixture(scope="module")
def dataset():
    return synthetic_dataset(120, seed=11)


@pytest.fixture
def store(tmp_path, dataset):
    path = tmp_path / "store"
    write_store(dataset, path)
    return path


def _part(store):
    return store / read_manifest(store)["parts"][0]["file"]


def _edit_manifest(store, change, *, redigest: bool = True) -> None:
    """Edit the manifest; ``redigest``: as someone who knows the format would, recomputing
    its digest (the deeper checks must still catch the edit)."""
    manifest = json.loads((store / "manifest.json").read_text())
    change(manifest)
    if redigest and DIGEST_KEY in manifest:
        manifest[DIGEST_KEY] = manifest_digest(manifest)
    (store / "manifest.json").write_text(json.dumps(manifest))


def _rewrite_labels(store, *, update_counts: bool) -> None:
    """Flip every label and write the part back with a fresh checksum (a deliberate edit,
    not damage): only recounting or rehashing the rows can tell."""
    part = _part(store)
    table = pq.read_table(part)
    flipped = pc.subtract(pa.scalar(1, pa.int8()), table.column("label")).cast(pa.int8())
    pq.write_table(table.set_column(1, "label", flipped), part)
    data = part.read_bytes()

    def change(m):
        m["parts"][0].update(sha256=hashlib.sha256(data).hexdigest(), n_bytes=len(data))
        if update_counts:
            c = m["counts"]
            c["n_positive"], c["n_negative"] = c["n_negative"], c["n_positive"]
    _edit_manifest(store, change)


def test_the_manifest_records_each_parts_checksum(store):
    manifest = read_manifest(store)
    for part in manifest["parts"]:
        data = (store / part["file"]).read_bytes()
        assert part["sha256"] == hashlib.sha256(data).hexdigest() and part["n_bytes"] == len(data)


def test_verify_returns_the_hash_it_vouches_for(store, dataset, capsys):
    quick, full = verify_store(store), verify_store(store, full=True)
    assert quick.ok and full.ok and quick.content_hash == full.content_hash == read_manifest(store)["content_hash"]
    assert full.content_hash == content_hash(read_store(store)) == content_hash(dataset)
    assert main(["verify", str(store), "--full"]) == 0
    out = capsys.readouterr().out
    assert "ok: content hash recomputed from ids, labels and features" in out
    assert f"verified: content hash {full.content_hash}" in out


@pytest.mark.parametrize("damage", ["flip", "truncate", "append"])
def test_damaged_parts_are_never_read(store, damage, capsys):
    part = _part(store)
    data = bytearray(part.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data += b"\0"
    part.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="the part was changed or damaged after it was written"):
        read_store(store)
    with pytest.raises(StoreError, match="changed or damaged"):
        next(iter_store_batches(store))
    with pytest.raises(StoreVerificationError) as info:
        verify_store(store)
    assert any("SHA-256" in p for p in info.value.report.problems)
    assert main(["verify", str(store)]) == 2
    captured = capsys.readouterr()
    assert "MISMATCH: " in captured.out and captured.err.startswith("flareseq verify: error:")


def test_a_truncated_part_is_a_store_error_even_unverified(store, capsys):
    """Item 6: ArrowInvalid used to escape as a traceback (read_store, summary)."""
    part = _part(store)
    part.write_bytes(part.read_bytes()[:-100])
    with pytest.raises(StoreError, match=r"expected a readable Parquet part, found ArrowInvalid"):
        read_store(store, verify=False)
    assert main(["summary", str(store)]) == 2
    err = capsys.readouterr().err
    assert "expected a readable Parquet part" in err and "Traceback" not in err


def test_an_edited_count_is_not_printed_as_fact(store, capsys):
    _edit_manifest(store, lambda m: m["counts"].update(n_positive=m["counts"]["n_positive"] + 7,
                                                         n_negative=m["counts"]["n_negative"] - 7))
    assert main(["summary", str(store), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "n_positive" in captured.err and "the manifest was edited" in captured.err
    with pytest.raises(StoreVerificationError, match="counts.n_positive is"):
        verify_store(store)


@pytest.mark.parametrize("edit", [
    lambda m: m["counts"].update(n_missing_values=0),
    lambda m: m.update(content_hash="sha256:" + "0" * 64),
    lambda m: m["sources"][0].update(path="elsewhere.json"),
])
def test_a_naive_edit_of_the_manifest_breaks_its_digest(store, edit, capsys):
    _edit_manifest(store, edit, redigest=False)
    for call in (lambda: read_store(store), lambda: verify_store(store)):
        with pytest.raises(StoreError, match="no longer matches"):
            call()
    assert main(["summary", str(store)]) == 2
    assert "the manifest was edited after ingest" in capsys.readouterr().err


def test_features_renamed_in_another_order_are_refused(store):
    _edit_manifest(store, lambda m: m.update(feature_names=m["feature_names"][::-1]))
    with pytest.raises(StoreError, match="the feature columns in another order"):
        read_store(store)
    with pytest.raises(StoreVerificationError, match="another order"):
        verify_store(store)


def test_summary_says_what_it_checked(store, capsys):
    assert main(["summary", str(store)]) == 0
    assert "store manifest digest and counts checked against the parts' rows, labels and folds" in \
        capsys.readouterr().out
    assert "missing values as the manifest records them" in cross_check_counts(store, read_manifest(store))


def test_rewritten_labels_are_caught_by_recounting_or_rehashing(tmp_path, dataset):
    first, second = tmp_path / "first", tmp_path / "second"
    write_store(dataset, first)
    write_store(dataset, second)
    _rewrite_labels(first, update_counts=False)
    with pytest.raises(StoreVerificationError, match="counts.n_positive is"):
        verify_store(first)  # quick: the label column is recounted
    # checksums and counts edited to match: the quick check cannot tell, the content hash can
    _rewrite_labels(second, update_counts=True)
    assert verify_store(second).ok
    with pytest.raises(StoreVerificationError, match="content hash recomputed from the rows is"):
        verify_store(second, full=True)


def test_parts_added_or_missing_or_outside_are_refused(store, tmp_path):
    extra = store / "part-00042.parquet"
    extra.write_bytes(_part(store).read_bytes())
    with pytest.raises(StoreVerificationError, match="part-00042.parquet: a part file not listed"):
        verify_store(store)
    extra.unlink()
    (tmp_path / "outside.parquet").write_bytes(_part(store).read_bytes())
    _edit_manifest(store, lambda m: m["parts"][0].update(file="../outside.parquet"))
    with pytest.raises(StoreError, match=r"key 'parts\[0\]': expected .*a plain name inside the store"):
        read_store(store)


@pytest.mark.parametrize("edit, match", [
    (lambda m: m.pop("counts"), "key 'counts'"),
    (lambda m: m.update(feature_names="TOTUSJH"), "key 'feature_names'"),
    (lambda m: m["parts"][0].update(n_samples=-1), r"parts\[0\].n_samples"),
    (lambda m: m["parts"][0].update(sha256="zz"), "a sha256 of 64 hex digits"),
    (lambda m: m["parts"][0].update(n_samples=m["parts"][0]["n_samples"] + 1), "rows .manifest.json., found"),
])
def test_malformed_manifests_are_store_errors(store, edit, match):
    _edit_manifest(store, edit)
    with pytest.raises(StoreError, match=match):
        read_store(store)


def test_deeply_nested_or_huge_manifest_is_a_store_error(store):
    (store / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(StoreError, match="expected a JSON manifest"):
        read_manifest(store)


def test_stores_without_checksums_stay_readable_and_are_verified_in_full(store, dataset):
    """Stores written before checksums existed: read with a warning, verified from their rows."""
    _edit_manifest(store, lambda m: [p.pop("sha256") or p.pop("n_bytes") for p in m["parts"]] and m.pop(DIGEST_KEY),
                   redigest=False)
    with pytest.warns(FlareseqWarning, match="no part checksums"):
        again = read_store(store)
    assert np.array_equal(again.X, dataset.X, equal_nan=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = verify_store(store)  # quick asked, full done: nothing else vouches for it
    assert report.full and report.content_hash == read_manifest(store)["content_hash"]
    assert "parts have no checksums" in report.summary()


def test_verification_costs_no_change_in_what_is_read(store, dataset):
    a, b = read_store(store), read_store(store, verify=False)
    assert np.array_equal(a.X, b.X, equal_nan=True) and list(a.ids) == list(b.ids) == list(dataset.ids)
