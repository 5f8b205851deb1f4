"""A float32 array cache written once next to a store and read by index.

Training on a store larger than memory reads its prepared samples from here: one ``.npy``
file per array under ``<store>.cache/<key>/``, where ``key`` is a digest of everything the
arrays depend on (the store's content hash and the preparation's settings), so a changed
store or setting gets a new folder and a stale one is never read.

Writing is atomic: the files go into a hidden sibling folder, ``meta.json`` is written
last, and the folder is renamed into place; a reader never sees a half-written cache. This
module deletes only what it created (its own temporary folder after a failure, or when
another process finished the same key first); old keys stay until a person removes them.

Reading (:class:`CachedArray`) gathers rows by index with positioned reads into the batch
being built: the file's pages stay in the kernel's page cache (shared, evictable), and the
process's own memory is the batch, whatever the size of the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import weakref
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from flareseq.data.store_files import process_alive
from flareseq.errors import FlareseqError

CACHE_FORMAT = "flareseq-array-cache"
CACHE_VERSION = 1
META_NAME = "meta.json"


def cache_root(store: str | PathLike[str]) -> Path:
    """The folder that holds a store's caches: ``<store>.cache`` beside it (never inside: a
    store's folder holds only what its manifest lists)."""
    store = Path(store)
    return store.parent / f"{store.name}.cache"


def cache_key(**identity: Any) -> str:
    """A short digest of what the cached arrays depend on (JSON-serialisable values)."""
    text = json.dumps({"format": CACHE_FORMAT, "version": CACHE_VERSION, **identity}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class CacheWriter:
    """Write a cache folder atomically: arrays block by block, then :meth:`commit`.

    ``with CacheWriter(root, key) as writer: writer.write_blocks("train", (n, T, F), blocks);
    writer.save("train_y", y); path = writer.commit(meta)``. Leaving the block without
    committing removes the temporary folder (which this writer created) and nothing else.
    """

    def __init__(self, root: str | PathLike[str], key: str) -> None:
        self.root, self.key = Path(root), key
        self.final = self.root / key
        self.tmp = self.root / f".{key}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.committed = False

    def __enter__(self) -> CacheWriter:
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temporaries()
        self.tmp.mkdir()
        return self

    def _remove_stale_temporaries(self) -> None:
        """A killed writer never reaches ``__exit__``: its ``.KEY.tmp-PID-*`` folder (named by
        this class, so flareseq's own) is removed here once PID no longer runs, as
        :func:`~flareseq.data.store_files.recover_leftovers` does for stores."""
        for entry in self.root.glob(f".{self.key}.tmp-*"):
            pid = entry.name[len(f".{self.key}.tmp-"):].split("-")[0]
            if entry.is_dir() and not entry.is_symlink() and pid.isdigit() and not process_alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)

    def __exit__(self, *exc) -> None:
        if not self.committed:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def write_blocks(self, name: str, shape: tuple[int, ...], blocks: Iterable[np.ndarray]) -> None:
        """Write float32 blocks ``(b, ...)`` one after the other into ``name.npy`` of ``shape``
        with plain file writes (no mapping: written pages go to the page cache, not to this
        process's memory)."""
        n_rows = 0
        with open(self.tmp / f"{name}.npy", "wb") as handle:
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                      "shape": tuple(int(s) for s in shape)}
            np.lib.format.write_array_header_2_0(handle, header)
            for block in blocks:
                block = np.ascontiguousarray(block, dtype=np.float32)
                if block.shape[1:] != tuple(shape[1:]):
                    raise FlareseqError(f"cache {name}: a block of shape {block.shape} for an array of {shape}.")
                handle.write(block.data.cast("B"))
                n_rows += len(block)
        if n_rows != shape[0]:
            raise FlareseqError(f"cache {name}: {n_rows} rows written, {shape[0]} expected.")

    def save(self, name: str, array: np.ndarray) -> None:
        """A small array (labels), kept whole: ``name.npy``."""
        np.save(self.tmp / f"{name}.npy", np.asarray(array), allow_pickle=False)

    def commit(self, meta: dict) -> Path:
        """Write ``meta.json`` last and move the folder into place; returns it. When another
        process committed the same key meanwhile, its folder is kept and ours removed."""
        (self.tmp / META_NAME).write_text(json.dumps({"format": CACHE_FORMAT, "version": CACHE_VERSION, **meta},
                                                     indent=2))
        try:
            os.rename(self.tmp, self.final)
        except OSError:
            if not (self.final / META_NAME).exists():
                raise
            shutil.rmtree(self.tmp, ignore_errors=True)  # the same arrays, written by another process
        self.committed = True
        return self.final


