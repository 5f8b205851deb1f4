"""A float32 array cache written once next to a store and read through a memory map.

Training on a store larger than memory reads its prepared samples from here: one ``.npy``
file per array under ``<store>.cache/<key>/``, where ``key`` is a digest of everything the
arrays depend on (the store's content hash and the preparation's settings), so a changed
store or setting gets a new folder and a stale one is never read.

Writing is atomic: the files go into a hidden sibling folder, ``meta.json`` is written
last, and the folder is renamed into place; a reader never sees a half-written cache. This
module deletes only what it created (its own temporary folder after a failure, or when
another process finished the same key first); old keys stay until a person removes them.

Reading (:class:`CachedArray`) maps the file read-only and gathers rows by index. Pages a
process has read count in its resident memory until it lets go of them, so every
``release_bytes`` read it tells the kernel it no longer needs the mapping's pages
(``madvise(MADV_DONTNEED)``): they stay in the page cache, shared and evictable, and the
process's own memory stays bounded whatever the size of the file.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
import uuid
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from flareseq.errors import FlareseqError

CACHE_FORMAT = "flareseq-array-cache"
CACHE_VERSION = 1
META_NAME = "meta.json"
RELEASE_BYTES = 64 << 20  # read through the map before its pages are handed back


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
        self.tmp.mkdir()
        return self

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
                handle.write(memoryview(block).cast("B"))
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
    """A read-only float32 ``.npy`` file gathered by index through a memory map.

    ``X[index]`` (an index array, a slice or an integer) returns a copy in memory; ``len``,
    ``shape``, ``dtype`` and ``ndim`` are those of the array. Every ``release_bytes`` read,
    the mapping's pages are handed back to the kernel (see the module's docstring).
    """

    def __init__(self, path: str | PathLike[str], *, release_bytes: int = RELEASE_BYTES) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as handle:
            try:
                major, _ = np.lib.format.read_magic(handle)
                read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read_header(handle)
            except ValueError as exc:
                raise FlareseqError(f"{self.path}: not a readable array ({exc}); remove its cache folder to rebuild "
                                    "it.") from None
            offset = handle.tell()
            expected = offset + int(np.prod(shape)) * dtype.itemsize
            size = os.fstat(handle.fileno()).st_size
            if fortran or dtype != np.float32 or size != expected:
                raise FlareseqError(f"{self.path}: expected {expected} bytes of C-ordered float32 {shape}, found "
                                    f"{size} bytes of {dtype}; the cache is damaged: remove its folder to rebuild it.")
            self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        self._array = np.ndarray(shape, dtype=np.float32, buffer=self._map, offset=offset)
        self.release_bytes, self._read = release_bytes, 0
        self.shape, self.dtype, self.ndim = self._array.shape, self._array.dtype, self._array.ndim

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        out = np.array(self._array[index], dtype=np.float32, copy=True)
        self._read += out.nbytes
        if self._read >= self.release_bytes:
            self.release()
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        # whole-array consumers (a baseline, MiniRocket's feature fit) get a copy in memory
        return np.array(self._array, dtype=dtype or np.float32, copy=True)

    def release(self) -> None:
        """Hand the pages read so far back to the kernel (they stay in its page cache)."""
        self._read = 0
        if hasattr(self._map, "madvise"):
            self._map.madvise(mmap.MADV_DONTNEED)


__all__ = ["CacheWriter", "CachedArray", "cache_key", "cache_root", "read_meta", "CACHE_FORMAT", "CACHE_VERSION"]
