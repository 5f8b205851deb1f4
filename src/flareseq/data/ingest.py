"""Ingestion: inputs of any supported format into one columnar store, in parallel.

Kaggle JSON lines are cut into chunks of whole lines that workers parse (an uncompressed
file is split into byte ranges that each worker reads itself; a compressed stream is
decompressed by the parent and handed out in chunks). Results are taken back in input
order, so sample order, ids and line numbers are those of the input. Each chunk's line count
rebases the next chunk's line numbers, so errors name the true line. At most
``2 x workers`` chunks are in flight, which bounds memory whatever the file size. A large
SWAN-SF folder is parsed by worker processes in batches of files, in the serial reader's
order.

Which workers: when the compiled scanner (``flareseq._scan``) is built, Kaggle chunks are
scanned by *threads*: the scanner releases the GIL, so threads run in parallel at no
start-up cost and hand their arrays over without pickling. A chunk the scanner declines (an
unusual or bad line) needs the Python parsers, which hold the GIL: in a large input the
thread passes it to a worker process; a small input parses it in the thread. Without the
scanner, worker processes parse every chunk, and small inputs are read in this process: a
process is a fresh interpreter (spawned, not forked, because the parent may hold Arrow or
BLAS threads) and takes ~0.3-0.6 s to start.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from flareseq.data.ingest_report import IngestReport, default_workers
from flareseq.data.kaggle import (
    DEFAULT_CHUNK_BYTES,
    ByteSource,
    DuplicateIdFilter,
    ParsedChunk,
    _progress_disabled,
    empty_file_error,
    iter_line_chunks,
    kaggle_sources,
    parse_kaggle_chunk,
)
from flareseq.data.kaggle_fast import SCANNER_NOTE, scan_chunk
from flareseq.data.limits import ReadLimits, current_limits, limit_error
from flareseq.data.schema import KAGGLE_PARAMETERS, N_KAGGLE_TIMESTEPS
from flareseq.data.skips import SkipLog, check_on_error
from flareseq.errors import ConfigError

if TYPE_CHECKING:
    from flareseq.data.store import StoreWriter

# The store and SWAN-SF modules (pandas, pyarrow.parquet) are imported in ingest() only:
# the worker processes import this module and need just the parser.






def ingest(
    inputs: str | PathLike[str] | Sequence[str | PathLike[str]],
    out: str | PathLike[str],
    *,
    on_error: str = "raise",
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    n_timesteps: int = N_KAGGLE_TIMESTEPS,
    engine: str = "local",
    limits: ReadLimits | None = None,
    **spark_options,
) -> IngestReport:
    """Read every input (Kaggle JSON lines, SWAN-SF directories or archives, stores) into a
    new store at ``out``, in input order.

    Parameters
    ----------
    inputs : one path or several; their samples are stored in this order.
    out : the new store's directory (see ``docs/store.md``); written atomically.
    on_error : ``"raise"`` stops at the first bad record (and leaves no store);
        ``"skip"`` skips bad records, lists them in ``out/skipped.tsv`` and counts them in
        the manifest.
    workers : parallel workers for Kaggle files and large SWAN-SF folders (default: the
        usable cores, at most 8): threads running the compiled scanner, worker processes for
        the Python parsers (see the module's notes).
    overwrite : replace an existing flareseq store at ``out`` (otherwise a :class:`StoreError`);
        anything else at ``out``, or an ``out`` at or above an input, is refused.
    progress : tqdm bars on stderr; ``None`` shows them only on a terminal.
    chunk_bytes : bytes of Kaggle lines per parse task (memory per worker grows with it).
    engine : ``"local"`` (this machine's cores) or ``"spark"``: the same store written by
        :func:`flareseq.data.spark.ingest.ingest_spark`, which takes ``spark_options`` (``master``,
        ``fraction``, ``stratify``, ``seed``, ``spark``, ``spark_conf``, ``staging_dir``).
    limits : caps on what an input may make flareseq read (archive members, compression
        ratio, sample files, line length); see :mod:`flareseq.data.limits`. Default:
        ``$FLARESEQ_LIMITS`` or the built-in defaults.

    Returns
    -------
    IngestReport
        The manifest, the skipped records, the bytes parsed and the time taken;
        ``report.summary()`` is what ``flareseq ingest`` prints.

    Scripts that call this with ``workers > 1`` need the usual ``if __name__ ==
    "__main__":`` guard, as for any use of :mod:`multiprocessing` with spawned workers.
    """
    from flareseq.data import detect_format
    from flareseq.data.store import StoreWriter, iter_store_batches, read_manifest
    from flareseq.data.swansf import (
        NUMERIC_COLUMNS,
        STRING_COLUMNS,
        iter_swansf_batches,
    )

    check_on_error(on_error)
    if engine == "spark":
        from flareseq.data.spark.ingest import ingest_spark

        return ingest_spark(inputs, out, on_error=on_error, overwrite=overwrite, progress=progress,
                            n_timesteps=n_timesteps, **spark_options)
    if engine != "local":
        raise ConfigError(f"engine must be 'local' or 'spark', got {engine!r}.")
    if spark_options:
        raise ConfigError(f"{', '.join(sorted(spark_options))}: options of engine='spark' only; the local engine "
                          "ingests everything (sample afterwards with flareseq.data.sampling.sample_fraction, the same draw).")
    paths = [Path(inputs)] if isinstance(inputs, (str, PathLike)) else [Path(p) for p in inputs]
    if not paths:
        raise ConfigError("nothing to ingest: give at least one input path.")
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}.")
    formats = [detect_format(p) for p in paths]  # fail on an unknown input before any work
    feature_names, steps = KAGGLE_PARAMETERS, n_timesteps
    aux_types: dict = {}
    for p, fmt in zip(paths, formats):
        if fmt == "store":
            m = read_manifest(p)
            feature_names, steps = tuple(m["feature_names"]), m["n_timesteps"]
            aux_types.update(_store_aux_types(p, m))
        elif fmt == "swansf":  # known up front, so that Kaggle samples before them do not fix "no side series"
            aux_types.update({c: "float64" for c in NUMERIC_COLUMNS})
            aux_types.update({c: "string" for c in STRING_COLUMNS})
    started = time.perf_counter()
    skips = SkipLog()
    report = IngestReport(Path(out), {}, skips, 0.0, 0, workers)
    limits = current_limits(limits)
    pool = _Pool(workers, chunk_bytes, limits)
    try:
        with StoreWriter(out, feature_names=feature_names, n_timesteps=steps, overwrite=overwrite,
                         aux_types=aux_types, protect=paths) as writer:
            for path, fmt in zip(paths, formats):
                writer.new_part()
                if fmt == "kaggle":
                    for source in kaggle_sources(path, limits):
                        info = _ingest_kaggle(source, writer, pool, on_error, skips, n_timesteps, progress, report)
                        writer.add_source(info)
                elif fmt == "swansf":
                    counts: dict = {"n_records": 0, "n_read": 0}
                    before = len(skips)
                    if Path(path).is_dir() and workers > 1:
                        batches = _swansf_in_parallel(path, pool, on_error, skips, n_timesteps, progress, counts,
                                                      limits)
                    else:
                        batches = iter_swansf_batches(path, on_error=on_error, skips=skips, n_timesteps=n_timesteps,
                                                      progress=progress, counts=counts, limits=limits)
                    for batch in batches:
                        writer.write(batch)
                    report.input_bytes += _size(path)
                    writer.add_source({"path": str(path), "format": "swansf", "n_records": counts["n_records"],
                                       "n_read": counts["n_read"], "n_skipped": len(skips) - before})
                else:
                    n = 0
                    for batch in iter_store_batches(path, aux=True):
                        writer.write(batch)
                        n += batch.n_samples
                    report.input_bytes += _size(path)
                    writer.add_source({"path": str(path), "format": "store", "n_records": n, "n_read": n,
                                       "n_skipped": 0})
            writer.add_skipped(skips)
        report.manifest = read_manifest(out)
    finally:
        report.workers = pool.workers if pool.started else 1
        pool.shutdown()
    report.seconds = time.perf_counter() - started
    return report


def _store_aux_types(path: Path, manifest: dict) -> dict:
    import pyarrow.parquet as pq

    from flareseq.data.store import AUX_PREFIX

    if not manifest["parts"]:
        return {}
    schema = pq.read_schema(path / manifest["parts"][0]["file"])
    return {f.name[len(AUX_PREFIX):]: "float64" if str(f.type.value_type) == "double" else "string"
            for f in schema if f.name.startswith(AUX_PREFIX)}


def _size(path: Path) -> int:
    """Bytes of an input: a folder's regular files (links and special files are not read)."""
    if path.is_dir():
        return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return path.stat().st_size


# -- Kaggle, in parallel -------------------------------------------------------------------------
def _ingest_kaggle(source: ByteSource, writer: StoreWriter, pool: _Pool, on_error: str, skips: SkipLog,
                   n_timesteps: int, progress: bool | None, report: IngestReport) -> dict:
    from tqdm.auto import tqdm

    label = Path(source.name).name
    duplicates = DuplicateIdFilter(source.name)
    offset = n_records = n_blank = n_read = n_skipped = 0
    # progress in bytes parsed: the file size for a plain file, unknown for a compressed stream
    with tqdm(total=source.size if source.plain_path else None, unit="B", unit_scale=True, desc=f"ingesting {label}",
              disable=_progress_disabled(progress), leave=False) as bar:
        for chunk, n_bytes in pool.parse(source, on_error, n_timesteps):
            chunk = chunk.rebase(offset)
            offset += chunk.n_lines
            if chunk.error is not None:
                raise chunk.error
            chunk = duplicates.apply(chunk, on_error)
            skips.extend(chunk.skipped)
            n_records += chunk.n_lines - chunk.n_blank
            n_blank += chunk.n_blank
            n_read += chunk.n_samples
            n_skipped += len(chunk.skipped)
            report.fast_chunks += chunk.fast
            report.strict_chunks += not chunk.fast
            writer.write(chunk.to_dataset(label))
            bar.update(n_bytes)
            report.input_bytes += n_bytes
    if n_records == 0:
        raise empty_file_error(source.name)
    return {"path": source.name, "format": "kaggle", "n_records": n_records, "n_read": n_read,
            "n_skipped": n_skipped, "n_blank_lines": n_blank}


def _swansf_in_parallel(path: Path, pool: _Pool, on_error: str, skips: SkipLog, n_timesteps: int,
                        progress: bool | None, counts: dict, limits: ReadLimits):
    """A SWAN-SF folder's files (sorted by path, as the serial reader) parsed by the workers
    in batches, yielded in order; a small folder is read in this process."""
    from tqdm.auto import tqdm

    from flareseq.data.swansf import (
        iter_swansf_batches,
        list_sample_files,
        parse_swansf_files,
    )

    files = [str(f) for f in list_sample_files(path)]  # the serial reader's order
    if len(files) < 4 * SWANSF_FILES_PER_TASK:  # not worth the workers' start-up
        yield from iter_swansf_batches(path, on_error=on_error, skips=skips, n_timesteps=n_timesteps,
                                       progress=progress, counts=counts, limits=limits)
        return
    source = Path(path).name
    groups = [files[i : i + SWANSF_FILES_PER_TASK] for i in range(0, len(files), SWANSF_FILES_PER_TASK)]
    with tqdm(total=len(files), unit=" files", desc=f"ingesting {source}", disable=_progress_disabled(progress),
              leave=False) as bar:
        for group, (dataset, skipped) in zip(groups, pool.map_ordered(parse_swansf_files, groups, source, on_error,
                                                                       n_timesteps, str(path), limits)):
            counts["n_records"] += len(group)
            counts["n_read"] += 0 if dataset is None else dataset.n_samples
            skips.extend(skipped)
            bar.update(len(group))
            if dataset is not None:
                yield dataset


SWANSF_FILES_PER_TASK = 1024


class _Pool:
    """Worker threads and processes (each started on first use) that parse chunks, results
    in input order."""

    def __init__(self, workers: int, chunk_bytes: int, limits: ReadLimits | None = None) -> None:
        self.workers = workers
        self.chunk_bytes = chunk_bytes
        self.max_line_bytes = current_limits(limits).max_line_bytes
        self._executor: ProcessPoolExecutor | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # scanning threads may start the processes
        self.started = False

    def _get(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                # spawn, not fork: the parent may hold Arrow/torch threads that fork would copy mid-state
                self._executor = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"))
                self.started = True
            return self._executor

    def _get_threads(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self.workers, thread_name_prefix="flareseq-scan")
            self.started = True
        return self._threads

    def shutdown(self) -> None:
        # threads first: a thread may be waiting on a process
        if self._threads is not None:
            self._threads.shutdown(wait=True, cancel_futures=True)
            self._threads = None
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def map_ordered(self, function, items, *args):
        """``function(item, *args)`` for each item in the workers, results in order, at most
        ``2 x workers`` in flight."""
        executor = self._get()
        window: deque[Future] = deque()
        try:
            for item in items:
                window.append(executor.submit(function, item, *args))
                if len(window) >= 2 * self.workers:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for future in window:
                future.cancel()

    def parse(self, source: ByteSource, on_error: str, n_timesteps: int):
        """Yield ``(ParsedChunk, bytes consumed)`` in input order."""
        size = source.size
        # Processes start a fresh interpreter each (~0.5 s): below ~16 chunks one process is faster.
        # (A compressed size counts 4x: JSON lines compress about that much.)
        small = size * (1 if source.plain_path is not None else 4) < 16 * self.chunk_bytes
        if self.workers > 1 and not SCANNER_NOTE:
            yield from self._scan_in_threads(source, on_error, n_timesteps, small)
            return
        if self.workers == 1 or small:
            with source.open() as stream:
                for data in iter_line_chunks(stream, self.chunk_bytes, max_line_bytes=self.max_line_bytes,
                                             name=source.name):
                    yield parse_kaggle_chunk(data, path=source.name, on_error=on_error, n_timesteps=n_timesteps), len(data)
            return
        executor = self._get()
        window: deque[tuple[Future, int]] = deque()
        limit = 2 * self.workers
        if source.plain_path is not None:
            ranges = [(start, min(start + self.chunk_bytes, size)) for start in range(0, size, self.chunk_bytes)]
            tasks = ((executor.submit(_parse_range, str(source.plain_path), a, b, source.name, on_error, n_timesteps,
                                      self.max_line_bytes), b - a) for a, b in ranges[1:])
            # the workers take a while to start (a fresh interpreter each): meanwhile the
            # parent parses the first range itself
            for _ in range(limit):
                task = next(tasks, None)
                if task is not None:
                    window.append(task)
            first = ranges[0]
            yield (_parse_range(str(source.plain_path), *first, source.name, on_error, n_timesteps, self.max_line_bytes),
                   first[1] - first[0])
        else:
            def compressed_tasks():
                with source.open() as stream:
                    for data in iter_line_chunks(stream, self.chunk_bytes, max_line_bytes=self.max_line_bytes,
                                                 name=source.name):
                        yield executor.submit(_parse_bytes, data, source.name, on_error, n_timesteps), len(data)
            tasks = compressed_tasks()
        yield from _in_order(tasks, limit, window)

    def _scan_in_threads(self, source: ByteSource, on_error: str, n_timesteps: int, small: bool):
        """:meth:`parse` by scanning threads, ``2 x workers`` chunks in flight."""
        threads = self._get_threads()

        def task(read: Callable[[], bytes | memoryview]) -> ParsedChunk:
            data = read()
            chunk = _scanned_chunk(data, n_timesteps)
            if chunk is not None:
                return chunk
            data = bytes(data)  # the Python parsers want bytes (and the thread's buffer is reused)
            if small:  # not worth starting processes: parse here (holding the GIL)
                return parse_kaggle_chunk(data, path=source.name, on_error=on_error, n_timesteps=n_timesteps)
            return self._get().submit(_parse_bytes, data, source.name, on_error, n_timesteps).result()

        if source.plain_path is not None:
            path = str(source.plain_path)
            ranges = [(start, min(start + self.chunk_bytes, source.size))
                      for start in range(0, source.size, self.chunk_bytes)]
            tasks = ((threads.submit(task, lambda a=a, b=b: _read_range_reused(path, a, b, self.max_line_bytes,
                                                                               source.name)), b - a)
                     for a, b in ranges)
        else:
            def compressed_tasks():
                with source.open() as stream:
                    for data in iter_line_chunks(stream, self.chunk_bytes, max_line_bytes=self.max_line_bytes,
                                                 name=source.name):
                        yield threads.submit(task, lambda data=data: data), len(data)
            tasks = compressed_tasks()
        yield from _in_order(tasks, 2 * self.workers)


def _in_order(tasks, limit: int, window: deque | None = None):
    """Yield ``(result, n_bytes)`` of ``(future, n_bytes)`` tasks in submission order, with
    at most ``limit`` in flight (``window`` may already hold some); the rest are cancelled
    when the consumer stops early."""
    window = deque() if window is None else window
    try:
        for task in tasks:
            window.append(task)
            if len(window) >= limit:
                future, n_bytes = window.popleft()
                yield future.result(), n_bytes
        while window:
            future, n_bytes = window.popleft()
            yield future.result(), n_bytes
    finally:
        for future, _ in window:
            future.cancel()


_thread_buffers = threading.local()


def _read_range_reused(path: str, start: int, end: int, max_line_bytes: int, name: str) -> memoryview:
    """:func:`_read_range` into this thread's reusable buffer: a fresh 16 MB buffer per chunk
    costs the kernel more (zeroing new pages) than the scanner spends parsing a third of it."""
    with open(path, "rb") as handle:
        first = _line_start(handle, start, max_line_bytes, name)
        n = max(0, _line_start(handle, end, max_line_bytes, name) - first)
        buffer = getattr(_thread_buffers, "buffer", None)
        if buffer is None or len(buffer) < n:
            buffer = _thread_buffers.buffer = bytearray(n + (n >> 4))
        view = memoryview(buffer)[:n]
        handle.seek(first)
        done = 0
        while done < n:  # a regular file fills it in one call; loop for the rare short read
            got = handle.readinto(view[done:])
            if not got:
                break
            done += got
        return view[:done]


def _scanned_chunk(data: bytes | memoryview, n_timesteps: int) -> ParsedChunk | None:
    """The chunk as the compiled scanner reads it, or ``None`` when it declines."""
    result = scan_chunk(data, n_timesteps) if data else None
    return None if result is None else ParsedChunk.from_fast(result)


def _read_range(path: str, start: int, end: int, max_line_bytes: int, name: str) -> bytes:
    """The lines that *start* in ``[start, end)`` of a plain file, in one read (no copy to
    append the last line's tail)."""
    with open(path, "rb") as handle:
        first = _line_start(handle, start, max_line_bytes, name)
        last = _line_start(handle, end, max_line_bytes, name)
        if last <= first:
            return b""
        handle.seek(first)
        return handle.read(last - first)


def _line_start(handle, position: int, max_line_bytes: int, name: str) -> int:
    """The offset of the first line that starts at or after ``position`` (the rest of the
    line that started before is skipped in bounded steps: a file without line breaks must
    not be read into memory whole)."""
    if position <= 0:
        return 0
    handle.seek(position - 1)
    skipped = 0
    while True:
        piece = handle.readline(1 << 20)
        skipped += len(piece)
        if not piece or piece.endswith(b"\n"):
            return handle.tell()
        if skipped > max_line_bytes:
            raise limit_error(name, limit_name="max_line_bytes",
                              expected=f"JSON lines of at most {max_line_bytes:,} bytes (a Kaggle record is ~40 KB)",
                              found=f"a line of more than {skipped:,} bytes without a line break (at byte {position:,})")


def _parse_bytes(data: bytes, name: str, on_error: str, n_timesteps: int) -> ParsedChunk:
    return parse_kaggle_chunk(data, path=name, on_error=on_error, n_timesteps=n_timesteps)


def _parse_range(path: str, start: int, end: int, name: str, on_error: str, n_timesteps: int,
                 max_line_bytes: int) -> ParsedChunk:
    """Parse the lines that *start* in ``[start, end)`` of a plain file."""
    return parse_kaggle_chunk(_read_range(path, start, end, max_line_bytes, name), path=name, on_error=on_error,
                              n_timesteps=n_timesteps)