def read_meta(folder: str | PathLike[str]) -> dict | None:
    """A committed cache's ``meta.json``, or ``None`` when there is no such cache."""
    path = Path(folder) / META_NAME
    if not path.exists():
        return None
    meta = json.loads(path.read_text())
    if meta.get("format") != CACHE_FORMAT or meta.get("version") != CACHE_VERSION:
        raise FlareseqError(f"{path}: expected a {CACHE_FORMAT} cache of version {CACHE_VERSION}, found "
                            f"{meta.get('format')!r} version {meta.get('version')!r}; remove {Path(folder)} to rebuild it.")
    return meta


class CachedArray:
    """A read-only float32 ``.npy`` file whose rows are read by index on demand.

    ``X[index]`` (an index array, a boolean mask, a slice or an integer) returns a copy in
    memory; ``len``, ``shape``, ``dtype`` and ``ndim`` are those of the array. Rows are read
    with positioned reads (``os.preadv``, one per run of consecutive rows) straight into the
    returned array: the file's pages stay in the kernel's page cache and never count in this
    process's memory. (A memory map did: every page touched stays resident until released,
    and the kernel maps whole folios around a touched row; measured here, 210 MB of mapped
    cache after gathering 20 MB of rows at random.)
    """

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as handle:
            try:
                major, _ = np.lib.format.read_magic(handle)
                read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read_header(handle)
            except ValueError as exc:
                raise FlareseqError(f"{self.path}: not a readable array ({exc}); remove its cache folder to rebuild "
                                    "it.") from None
            self._offset = handle.tell()
            expected = self._offset + int(np.prod(shape)) * dtype.itemsize
            size = os.fstat(handle.fileno()).st_size
        if fortran or dtype != np.float32 or size != expected or not shape:
            raise FlareseqError(f"{self.path}: expected {expected} bytes of C-ordered float32 {shape}, found "
                                f"{size} bytes of {dtype}; the cache is damaged: remove its folder to rebuild it.")
        self.shape, self.dtype, self.ndim = tuple(shape), np.dtype(np.float32), len(shape)
        self._row_bytes = int(np.prod(shape[1:])) * 4
        self._fd = os.open(self.path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        n = self.shape[0]
        if isinstance(index, (int, np.integer)):
            if not -n <= index < n:
                raise IndexError(f"row {index} of an array of {n} rows")
            return self[np.array([index % n])][0]
        if isinstance(index, slice):
            rows = np.arange(*index.indices(n))
        else:
            rows = np.asarray(index)
            if rows.dtype == bool:
                rows = np.flatnonzero(rows)
            rows = rows.astype(np.int64, copy=False).reshape(-1)
            if rows.size and (rows.min() < -n or rows.max() >= n):
                raise IndexError(f"rows {rows.min()}..{rows.max()} of an array of {n} rows")
            rows = np.where(rows < 0, rows + n, rows)
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.float32)
        if len(rows):
            buffer = out.data.cast("B")
            breaks = np.flatnonzero(np.diff(rows) != 1) + 1  # runs of consecutive rows: one read each
            for first, last in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
                self._read_into(int(rows[first]), buffer[first * self._row_bytes : last * self._row_bytes])
        return out

    def _read_into(self, row: int, buffer: memoryview) -> None:
        offset, done = self._offset + row * self._row_bytes, 0
        while done < len(buffer):
            got = os.preadv(self._fd, [buffer[done:]], offset + done)
            if got == 0:
                raise FlareseqError(f"{self.path}: the file ended before row {row}; the cache is damaged: remove "
                                    "its folder to rebuild it.")
            done += got

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        # whole-array consumers (a baseline, MiniRocket's feature fit) get a copy in memory
        out = self[slice(None)]
        return out if dtype is None else out.astype(dtype, copy=False)


__all__ = ["CacheWriter", "CachedArray", "cache_key", "cache_root", "read_meta", "CACHE_FORMAT", "CACHE_VERSION"]
