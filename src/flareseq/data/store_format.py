"""The store's layout: file names, the Arrow schema, the manifest and part checksums.

Specified in ``docs/store.md``. Shared by the writer (:mod:`.store`), the readers
(:mod:`.store_read`) and the checks (:mod:`.store_verify`); it reads nothing but the
manifest, and checks that what the manifest says is well formed before anyone trusts it:
a manifest edited by hand (or by an attacker) must give a :class:`StoreError`, never a
``KeyError`` or a part path outside the store.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np

from flareseq.data.limits import clip, shorten
from flareseq.data.schema import STORE_SCHEMA_VERSION
from flareseq.errors import StoreError

MANIFEST_NAME = "manifest.json"
SKIPPED_NAME = "skipped.tsv"
AUX_PREFIX = "aux__"
PART_NAME = re.compile(r"^part-\d{5,}\.parquet$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
DIGEST_KEY = "manifest_sha256"
MAX_MANIFEST_BYTES = 64 << 20  # a real manifest is a few KB; a larger one is not a store's
BASE_COLUMNS = ("id", "label", "source", "fold", "region", "start", "end", "goes_class")
COUNT_KEYS = ("n_samples", "n_positive", "n_negative", "n_unlabelled", "n_missing_values")
REINGEST = "Re-run `flareseq ingest` to rebuild the store from its inputs."


def arrow_schema(feature_names: Sequence[str], n_timesteps: int, aux_types: dict | None = None):
    """The Arrow schema of a store's parts (``aux_types``: side series name -> ``"float64"``
    or ``"string"``)."""
    import pyarrow as pa

    fields = [
        pa.field("id", pa.string(), nullable=False),
        pa.field("label", pa.int8(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("fold", pa.int64()),
        pa.field("region", pa.string()),
        pa.field("start", pa.timestamp("us")),
        pa.field("end", pa.timestamp("us")),
        pa.field("goes_class", pa.string()),
    ]
    fields += [pa.field(name, pa.list_(pa.float32(), n_timesteps), nullable=False) for name in feature_names]
    for name, kind in (aux_types or {}).items():
        inner = pa.float64() if kind == "float64" else pa.string()
        fields.append(pa.field(AUX_PREFIX + name, pa.list_(inner, n_timesteps)))
    meta = {"flareseq": json.dumps({"schema_version": STORE_SCHEMA_VERSION, "feature_names": list(feature_names),
                                    "n_timesteps": n_timesteps})}
    return pa.schema(fields, metadata=meta)


def aux_kind(values: np.ndarray) -> str:
    return "float64" if values.dtype.kind in "fiub" else "string"


def file_sha256(path: str | PathLike[str]) -> tuple[str, int]:
    """``(hex SHA-256, size in bytes)`` of a file, read in 1 MiB blocks (constant memory)."""
    digest = hashlib.sha256()
    n = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            n += len(block)
    return digest.hexdigest(), n


def is_store(path: str | PathLike[str]) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / MANIFEST_NAME).exists() or any(path.glob("part-*.parquet")))


def read_manifest(path: str | PathLike[str]) -> dict:
    """The manifest of a complete store, checked to be well formed; a :class:`StoreError`
    for anything else (it says what is wrong and how to rebuild the store)."""
    path = Path(path)
    if not path.is_dir():
        raise StoreError(f"{path}: expected a store directory, found {'a file' if path.exists() else 'nothing'}.")
    manifest_path = path / MANIFEST_NAME
    if not manifest_path.exists():
        raise StoreError(
            f"{path}: expected a complete store with {MANIFEST_NAME}, found none: the store is incomplete "
            "(its ingest was interrupted, failed or is still running). Run `flareseq ingest` again."
        )
    try:
        if manifest_path.stat().st_size > MAX_MANIFEST_BYTES:
            raise StoreError(f"{manifest_path}: expected a manifest of a few KB, found "
                             f"{manifest_path.stat().st_size:,} bytes. {REINGEST}")
        manifest = json.loads(manifest_path.read_bytes())
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, nesting
        raise StoreError(f"{manifest_path}: expected a JSON manifest, found invalid JSON "
                         f"({shorten(str(exc), 100)}). {REINGEST}") from None
    except OSError as exc:
        raise StoreError(f"{manifest_path}: cannot read the manifest ({exc.strerror or exc}).") from None
    if not isinstance(manifest, dict):
        raise StoreError(f"{manifest_path}: expected a JSON object, found {type(manifest).__name__}. {REINGEST}")
    version = manifest.get("schema_version")
    if manifest.get("format") != "flareseq-store" or version != STORE_SCHEMA_VERSION:
        raise StoreError(
            f"{manifest_path}: expected a flareseq store of schema version {STORE_SCHEMA_VERSION}, found "
            f"format {clip(manifest.get('format'), 40)} version {clip(version, 20)}. Re-ingest the data with this "
            "flareseq version."
        )
    _check_manifest_shape(manifest_path, manifest)
    return manifest


def _check_manifest_shape(where: Path, m: dict) -> None:
    """Types and names of what readers use; a part name must be a plain ``part-N.parquet``."""
    def bad(key: str, expected: str, value) -> StoreError:
        return StoreError(f"{where}: key {key!r}: expected {expected}, found {clip(value, 60)}. The manifest was "
                          f"edited or damaged. {REINGEST}")

    def count(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    names = m.get("feature_names")
    if (not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names)
            or len(set(names)) != len(names) or set(names) & set(BASE_COLUMNS)):
        raise bad("feature_names", "a list of distinct feature names", names)
    if not count(m.get("n_timesteps")) or m["n_timesteps"] == 0:
        raise bad("n_timesteps", "a positive integer", m.get("n_timesteps"))
    aux = m.get("aux_names", [])
    if not isinstance(aux, list) or not all(isinstance(n, str) for n in aux) or len(set(aux)) != len(aux):
        raise bad("aux_names", "a list of distinct names", aux)
    counts = m.get("counts")
    if not isinstance(counts, dict) or not all(count(counts.get(k)) for k in COUNT_KEYS):
        raise bad("counts", f"non-negative integers {list(COUNT_KEYS)}", counts)
    parts = m.get("parts")
    if not isinstance(parts, list):
        raise bad("parts", "a list of parts", parts)
    for i, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("file"), str) or not PART_NAME.match(part["file"]):
            raise bad(f"parts[{i}]", "{'file': 'part-NNNNN.parquet', ...} (a plain name inside the store)", part)
        if i and _part_number(part["file"]) <= _part_number(parts[i - 1]["file"]):
            raise bad(f"parts[{i}]", "parts listed in store order (ascending part numbers)", part["file"])
        if not count(part.get("n_samples")):
            raise bad(f"parts[{i}].n_samples", "a non-negative integer", part.get("n_samples"))
        if "sha256" in part and not (isinstance(part["sha256"], str) and _SHA256.match(part["sha256"])
                                     and count(part.get("n_bytes"))):
            raise bad(f"parts[{i}]", "a sha256 of 64 hex digits and n_bytes", part)
    if not isinstance(m.get("content_hash"), str):
        raise bad("content_hash", "'sha256:<64 hex digits>'", m.get("content_hash"))
    if not isinstance(m.get("folds", {}), dict) or not isinstance(m.get("sources", []), list):
        raise bad("folds/sources", "an object and a list", (m.get("folds"), m.get("sources")))


def _part_number(name: str) -> int:
    return int(name[len("part-"):-len(".parquet")])


def has_checksums(manifest: dict) -> bool:
    """Whether every part carries its SHA-256 and the manifest its own digest (stores written
    before checksums do not)."""
    return all("sha256" in p for p in manifest["parts"]) and isinstance(manifest.get(DIGEST_KEY), str)


def manifest_digest(manifest: dict) -> str:
    """SHA-256 of the manifest's content (canonical JSON, without this digest and without
    ``created_by``, so that both engines write the same digest for the same inputs): an edit
    by hand, of a count or of the content hash, no longer matches it."""
    content = {k: v for k, v in manifest.items() if k not in (DIGEST_KEY, "created_by")}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_manifest_digest(path: Path, manifest: dict) -> None:
    """Raise if the manifest has a digest and its content no longer matches it."""
    recorded = manifest.get(DIGEST_KEY)
    if recorded is not None and recorded != manifest_digest(manifest):
        raise StoreError(f"{path / MANIFEST_NAME}: its content no longer matches the digest written with it "
                         f"({DIGEST_KEY}): the manifest was edited after ingest, so neither its counts nor its "
                         f"content hash can be trusted. Run `flareseq verify {path} --full` to see what the rows "
                         f"hold. {REINGEST}")


def part_files(path: Path, manifest: dict) -> list[Path]:
    files = [path / p["file"] for p in manifest["parts"]]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise StoreError(f"{path}: expected the parts listed in {MANIFEST_NAME}, found {missing[:5]} missing. "
                         f"{REINGEST}")
    return files


def check_part_checksum(path: Path, part: dict) -> None:
    """Raise unless the part file has the size and SHA-256 the manifest records."""
    file = path / part["file"]
    try:
        digest, n_bytes = file_sha256(file)
    except OSError as exc:
        raise StoreError(f"{file}: cannot read the part ({exc.strerror or exc}). {REINGEST}") from None
    if n_bytes != part["n_bytes"] or digest != part["sha256"]:
        raise StoreError(
            f"{file}: expected {part['n_bytes']:,} bytes with SHA-256 {part['sha256'][:16]}... ({MANIFEST_NAME}), "
            f"found {n_bytes:,} bytes with {digest[:16]}...: the part was changed or damaged after it was written. "
            f"Run `flareseq verify {path}` for a full report. {REINGEST}"
        )


def open_part(path: Path, part: dict, *, verify: bool = True, manifest: dict | None = None):
    """The part as a ``pyarrow.parquet.ParquetFile`` (Parquet page checksums verified as
    pages are decoded), after checking its SHA-256 (when ``verify`` and the manifest has
    one), its footer's row count and, given the ``manifest``, its schema; a damaged part is
    a :class:`StoreError`, never an Arrow exception."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = path / part["file"]
    if verify and "sha256" in part:
        check_part_checksum(path, part)
    try:
        parquet = pq.ParquetFile(file, page_checksum_verification=True)
        schema = parquet.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise damaged_part_error(file, exc) from None
    if parquet.metadata.num_rows != part["n_samples"]:
        raise StoreError(f"{file}: expected {part['n_samples']:,} rows ({MANIFEST_NAME}), found "
                         f"{parquet.metadata.num_rows:,} in its footer. The store is damaged. {REINGEST}")
    if manifest is not None:
        check_part_schema(file, schema, manifest)
    return parquet


