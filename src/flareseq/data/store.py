"""The columnar store: a directory of Parquet parts and a JSON manifest written last.

The layout is specified precisely in ``docs/store.md`` (another engine, Spark, writes the
same stores); in short:

- ``part-NNNNN.parquet``: one row per sample, columns ``id``, ``label`` (int8, -1 =
  unlabelled), the metadata columns, one ``fixed_size_list<float32>[T]`` column per feature
  and one ``aux__NAME`` column per side series; zstd, BYTE_STREAM_SPLIT for floats.
- ``manifest.json``: schema version, sources, counts, skipped records and a content hash.
  It is written last, so a directory without it is an incomplete store.
- ``skipped.tsv``: the records skipped under ``on_error="skip"`` (file, line, field, reason).

Writes go to a hidden sibling directory that is renamed into place when complete, so an
interrupted ingest never leaves a store that reads as complete.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import uuid
import warnings
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from flareseq import __version__
from flareseq.data.dataset import FlareDataset
from flareseq.data.hashing import ContentHasher, content_hash, sample_digests  # noqa: F401 (re-exported)
from flareseq.data.schema import STORE_SCHEMA_VERSION, UNLABELLED
from flareseq.data.skips import SkipLog

# The store's other modules, re-exported: `from flareseq.data.store import ...` gives the whole API.
from flareseq.data.store_files import (  # noqa: F401
    check_not_inside,
    check_replaceable,
    recover_leftovers,
    remove_store_files,
)
from flareseq.data.store_format import (  # noqa: F401
    AUX_PREFIX,
    DIGEST_KEY,
    MANIFEST_NAME,
    SKIPPED_NAME,
    arrow_schema,
    aux_kind,
    file_sha256,
    is_store,
    manifest_digest,
    read_manifest,
)
from flareseq.data.store_read import iter_store_batches, read_store, table_to_dataset  # noqa: F401
from flareseq.data.store_verify import (  # noqa: F401
    StoreVerification,
    StoreVerificationError,
    verify_store,
)
from flareseq.errors import FlareseqWarning, StoreError

__all__ = ["StoreVerification", "StoreWriter", "content_hash", "iter_store_batches", "read_manifest", "read_store",
           "sample_digests", "verify_store", "write_store"]

DEFAULT_ROW_GROUP_SIZE = 4096
DEFAULT_PART_ROWS = 1_000_000


def _labels(dataset: FlareDataset) -> np.ndarray:
    return dataset.y if dataset.y is not None else np.full(dataset.n_samples, UNLABELLED, np.int8)


# -- rows -------------------------------------------------------------------------------
def dataset_to_table(dataset: FlareDataset, schema):
    import pyarrow as pa

    n, T = dataset.n_samples, dataset.n_timesteps
    meta = dataset.meta
    columns = {
        "id": pa.array(dataset.ids.astype(str), pa.string()),
        "label": pa.array(_labels(dataset), pa.int8()),
        "source": pa.array(meta["source"].astype("string"), pa.string(), from_pandas=True),
        "fold": pa.array(meta["fold"].astype("Int64"), pa.int64(), from_pandas=True),
        "region": pa.array(meta["region"].astype("string"), pa.string(), from_pandas=True),
        "start": pa.array(pd.to_datetime(meta["start"]).astype("datetime64[us]"), pa.timestamp("us"), from_pandas=True),
        "end": pa.array(pd.to_datetime(meta["end"]).astype("datetime64[us]"), pa.timestamp("us"), from_pandas=True),
        "goes_class": pa.array(meta["goes_class"].astype("string"), pa.string(), from_pandas=True),
    }
    # (F, n*T): one contiguous block per feature (a 2-D transpose copies fastest)
    X = np.ascontiguousarray(dataset.X.reshape(n * T, dataset.n_features).T)
    for j, name in enumerate(dataset.feature_names):
        columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(X[j]), T)
    for field in schema:
        if not field.name.startswith(AUX_PREFIX):
            continue
        values = dataset.aux.get(field.name[len(AUX_PREFIX):])
        if values is None:  # a source without this side series: all missing (not null lists,
            # which Parquet does not round-trip for fixed-size lists)
            values = np.full((n, T), np.nan) if pa.types.is_floating(field.type.value_type) else np.full(
                (n, T), None, dtype=object)
        if pa.types.is_floating(field.type.value_type):
            columns[field.name] = pa.FixedSizeListArray.from_arrays(
                pa.array(np.asarray(values, np.float64).reshape(-1)), T)
        else:
            flat = [None if v is None else str(v) for v in np.asarray(values, dtype=object).reshape(-1)]
            columns[field.name] = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.string()), T)
    return pa.table([columns[f.name] for f in schema], schema=schema)


# -- writing -------------------------------------------------------------------------------
def _writing(method):
    """Operating-system errors of a writer's method become a :class:`StoreError` (one
    paragraph, exit 2) instead of a traceback."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except OSError as exc:
            raise self._write_error(exc) from None
    return wrapper


