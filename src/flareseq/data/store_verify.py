"""Checking a store against its manifest: :func:`verify_store` (``flareseq verify``) and
the cheap cross-check ``flareseq summary`` runs before it prints a store's counts.

Quick (``full=False``): every part's SHA-256 and size, its footer (row count) and schema,
no part missing or unlisted, and the manifest's counts consistent with each other. Full
(``full=True``): also every row decoded, the content hash recomputed from ids, labels and
features, and the counts (samples, labels, folds, missing values) recounted. A store
written before parts had checksums is checked in full even when ``full=False``: that is the
only way to vouch for it.

The content hash :func:`verify_store` returns is one it has vouched for: recomputed from the
rows (full), or the manifest's, with every part byte-identical to what was hashed when the
store was written (quick). That is the value to record as a run's data provenance.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np

from flareseq.data.hashing import ContentHasher
from flareseq.data.schema import UNLABELLED
from flareseq.data.store_format import (
    COUNT_KEYS,
    DIGEST_KEY,
    MANIFEST_NAME,
    PART_NAME,
    REINGEST,
    SKIPPED_NAME,
    check_manifest_digest,
    check_part_checksum,
    has_checksums,
    open_part,
    read_manifest,
)
from flareseq.data.store_read import _batches, _features_block
from flareseq.errors import StoreError

__all__ = ["StoreVerification", "StoreVerificationError", "cross_check_counts", "verify_store"]


@dataclass
class StoreVerification:
    """What :func:`verify_store` checked and found.

    Attributes
    ----------
    path : the store.
    full : whether every row was read and the content hash recomputed.
    content_hash : the content hash verified (``"sha256:..."``); the one to record as a
        run's data provenance.
    checks : one line per check that passed.
    problems : one line per mismatch (empty when the store is sound).
    """

    path: Path
    full: bool
    content_hash: str | None = None
    checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        lines = [f"store {self.path} ({'full' if self.full else 'quick'} check):"]
        lines += [f"  ok: {line}" for line in self.checks]
        lines += [f"  MISMATCH: {line}" for line in self.problems]
        if self.ok:
            lines.append(f"verified: content hash {self.content_hash}")
        return "\n".join(lines)


class StoreVerificationError(StoreError):
    """A store does not match its manifest; ``report`` holds every check and mismatch."""

    def __init__(self, report: StoreVerification) -> None:
        self.report = report
        shown = "; ".join(report.problems[:3]) + (f"; and {len(report.problems) - 3} more" if len(report.problems) > 3
                                                   else "")
        super().__init__(f"{report.path}: the store does not match its {MANIFEST_NAME}: {shown}. Its data cannot be "
                         f"trusted. {REINGEST}")


def verify_store(path: str | PathLike[str], *, full: bool = False) -> StoreVerification:
    """Check a store against its manifest; returns what was checked and the verified hash.

    Parameters
    ----------
    path : the store.
    full : read every row: recompute the content hash and recount samples, labels, folds and
        missing values (a full read of the store); otherwise check checksums, footers,
        schemas and the manifest's own consistency (a read of the files' bytes, no decoding).

    Returns
    -------
    StoreVerification
        ``content_hash`` is the verified hash (see the module's notes).

    Raises
    ------
    StoreVerificationError
        On any mismatch; its ``report`` lists every check and problem.
    StoreError
        When there is no readable manifest at all.
    """
    path = Path(path)
    manifest = read_manifest(path)
    full = full or not has_checksums(manifest)  # nothing else vouches for an old store
    report = StoreVerification(path, full)
    report.checks.append(f"{MANIFEST_NAME}: format flareseq-store, schema version {manifest['schema_version']}, "
                         f"{len(manifest['parts'])} part(s), {manifest['counts']['n_samples']:,} samples")
    if not has_checksums(manifest):
        report.checks.append("parts have no checksums (written by an older flareseq): checked from their rows")
    try:
        check_manifest_digest(path, manifest)
        if DIGEST_KEY in manifest:
            report.checks.append(f"{MANIFEST_NAME}: content matches its digest ({DIGEST_KEY})")
    except StoreError:
        report.problems.append(f"{MANIFEST_NAME}: its content no longer matches its digest ({DIGEST_KEY}): "
                               "edited after ingest")
    _check_files(path, manifest, report)
    parquets = _check_parts(path, manifest, report)
    _check_manifest_counts(manifest, report)
    _check_skipped(path, manifest, report)
    if full and len(parquets) == len(manifest["parts"]):
        _check_rows(path, manifest, parquets, report)
    elif report.ok:
        _check_label_counts(path, manifest, report)
        if report.ok:
            report.content_hash = manifest["content_hash"]
    if not report.ok:
        raise StoreVerificationError(report)
    return report


def _problem(exc: StoreError) -> str:
    """An error's message without the advice it ends with (the report gives it once)."""
    return str(exc).split(". Run `flareseq verify")[0].split(f". {REINGEST}")[0].rstrip(".")


def _check_files(path: Path, manifest: dict, report: StoreVerification) -> None:
    listed = {p["file"] for p in manifest["parts"]}
    present = {f.name for f in path.iterdir() if PART_NAME.match(f.name)}
    for name in sorted(listed - present):
        report.problems.append(f"{name}: listed in {MANIFEST_NAME} but missing")
    for name in sorted(present - listed):
        report.problems.append(f"{name}: a part file not listed in {MANIFEST_NAME} (added after ingest?)")
    if listed <= present and present <= listed:
        report.checks.append(f"part files: the {len(listed)} listed, no others")


def _check_parts(path: Path, manifest: dict, report: StoreVerification) -> list:
    parquets = []
    for part in manifest["parts"]:
        if not (path / part["file"]).is_file():
            continue
        try:
            if "sha256" in part:
                check_part_checksum(path, part)
            parquet = open_part(path, part, verify=False, manifest=manifest)
        except StoreError as exc:
            report.problems.append(_problem(exc))
            continue
        parquets.append(parquet)
        checksum = f"SHA-256 and size ({part['n_bytes']:,} bytes), " if "sha256" in part else ""
        groups = parquet.metadata.num_row_groups
        report.checks.append(f"{part['file']}: {checksum}footer ({groups} row group{'s' * (groups != 1)}, "
                             f"{part['n_samples']:,} rows), schema")
    return parquets


def _check_manifest_counts(manifest: dict, report: StoreVerification) -> None:
    c = manifest["counts"]
    problems = []
    total = sum(p["n_samples"] for p in manifest["parts"])
    if total != c["n_samples"]:
        problems.append(f"counts.n_samples is {c['n_samples']:,} but the parts list {total:,} rows")
    if c["n_positive"] + c["n_negative"] + c["n_unlabelled"] != c["n_samples"]:
        problems.append(f"counts: n_positive + n_negative + n_unlabelled = "
                        f"{c['n_positive'] + c['n_negative'] + c['n_unlabelled']:,}, not n_samples {c['n_samples']:,}")
    folds = manifest.get("folds", {})
    if folds and sum(v for v in folds.values() if isinstance(v, int)) != c["n_samples"]:
        problems.append(f"folds add up to {sum(v for v in folds.values() if isinstance(v, int)):,}, "
                        f"not n_samples {c['n_samples']:,}")
    for s in manifest.get("sources", []):
        if isinstance(s, dict) and all(isinstance(s.get(k), int) for k in ("n_records", "n_read", "n_skipped")):
            if s["n_read"] + s["n_skipped"] != s["n_records"]:
                problems.append(f"source {s.get('path')!r}: n_read + n_skipped != n_records")
    report.problems.extend(problems)
    if not problems:
        report.checks.append("manifest counts agree with each other and with the parts' rows")


def _check_skipped(path: Path, manifest: dict, report: StoreVerification) -> None:
    n_skipped = manifest.get("n_skipped", 0)
    file = path / SKIPPED_NAME
    if not n_skipped and not file.exists():
        return
    try:
        with file.open(newline="", encoding="utf-8") as handle:
            rows = sum(1 for _ in csv.reader(handle, delimiter="\t")) - 1
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        report.problems.append(f"{SKIPPED_NAME}: unreadable ({type(exc).__name__}) but n_skipped is {n_skipped}")
        return
    if rows != n_skipped:
        report.problems.append(f"{SKIPPED_NAME} lists {rows:,} records, the manifest's n_skipped is {n_skipped:,}")
    else:
        report.checks.append(f"{SKIPPED_NAME}: {rows:,} records, as n_skipped")


def _check_label_counts(path: Path, manifest: dict, report: StoreVerification) -> None:
    try:
        wrong = _count_mismatches(manifest, _label_and_fold_counts(path, manifest))
    except StoreError as exc:
        wrong = [_problem(exc)]
    report.problems.extend(wrong)
    if not wrong:
        report.checks.append("labels and folds recounted from their columns (features not decoded; --full does)")


def _check_rows(path: Path, manifest: dict, parquets: list, report: StoreVerification) -> None:
    """Decode every row of every column; recompute the content hash and the counts."""
    names, T = manifest["feature_names"], manifest["n_timesteps"]
    hasher = ContentHasher(names, T)
    counts = dict.fromkeys(COUNT_KEYS, 0)
    folds: dict[str, int] = {}
    for part, parquet in zip(manifest["parts"], parquets):
        file = path / part["file"]
        try:
            for batch in _batches(file, parquet, 65_536, None):  # every column: every page decoded
                labels = batch.column("label").to_numpy(zero_copy_only=False).astype(np.int8)
                ids = np.asarray(batch.column("id").to_numpy(zero_copy_only=False)).astype(str)
                X = _features_block(batch, names, batch.num_rows, T, file)
                bad = ~np.isin(labels, (0, 1, UNLABELLED))
                if bad.any():
                    raise StoreError(f"{file}: label {int(labels[bad][0])}, expected 1, 0 or -1")
                hasher.update(ids, labels, X)
                counts["n_samples"] += batch.num_rows
                counts["n_positive"] += int((labels == 1).sum())
                counts["n_negative"] += int((labels == 0).sum())
                counts["n_unlabelled"] += int((labels == UNLABELLED).sum())
                counts["n_missing_values"] += int(np.isnan(X).sum())
                _add_folds(folds, batch.column("fold"))
        except StoreError as exc:
            report.problems.append(_problem(exc))
            return
    report.checks.append(f"every row decoded: {counts['n_samples']:,} samples, every page's checksum")
    recount = [f"counts.{k} is {manifest['counts'][k]:,}, the rows hold {counts[k]:,}"
               for k in COUNT_KEYS if manifest["counts"][k] != counts[k]]
    if manifest.get("folds", {}) != dict(sorted(folds.items())):
        recount.append(f"folds are {manifest.get('folds')}, the rows hold {dict(sorted(folds.items()))}")
    report.problems.extend(recount)
    if not recount:
        report.checks.append("counts (samples, labels, missing values, folds) recounted from the rows")
    digest = hasher.hexdigest()
    if digest != manifest["content_hash"]:
        report.problems.append(f"content hash recomputed from the rows is {digest}, the manifest says "
                               f"{manifest['content_hash']} (ids, labels or features changed)")
    else:
        report.checks.append("content hash recomputed from ids, labels and features")
    if report.ok:
        report.content_hash = digest


def _label_and_fold_counts(path: Path, manifest: dict) -> dict:
    """Rows, labels and folds of every part, from two small columns (no features decoded)."""
    counts = {"n_samples": 0, "n_positive": 0, "n_negative": 0, "n_unlabelled": 0}
    folds: dict[str, int] = {}
    for part in manifest["parts"]:
        file = path / part["file"]
        if not file.is_file():
            raise StoreError(f"{file}: listed in {MANIFEST_NAME} but missing. {REINGEST}")
        parquet = open_part(path, part, verify=False, manifest=manifest)
        for batch in _batches(file, parquet, 1 << 20, ["label", "fold"]):
            values = batch.column("label").to_numpy(zero_copy_only=False)
            counts["n_positive"] += int((values == 1).sum())
            counts["n_negative"] += int((values == 0).sum())
            counts["n_unlabelled"] += int((values == UNLABELLED).sum())
            counts["n_samples"] += batch.num_rows
            _add_folds(folds, batch.column("fold"))
    return {"counts": counts, "folds": dict(sorted(folds.items()))}


def _add_folds(folds: dict, column) -> None:
    found, n = np.unique(column.drop_null().to_numpy(), return_counts=True)
    for v, k in zip(found.tolist(), n.tolist()):
        folds[str(v)] = folds.get(str(v), 0) + k
    if column.null_count:
        folds["unknown"] = folds.get("unknown", 0) + column.null_count


def _count_mismatches(manifest: dict, found: dict) -> list[str]:
    c = manifest["counts"]
    wrong = [f"counts.{k} is {c[k]:,} but the parts hold {v:,}" for k, v in found["counts"].items() if c[k] != v]
    if manifest.get("folds", {}) and manifest["folds"] != found["folds"]:
        wrong.append(f"folds are {manifest['folds']} but the parts hold {found['folds']}")
    return wrong


def cross_check_counts(path: str | PathLike[str], manifest: dict) -> str:
    """What ``flareseq summary`` checks before it prints a store's counts: each part's
    footer against its row count, and the labels and folds (two small columns) against
    the manifest's counts. Returns a note saying what was checked; a :class:`StoreError`
    on a mismatch (an edited or damaged manifest)."""
    path = Path(path)
    check_manifest_digest(path, manifest)
    wrong = _count_mismatches(manifest, _label_and_fold_counts(path, manifest))
    if wrong:
        raise StoreError(f"{path / MANIFEST_NAME}: {'; '.join(wrong)}: the manifest was edited or the store is "
                         f"damaged, so its figures are not printed. Run `flareseq verify {path} --full`. {REINGEST}")
    digest = "manifest digest and " if DIGEST_KEY in manifest else ""
    return (f"store {digest}counts checked against the parts' rows, labels and folds; missing values as the "
            f"manifest records them (`flareseq verify {path}` checks checksums, --full recounts everything)")