def check_part_schema(file: Path, schema, manifest: dict) -> None:
    """Raise unless the part has the columns and types of the manifest's store."""
    import pyarrow as pa

    T = manifest["n_timesteps"]
    expected = {f.name: f.type for f in arrow_schema(manifest["feature_names"], T)}
    for name in manifest.get("aux_names", []):
        expected[AUX_PREFIX + name] = None  # numeric or text, T per sample
    found = {f.name: f.type for f in schema}
    wrong = []
    order = [name for name in schema.names if name in set(manifest["feature_names"])]
    if order != list(manifest["feature_names"]) and set(order) == set(manifest["feature_names"]):
        wrong.append(f"the feature columns in another order ({clip(order[:3])}...)")
    for name, kind in expected.items():
        have = found.get(name)
        if have is None:
            wrong.append(f"no column {name!r}")
        elif kind is None:
            if not (pa.types.is_fixed_size_list(have) and have.list_size == T):
                wrong.append(f"{name!r} of type {have}")
        elif have != kind:
            wrong.append(f"{name!r} of type {have} (expected {kind})")
    if wrong:
        raise StoreError(f"{file}: expected the store's schema ({len(expected)} columns of {MANIFEST_NAME}), found "
                         f"{', '.join(wrong[:3])}{' ...' if len(wrong) > 3 else ''}. The part was rewritten or "
                         f"damaged. {REINGEST}")


def damaged_part_error(file: Path, exc: BaseException) -> StoreError:
    return StoreError(f"{file}: expected a readable Parquet part, found {type(exc).__name__}: "
                      f"{shorten(str(exc), 120).rstrip('.')} (truncated or damaged). Run `flareseq verify "
                      f"{file.parent}` for a full report. {REINGEST}")