class StoreWriter:
    """Write samples into a new store at ``path``, atomically.

    Use as a context manager: samples go in with :meth:`write` (in store order), sources are
    described with :meth:`add_source`, and leaving the block without an exception writes
    the manifest and renames the store into place; an exception removes everything.

    ``overwrite`` replaces only a complete flareseq store that holds nothing but a store's own
    files (:func:`check_replaceable`); ``protect`` lists the inputs: the store is never written
    at or above one of them. Partial stores of killed writers beside ``path`` are cleaned up,
    and a store moved aside by a killed overwrite is put back (:func:`recover_leftovers`).
    """

    def __init__(self, path: str | PathLike[str], *, feature_names: Sequence[str], n_timesteps: int,
                 overwrite: bool = False, row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
                 part_rows: int = DEFAULT_PART_ROWS, engine: str = "python", aux_types: dict | None = None,
                 protect: Sequence[str | PathLike[str]] = ()) -> None:
        self.path = Path(path)
        for source in protect:
            check_not_inside(self.path, Path(source))
        if self.path.exists() or self.path.is_symlink():
            if not overwrite:
                raise StoreError(
                    f"{self.path} already exists; expected a new store path. "
                    "Choose another --out, or pass overwrite=True (CLI: --overwrite) to replace it."
                )
            check_replaceable(self.path)
        self.feature_names = tuple(feature_names)
        self.n_timesteps = int(n_timesteps)
        self.overwrite = overwrite
        self.row_group_size = row_group_size
        self.part_rows = part_rows
        self.engine = engine
        self.tmp = self.path.parent / f".{self.path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.sources: list[dict] = []
        self.parts: list[dict] = []
        self.skips = SkipLog()
        self._hasher = ContentHasher(self.feature_names, self.n_timesteps)
        self._counts = dict(n_samples=0, n_positive=0, n_negative=0, n_unlabelled=0, n_missing_values=0)
        self._folds: dict[str, int] = {}
        # side series: fixed up front when the caller knows them ({name: "float64"|"string"}),
        # otherwise by the first samples written
        self._schema = None if aux_types is None else arrow_schema(self.feature_names, self.n_timesteps,
                                                                     dict(sorted(aux_types.items())))
        self._writer = None
        self._pending: list = []
        self._pending_rows = 0
        self._part_rows_written = 0
        self._closed = False

    def __enter__(self) -> StoreWriter:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            recover_leftovers(self.path)
            self.tmp.mkdir()
        except OSError as exc:
            raise self._write_error(exc) from None
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
            return
        try:
            self.close()
        except BaseException:
            # e.g. disk full while the last part or the manifest is written: the partial
            # store must not stay behind, hidden, keeping the disk full
            self.abort()
            raise

    # -- samples ---------------------------------------------------------------------
    @_writing
    def write(self, dataset: FlareDataset) -> None:
        """Append samples (in store order)."""
        if dataset.feature_names != self.feature_names or dataset.n_timesteps != self.n_timesteps:
            raise StoreError(
                f"cannot add {dataset.n_timesteps} steps of {list(dataset.feature_names)} to a store of "
                f"{self.n_timesteps} steps of {list(self.feature_names)}; ingest them into separate stores."
            )
        if dataset.n_samples == 0:
            return
        if self._schema is None:
            self._schema = arrow_schema(self.feature_names, self.n_timesteps,
                                        {k: aux_kind(v) for k, v in sorted(dataset.aux.items())})
        extra = sorted(set(dataset.aux) - set(self._aux_names))
        if extra:
            warnings.warn(f"side series {extra} are not stored: the store's side series were fixed by its first "
                          f"samples as {self._aux_names}. Ingest sources of different kinds into separate stores "
                          "to keep them.", FlareseqWarning, stacklevel=2)
        labels = _labels(dataset)
        self._hasher.update(dataset.ids, labels, dataset.X)
        c = self._counts
        c["n_samples"] += dataset.n_samples
        c["n_positive"] += int((labels == 1).sum())
        c["n_negative"] += int((labels == 0).sum())
        c["n_unlabelled"] += int((labels == UNLABELLED).sum())
        c["n_missing_values"] += dataset.n_missing_values
        for fold, count in dataset.meta["fold"].astype("Int64").value_counts(dropna=False).items():
            key = "unknown" if pd.isna(fold) else str(int(fold))
            self._folds[key] = self._folds.get(key, 0) + int(count)
        self._pending.append(dataset_to_table(dataset, self._schema))
        self._pending_rows += dataset.n_samples
        if self._pending_rows >= self.row_group_size:
            self._flush()

    def _write_error(self, exc: OSError) -> StoreError:
        """An operating-system error while writing (disk full, read-only folder, no
        permission) as one paragraph; the partial store is removed by the caller's abort."""
        reason = exc.strerror or str(exc)
        fixes = {errno.ENOSPC: "Free some space or choose another --out",
                 errno.EDQUOT: "Free some space (your disk quota is full) or choose another --out",
                 errno.EROFS: "The file system is read-only: choose another --out",
                 errno.EACCES: "You may not write there: choose another --out or change its permissions",
                 errno.EPERM: "You may not write there: choose another --out or change its permissions",
                 errno.EFBIG: "A file size limit (ulimit -f) was reached: raise it or choose another --out"}
        fix = fixes.get(exc.errno) or next((text for code, text in fixes.items() if os.strerror(code) in reason),
                                           "Check the folder and choose another --out if needed")
        return StoreError(f"cannot write the store {self.path}: {reason}. {fix}; nothing of this ingest is left "
                          "behind (inputs and other stores are untouched).")

    @property
    def _aux_names(self) -> list[str]:
        return [f.name[len(AUX_PREFIX):] for f in self._schema if f.name.startswith(AUX_PREFIX)]

    @_writing
    def new_part(self) -> None:
        """Start a new part file for the next samples (e.g. at a new source)."""
        self._flush()
        self._close_part()

    def add_source(self, info: dict) -> None:
        """Describe one input (path, format, record counts) for the manifest."""
        self.sources.append(dict(info))

    def add_skipped(self, skips: SkipLog) -> None:
        self.skips.extend(skips.records)

    # -- parts -----------------------------------------------------------------------
    def _flush(self) -> None:
        import pyarrow as pa

        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        self._pending, self._pending_rows = [], 0
        for start in range(0, table.num_rows, self.row_group_size):
            piece = table.slice(start, self.row_group_size)
            if self._writer is not None and self._part_rows_written >= self.part_rows:
                self._close_part()
            if self._writer is None:
                self._open_part()
            self._writer.write_table(piece, row_group_size=self.row_group_size)
            self._part_rows_written += piece.num_rows
            self.parts[-1]["n_samples"] += piece.num_rows

    def _open_part(self) -> None:
        import pyarrow.parquet as pq

        name = f"part-{len(self.parts):05d}.parquet"
        # encodings are set per leaf column: a list column's values are NAME.list.element
        floats = [f"{f.name}.list.element" for f in self._schema if f.name in self.feature_names or
                  (f.name.startswith(AUX_PREFIX) and str(f.type.value_type) == "double")]
        self._writer = pq.ParquetWriter(
            self.tmp / name, self._schema, compression="zstd", compression_level=1,
            use_dictionary=["source", "region", "goes_class"] + [
                f"{f.name}.list.element" for f in self._schema
                if f.name.startswith(AUX_PREFIX) and f"{f.name}.list.element" not in floats],
            use_byte_stream_split=floats, write_statistics=["fold", "label"], version="2.6",
            write_page_checksum=True,
        )
        self.parts.append({"file": name, "n_samples": 0})
        self._part_rows_written = 0

    def _close_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            # the part's checksum, from the bytes on disk: readers check it before decoding
            part = self.parts[-1]
            part["sha256"], part["n_bytes"] = file_sha256(self.tmp / part["file"])

    # -- finishing -------------------------------------------------------------------
    @_writing
    def close(self) -> dict:
        """Write the manifest last and move the store into place; returns the manifest."""
        if self._closed:
            raise StoreError(f"the store writer for {self.path} is already closed.")
        self._flush()
        self._close_part()
        if self.skips.records:
            self.skips.write_tsv(self.tmp / SKIPPED_NAME)
        manifest = {
            "format": "flareseq-store",
            "schema_version": STORE_SCHEMA_VERSION,
            "created_by": f"flareseq {__version__} ({self.engine} engine)",
            "feature_names": list(self.feature_names),
            "n_timesteps": self.n_timesteps,
            "aux_names": self._aux_names if self._schema is not None else [],
            "counts": dict(self._counts),
            "folds": dict(sorted(self._folds.items())),
            "n_skipped": len(self.skips),
            "skipped_file": SKIPPED_NAME if self.skips.records else None,
            "sources": self.sources,
            "parts": self.parts,
            "content_hash": self._hasher.hexdigest(),
        }
        manifest[DIGEST_KEY] = manifest_digest(manifest)
        (self.tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        old = None
        if self.path.exists() or self.path.is_symlink():
            if not self.overwrite:  # another writer finished first: its store stays, this one goes
                raise StoreError(f"{self.path} was created by another process while this ingest ran; it was kept "
                                 "and this store was not written. Pass --overwrite to replace it, or choose another "
                                 "--out.")
            check_replaceable(self.path)  # again: it may have changed since __init__
            # overwrite: move the old store aside, then remove what it holds
            old = self.path.parent / f".{self.path.name}.old-{uuid.uuid4().hex[:8]}"
            self.path.rename(old)
        try:
            self.tmp.rename(self.path)
        except OSError as exc:
            if old is not None:
                old.rename(self.path)  # put the old store back
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise StoreError(f"{self.path} was created by another process at the same moment; it was kept and "
                                 "this store was not written. Choose another --out.") from None
            raise
        self._closed = True
        if old is not None:
            remove_store_files(old)
        return manifest

    def abort(self) -> None:
        self._pending = []
        try:
            self._close_part()
        except Exception:  # noqa: BLE001 - a failing writer (disk full) must not keep its files
            pass
        finally:
            if self.tmp.is_dir() and not self._closed:
                remove_store_files(self.tmp)
            self._closed = True


def write_store(dataset: FlareDataset, path: str | PathLike[str], *, overwrite: bool = False,
                source: dict | None = None, protect: Sequence[str | PathLike[str]] = ()) -> dict:
    """Write one in-memory dataset as a store; returns the manifest. ``protect``: the inputs
    the dataset was read from (the store may not be written at or above them)."""
    with StoreWriter(path, feature_names=dataset.feature_names, n_timesteps=dataset.n_timesteps,
                     overwrite=overwrite, protect=protect) as writer:
        writer.write(dataset)
        writer.add_source(source or {"path": "<memory>", "format": "dataset", "n_records": dataset.n_samples,
                                     "n_read": dataset.n_samples, "n_skipped": 0})
    return read_manifest(path)
