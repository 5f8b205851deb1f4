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

import json
import os
import uuid
import warnings
from collections.abc import Iterator, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from flareseq import __version__
from flareseq.data.dataset import FlareDataset, empty_meta
from flareseq.data.hashing import ContentHasher, content_hash, sample_digests  # noqa: F401 (re-exported)
from flareseq.data.schema import STORE_SCHEMA_VERSION, UNLABELLED
from flareseq.data.skips import SkipLog
from flareseq.errors import FlareseqWarning, StoreError

__all__ = ["StoreWriter", "content_hash", "iter_store_batches", "read_manifest", "read_store", "sample_digests",
           "write_store"]

MANIFEST_NAME = "manifest.json"
SKIPPED_NAME = "skipped.tsv"
AUX_PREFIX = "aux__"
DEFAULT_ROW_GROUP_SIZE = 4096
DEFAULT_PART_ROWS = 1_000_000
READ_BATCH_ROWS = 65_536  # rows per Arrow batch when read_store fills X


def _labels(dataset: FlareDataset) -> np.ndarray:
    return dataset.y if dataset.y is not None else np.full(dataset.n_samples, UNLABELLED, np.int8)


# -- Arrow schema --------------------------------------------------------------------------
def arrow_schema(feature_names: Sequence[str], n_timesteps: int, aux_types: dict | None = None):
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        recover_leftovers(self.path)
        self.tmp.mkdir()
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

    @property
    def _aux_names(self) -> list[str]:
        return [f.name[len(AUX_PREFIX):] for f in self._schema if f.name.startswith(AUX_PREFIX)]

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
        )
        self.parts.append({"file": name, "n_samples": 0})
        self._part_rows_written = 0

    def _close_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- finishing -------------------------------------------------------------------
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
        (self.tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        old = None
        if self.path.exists():  # overwrite: move the old store aside, then remove what it holds
            check_replaceable(self.path)  # again: it may have changed since __init__
            old = self.path.parent / f".{self.path.name}.old-{uuid.uuid4().hex[:8]}"
            self.path.rename(old)
        self.tmp.rename(self.path)
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


# -- what may be replaced or removed -------------------------------------------------------
_STORE_FILE_NAMES = (MANIFEST_NAME, SKIPPED_NAME)
_TMP_MARKERS = (".tmp-", ".old-")


def _is_store_file(name: str) -> bool:
    return name in _STORE_FILE_NAMES or (name.startswith("part-") and name.endswith(".parquet"))


def check_replaceable(path: Path) -> None:
    """Raise unless ``path`` is a complete flareseq store holding only a store's own files.

    ``--overwrite`` replaces a store; it must never delete a user's folder, a plain file or
    a store someone added their own files to.
    """
    if path.is_symlink() or not path.is_dir():
        what = "a symbolic link" if path.is_symlink() else "a file"
        raise StoreError(f"{path} is {what}, not a flareseq store; --overwrite replaces only a store. "
                         "Choose another --out.")
    try:
        manifest = json.loads((path / MANIFEST_NAME).read_text())
        is_store = isinstance(manifest, dict) and manifest.get("format") == "flareseq-store"
    except (OSError, ValueError):
        is_store = False
    if not is_store:
        raise StoreError(f"{path} exists and is not a flareseq store (no {MANIFEST_NAME} of format "
                         "'flareseq-store'); --overwrite replaces only a store, never other folders. "
                         "Choose another --out.")
    foreign = sorted(p.name for p in path.iterdir() if p.is_symlink() or not p.is_file()
                     or not _is_store_file(p.name))
    if foreign:
        raise StoreError(f"{path} is a flareseq store but also holds {foreign[:5]}"
                         f"{' ...' if len(foreign) > 5 else ''}, which flareseq did not write; --overwrite "
                         "would delete them. Move them out of the store, or choose another --out.")


def check_not_inside(out: Path, source: Path) -> None:
    """Refuse to write a store at or above one of its own inputs (replacing it would delete it)."""
    out_abs, source_abs = out.resolve(), source.resolve()
    if out_abs == source_abs or out_abs in source_abs.parents:
        raise StoreError(f"--out {out} is {'the input' if out_abs == source_abs else 'a folder holding the input'} "
                         f"{source}; a store is never written over its own input. Choose another --out.")


def remove_store_files(folder: Path) -> None:
    """Delete the files a store writer made in ``folder``, then ``folder`` if it is empty.

    Only a store's own file names are removed (never ``rmtree``): anything else found there
    stays, and so does the folder.
    """
    for entry in folder.iterdir():
        if not entry.is_symlink() and entry.is_file() and _is_store_file(entry.name):
            entry.unlink()
    try:
        folder.rmdir()
    except OSError:
        pass


def recover_leftovers(path: Path) -> list[str]:
    """Deal with what killed ingests left beside ``path``; returns what was done.

    ``.NAME.old-*`` is a store moved aside by an overwrite that was killed before the new one
    took its place: put back when ``path`` is missing, else removed. ``.NAME.tmp-PID-*`` is a
    partial store of a writer that is no longer running: removed (a live writer's is left).
    """
    done = []
    for entry in sorted(path.parent.glob(f".{path.name}.*")):
        marker = entry.name[len(path.name) + 1:]
        if entry.is_symlink() or not entry.is_dir() or not marker.startswith(_TMP_MARKERS):
            continue
        if marker.startswith(".old-"):
            if not path.exists() and (entry / MANIFEST_NAME).is_file():
                entry.rename(path)
                done.append(f"restored {path} from {entry.name}")
            else:
                remove_store_files(entry)
                done.append(f"removed {entry.name}")
        else:
            pid = marker.split("-")[1] if marker.count("-") >= 2 else ""
            if pid.isdigit() and _process_alive(int(pid)):
                continue
            remove_store_files(entry)
            done.append(f"removed {entry.name}")
    return done


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


# -- reading -------------------------------------------------------------------------------
def is_store(path: str | PathLike[str]) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / MANIFEST_NAME).exists() or any(path.glob("part-*.parquet")))


