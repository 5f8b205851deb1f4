"""Reading a store: whole (:func:`read_store`) or in batches (:func:`iter_store_batches`).

Each part is checked before it is decoded: its SHA-256 and size against the manifest
(``verify=True``, the default; hashing took 15-25 % of the time of an unchecked read in
``benchmarks/store_verify.py``), its footer's row count and its schema always, and
Parquet's own page checksums as pages are decoded. A part changed after ingest, truncated
or rewritten is a :class:`~flareseq.errors.StoreError` naming it, never data read silently
or an Arrow exception. Stores written before parts had checksums are read unverified, with
a warning that says so.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from flareseq.data.dataset import FlareDataset, empty_meta
from flareseq.data.schema import UNLABELLED
from flareseq.data.store_format import (
    AUX_PREFIX,
    BASE_COLUMNS,
    MANIFEST_NAME,
    REINGEST,
    arrow_schema,
    check_manifest_digest,
    damaged_part_error,
    has_checksums,
    open_part,
    part_files,
    read_manifest,
)
from flareseq.errors import FlareseqWarning, StoreError

READ_BATCH_ROWS = 65_536  # rows per Arrow batch when read_store fills X


def warn_unverified(path: Path, manifest: dict, verify: bool) -> None:
    """Check the manifest's own digest (when ``verify``), or say that there is none."""
    if verify:
        check_manifest_digest(path, manifest)
    if verify and not has_checksums(manifest):
        warnings.warn(f"{path}: this store has no part checksums (it was written by an older flareseq), so its "
                      "parts are read unverified. `flareseq verify --full` checks it from its rows; re-ingest to "
                      "add checksums.", FlareseqWarning, stacklevel=3)


def read_store(path: str | PathLike[str], *, folds: Sequence[int] | None = None,
               aux: bool | Sequence[str] = False, verify: bool = True) -> FlareDataset:
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
    verify : check every part's SHA-256 against the manifest before decoding it (default);
        ``False`` skips only that (row counts, schemas and page checksums are always checked).
        :func:`~flareseq.data.store_verify.verify_store` checks more (``full=True``: every row).
    """
    import pyarrow as pa

    path = Path(path)
    manifest = read_manifest(path)
    files = part_files(path, manifest)
    warn_unverified(path, manifest, verify)
    names, T = manifest["feature_names"], int(manifest["n_timesteps"])
    columns = _columns(path, manifest, aux)
    # every part checked before X is allocated: a damaged store fails fast and cheaply
    parquets = [open_part(path, part, verify=verify, manifest=manifest) for part in manifest["parts"]]
    masks = None
    if folds is None:
        n = sum(int(p["n_samples"]) for p in manifest["parts"])
    else:  # the small fold column first, so that X is allocated once at its final size
        wanted = [int(f) for f in folds]
        masks = []
        for file, parquet in zip(files, parquets):
            with _reading(file):
                fold = parquet.read(columns=["fold"]).column("fold")
            masks.append(np.isin(fold.to_numpy(zero_copy_only=False), wanted))
        n = int(sum(int(m.sum()) for m in masks))
    X = np.empty((n, T, len(names)), dtype=np.float32)
    rest, pos = [], 0
    for k, (file, parquet) in enumerate(zip(files, parquets)):
        offset = 0
        for batch in _batches(file, parquet, READ_BATCH_ROWS, columns):
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
                raise StoreError(f"{path}: expected {n} samples ({MANIFEST_NAME}), found more. The store is damaged. "
                                 f"{REINGEST}")
            X[pos : pos + rows] = _features_block(table, names, rows, T, file)
            rest.append(table.drop_columns(names))
            pos += rows
    if pos != n:
        raise StoreError(f"{path}: expected {n} samples ({MANIFEST_NAME}), found {pos}. The store is damaged. "
                         f"{REINGEST}")
    small = pa.concat_tables(rest) if rest else arrow_schema(names, T).empty_table().drop_columns(names)
    return table_to_dataset(small, names, T, aux=aux, X=X)


def iter_store_batches(path: str | PathLike[str], *, batch_size: int = 4096, folds: Sequence[int] | None = None,
                       aux: bool | Sequence[str] = False, verify: bool = True) -> Iterator[FlareDataset]:
    """Stream a store as datasets of at most ``batch_size`` samples, in store order; each
    part is checked (``verify``: its SHA-256, as :func:`read_store`) just before it is read."""
    import pyarrow as pa

    path = Path(path)
    manifest = read_manifest(path)
    part_files(path, manifest)
    warn_unverified(path, manifest, verify)
    wanted = None if folds is None else {int(f) for f in folds}
    columns = _columns(path, manifest, aux)
    for part in manifest["parts"]:
        file = path / part["file"]
        parquet = open_part(path, part, verify=verify, manifest=manifest)
        for batch in _batches(file, parquet, batch_size, columns):
            table = pa.Table.from_batches([batch])
            if wanted is not None:
                mask = np.isin(table.column("fold").to_numpy(zero_copy_only=False), list(wanted))
                table = table.filter(pa.array(mask))
            if table.num_rows:
                yield table_to_dataset(table, manifest["feature_names"], manifest["n_timesteps"], aux=aux, file=file)


class _reading:
    """Arrow's exceptions while a part is decoded become a :class:`StoreError` naming it."""

    def __init__(self, file: Path) -> None:
        self.file = file

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> None:
        import pyarrow as pa

        if exc_type is not None and issubclass(exc_type, (pa.ArrowException, OSError)):
            raise damaged_part_error(self.file, exc) from None


def _batches(file: Path, parquet, batch_size: int, columns: list[str]):
    iterator = parquet.iter_batches(batch_size=batch_size, columns=columns)
    while True:
        with _reading(file):
            batch = next(iterator, None)
        if batch is None:
            return
        yield batch


def _features_block(table, names: Sequence[str], rows: int, T: int, file: Path | None = None) -> np.ndarray:
    """``(rows, T, F)`` float32 from the feature columns: feature-major contiguous copies,
    then one 2-D transpose (4x faster than writing each feature into a strided slot)."""
    by_feature = np.empty((len(names), rows * T), dtype=np.float32)
    for j, name in enumerate(names):
        column = table.column(name)
        if column.null_count:  # the writer never writes null series; a rewritten part may
            raise StoreError(f"{file or 'a part'}: column {name!r}: expected a series of {T} values per sample, "
                             f"found {column.null_count} missing series. The store is damaged. {REINGEST}")
        by_feature[j] = _fixed_list_values(column)
    return np.ascontiguousarray(by_feature.T).reshape(rows, T, len(names))


def _columns(path, manifest: dict, aux: bool | Sequence[str]) -> list[str]:
    base = [*BASE_COLUMNS, *manifest["feature_names"]]
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


def table_to_dataset(table, feature_names: Sequence[str], n_timesteps: int, *, aux=True,
                     X: np.ndarray | None = None, file: Path | None = None) -> FlareDataset:
    """A dataset from store rows (``X`` given when the feature columns were read already)."""
    n, T = table.num_rows, int(n_timesteps)
    if X is None:
        X = _features_block(table, feature_names, n, T, file)
    labels = table.column("label").to_numpy(zero_copy_only=False).astype(np.int8)
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