def read_manifest(path: str | PathLike[str]) -> dict:
    """The manifest of a complete store; a :class:`StoreError` for anything else."""
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
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise StoreError(f"{manifest_path}: expected a JSON manifest, found invalid JSON ({exc}).") from None
    version = manifest.get("schema_version")
    if manifest.get("format") != "flareseq-store" or version != STORE_SCHEMA_VERSION:
        raise StoreError(
            f"{manifest_path}: expected a flareseq store of schema version {STORE_SCHEMA_VERSION}, found "
            f"format {manifest.get('format')!r} version {version!r}. Re-ingest the data with this flareseq version."
        )
    return manifest


def _filters(folds: Sequence[int] | None):
    if folds is None:
        return None
    return [("fold", "in", [int(f) for f in folds])]


def _part_files(path: Path, manifest: dict) -> list[Path]:
    files = [path / p["file"] for p in manifest["parts"]]
    missing = [f.name for f in files if not f.exists()]
    if missing:
        raise StoreError(f"{path}: expected the parts listed in {MANIFEST_NAME}, found {missing} missing. "
                         "Re-run `flareseq ingest`.")
    return files




def read_store(path: str | PathLike[str], *, folds: Sequence[int] | None = None,
               aux: bool | Sequence[str] = False) -> FlareDataset:
    """Load a store (or the samples of some folds) as a :class:`FlareDataset`.

    ``X`` is allocated once at its final size and filled row group by row group, so the peak
    memory is the arrays plus one row group (the full Kaggle folds: ~1.2 GB, not three times
    that).

    Parameters
    ----------
    folds : read only the samples of these folds.
    aux : side series to load too: ``True`` (all), or their names. Off by default: models
        never use them, and for a full SWAN-SF store they take more memory than the features
        (16 numeric and 11 text columns per step).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    manifest = read_manifest(path)
    files = _part_files(path, manifest)
    names, T = manifest["feature_names"], int(manifest["n_timesteps"])
    columns = _columns(path, manifest, aux)
    masks = None
    if folds is None:
        n = int(manifest["counts"]["n_samples"])
    else:  # the small fold column first, so that X is allocated once at its final size
        wanted = [int(f) for f in folds]
        masks = [np.isin(pq.read_table(f, columns=["fold"]).column("fold").to_numpy(zero_copy_only=False), wanted)
                 for f in files]
        n = int(sum(int(m.sum()) for m in masks))
    X = np.empty((n, T, len(names)), dtype=np.float32)
    rest, pos = [], 0
    for k, file in enumerate(files):
        offset = 0
        for batch in pq.ParquetFile(file).iter_batches(batch_size=READ_BATCH_ROWS, columns=columns):
            table = pa.Table.from_batches([batch])
            if masks is not None:
                keep = masks[k][offset : offset + table.num_rows]
                offset += table.num_rows
                if not keep.all():
                    table = table.filter(pa.array(keep))
            rows = table.num_rows
            if rows == 0:
                continue
            if pos + rows > n:
                raise StoreError(f"{path}: expected {n} samples (manifest), found more. The store is damaged; "
                                 "re-run `flareseq ingest`.")
            X[pos : pos + rows] = _features_block(table, names, rows, T)
            rest.append(table.drop_columns(names))
            pos += rows
    if pos != n:
        raise StoreError(f"{path}: expected {n} samples (manifest), found {pos}. The store is damaged; "
                         "re-run `flareseq ingest`.")
    small = pa.concat_tables(rest) if rest else arrow_schema(names, T).empty_table().drop_columns(names)
    return table_to_dataset(small, names, T, aux=aux, X=X)


def _features_block(table, names: Sequence[str], rows: int, T: int) -> np.ndarray:
    """``(rows, T, F)`` float32 from the feature columns: feature-major contiguous copies,
    then one 2-D transpose (4x faster than writing each feature into a strided slot)."""
    by_feature = np.empty((len(names), rows * T), dtype=np.float32)
    for j, name in enumerate(names):
        by_feature[j] = _fixed_list_values(table.column(name))
    return np.ascontiguousarray(by_feature.T).reshape(rows, T, len(names))


def _columns(path, manifest: dict, aux: bool | Sequence[str]) -> list[str]:
    base = ["id", "label", "source", "fold", "region", "start", "end", "goes_class", *manifest["feature_names"]]
    available = manifest.get("aux_names", [])
    if aux is True:
        wanted = list(available)
    elif aux is False or aux is None:
        wanted = []
    else:
        wanted = list(aux)
        unknown = [a for a in wanted if a not in available]
        if unknown:
            raise StoreError(f"{path}: expected side series among {available}, found request for {unknown}.")
    return base + [AUX_PREFIX + a for a in wanted]


def iter_store_batches(path: str | PathLike[str], *, batch_size: int = 4096, folds: Sequence[int] | None = None,
                       aux: bool | Sequence[str] = False) -> Iterator[FlareDataset]:
    """Stream a store as datasets of at most ``batch_size`` samples, in store order."""
    import pyarrow.parquet as pq

    path = Path(path)
    manifest = read_manifest(path)
    wanted = None if folds is None else {int(f) for f in folds}
    columns = _columns(path, manifest, aux)
    for part in manifest["parts"]:
        for batch in pq.ParquetFile(path / part["file"]).iter_batches(batch_size=batch_size, columns=columns):
            import pyarrow as pa

            table = pa.Table.from_batches([batch])
            if wanted is not None:
                mask = np.isin(table.column("fold").to_numpy(zero_copy_only=False), list(wanted))
                table = table.filter(pa.array(mask))
            if table.num_rows:
                yield table_to_dataset(table, manifest["feature_names"], manifest["n_timesteps"], aux=aux)


def table_to_dataset(table, feature_names: Sequence[str], n_timesteps: int, *, aux=True,
                     X: np.ndarray | None = None) -> FlareDataset:
    """A dataset from store rows (``X`` given when the feature columns were read already)."""
    n, T = table.num_rows, int(n_timesteps)
    if X is None:
        X = _features_block(table, feature_names, n, T)
    labels = table.column("label").to_numpy().astype(np.int8)
    meta = empty_meta(n)
    meta["source"] = pd.array(table.column("source").to_pylist(), dtype="string")
    meta["fold"] = pd.array(table.column("fold").to_pandas(), dtype="Int64")
    meta["region"] = pd.array(table.column("region").to_pylist(), dtype="string")
    for name in ("start", "end"):
        meta[name] = pd.to_datetime(table.column(name).to_pandas()).astype("datetime64[ns]")
    meta["goes_class"] = pd.array(table.column("goes_class").to_pylist(), dtype="string")
    side = {}
    if aux:
        for field in table.schema:
            if field.name.startswith(AUX_PREFIX):
                column = table.column(field.name).combine_chunks()
                values = column.flatten().to_numpy(zero_copy_only=False)
                if str(field.type.value_type) == "double":
                    values = values.astype(np.float64)
                else:
                    values = values.astype(object)
                side[field.name[len(AUX_PREFIX):]] = values.reshape(n, T)
    y = None if n and (labels == UNLABELLED).all() else labels
    return FlareDataset(X=X, y=y, ids=np.asarray(table.column("id").to_numpy(zero_copy_only=False)).astype(str),
                        feature_names=tuple(feature_names), meta=meta, aux=side)


def _fixed_list_values(column) -> np.ndarray:
    column = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    return column.flatten().to_numpy(zero_copy_only=False)
