"""Reader of the Kaggle BigData Cup 2019 flare files (JSON lines, one sample per line).

Layout (SPEC section 1): ``{"id": int, "classNum": 0|1, "fold": int, "values": {PARAM:
{"0": v, ..., "59": v}, ...}}``; the test set has no ``classNum``; missing values are bare
``NaN`` tokens (not strict JSON). Series are taken by name in
:data:`~flareseq.data.schema.KAGGLE_PARAMETERS` order and time steps by key, never by position,
because JSON tools reorder keys (Spark sorts ``"0", "1", "10", ...``).

Reading is streaming: the input is cut into chunks of whole lines, each chunk is parsed by
the compiled scanner (:mod:`.kaggle_fast`) or, when that declines, line by line by the
strict parser here, which names the file, line and field of any error.
"""

from __future__ import annotations

import io
import json
import stat
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import orjson

from flareseq.data.kaggle_fast import scan_chunk
from flareseq.data.limits import (
    ArchiveBudget,
    LimitedStream,
    ReadLimits,
    check_ratio,
    clip,
    current_limits,
    limit_error,
    open_decompressed,
    shorten,
)
from flareseq.data.schema import KAGGLE_PARAMETERS, N_KAGGLE_TIMESTEPS, UNLABELLED
from flareseq.data.skips import SkipLog, SkippedRecord, check_on_error
from flareseq.errors import DataFormatError

if TYPE_CHECKING:
    from flareseq.data.dataset import FlareDataset

# pandas and the dataset container are imported where used: parsing (what ingest workers
# do) needs only numpy, orjson and pyarrow.

KAGGLE_SUFFIXES = (".json", ".jsonl", ".ndjson")
_PARAMETER_SET = frozenset(KAGGLE_PARAMETERS)
_NUMBER_TYPES = (float, int, type(None))
DEFAULT_CHUNK_BYTES = 16 << 20
_SKIP_HINT = "Fix the line, or pass on_error='skip' (CLI: --on-error skip) to skip bad records and list them."


# -- one line ----------------------------------------------------------------------------
@dataclass
class KaggleRecord:
    id: str
    label: int  # 0, 1 or UNLABELLED
    fold: int | None
    X: np.ndarray  # float32 (T, F)


def load_json_line(line: bytes, *, path: str, line_number: int) -> object:
    """Parse one line, accepting bare ``NaN`` (read as missing) as the Kaggle files use it."""
    try:
        return orjson.loads(line.replace(b"NaN", b"null") if b"NaN" in line else line)
    except orjson.JSONDecodeError:
        pass
    try:  # the stdlib parser accepts NaN/Infinity and gives a clearer position
        return json.loads(line)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, int too long
        # the position within the line (the stdlib counts the line as "line 1")
        if isinstance(exc, json.JSONDecodeError):
            why = f"{exc.msg} at column {exc.colno}"
        elif isinstance(exc, RecursionError):  # orjson stops at depth 1024, the stdlib overflows
            why = "values nested deeper than any Kaggle record (hundreds of levels)"
        else:
            why = shorten(str(exc), 100)
        snippet = line[:60].decode("utf-8", "replace")
        raise DataFormatError(
            path, line=line_number, expected="one JSON object per line (Kaggle BigData Cup layout)",
            found=f"malformed JSON ({why}) in {snippet!r}{'...' if len(line) > 60 else ''}",
            hint=_SKIP_HINT,
        ) from None


def parse_kaggle_line(line: bytes, *, path: str = "<input>", line_number: int = 1,
                      n_timesteps: int = N_KAGGLE_TIMESTEPS) -> KaggleRecord:
    """Strictly parse one Kaggle line into a record; any fault raises :class:`DataFormatError`."""
    obj = load_json_line(line, path=path, line_number=line_number)
    return record_from_object(obj, path=path, line_number=line_number, n_timesteps=n_timesteps)


def record_from_object(obj: object, *, path: str, line_number: int, n_timesteps: int) -> KaggleRecord:
    def fail(field_name: str | None, expected: str, found: str) -> DataFormatError:
        return DataFormatError(path, line=line_number, field=field_name, expected=expected, found=found,
                               hint=_SKIP_HINT)

    if not isinstance(obj, dict):
        raise fail(None, "a JSON object per line", f"a {type(obj).__name__}")
    sample_id = obj.get("id")
    if sample_id is None or isinstance(sample_id, bool) or not isinstance(sample_id, (int, str)):
        raise fail("id", "an integer or string sample id", "no id" if sample_id is None else clip(sample_id))
    label = obj.get("classNum", UNLABELLED)
    if "classNum" in obj and (isinstance(label, bool) or label not in (0, 1)):
        raise fail("classNum", "0 or 1", clip(label))
    fold = obj.get("fold")
    if fold is not None and (isinstance(fold, bool) or not isinstance(fold, int)):
        raise fail("fold", "an integer fold number", clip(fold))
    values = obj.get("values")
    if not isinstance(values, dict):
        raise fail("values", "an object of the 25 parameter series",
                   "no 'values'" if values is None else f"a {type(values).__name__}")
    missing = [p for p in KAGGLE_PARAMETERS if p not in values]
    if missing:
        raise fail(missing[0], f"all {len(KAGGLE_PARAMETERS)} parameters of the schema",
                   f"no {missing[0]!r} ({len(KAGGLE_PARAMETERS) - len(missing)} of {len(KAGGLE_PARAMETERS)} present)")
    extra = [k for k in values if k not in _PARAMETER_SET]
    if extra:
        raise fail(shorten(extra[0], 40), f"only the {len(KAGGLE_PARAMETERS)} parameters of the schema",
                   f"the unknown parameter {clip(extra[0])}")
    step_keys = [str(t) for t in range(n_timesteps)]
    rows = []
    for p in KAGGLE_PARAMETERS:
        series = values[p]
        if not isinstance(series, dict):
            raise fail(p, f'an object of {n_timesteps} time steps keyed "0".."{n_timesteps - 1}"',
                       f"a {type(series).__name__}")
        if len(series) != n_timesteps:
            raise fail(p, f"a series of {n_timesteps} time steps", f"{len(series)} time steps")
        if list(series) == step_keys:
            rows.append(list(series.values()))
            continue
        absent = [k for k in step_keys if k not in series]
        if absent:
            odd = [k for k in series if k not in step_keys][:3]
            raise fail(p, f'time-step keys "0".."{n_timesteps - 1}"', f"no key {absent[0]!r} (other keys: {clip(odd)})")
        rows.append([series[k] for k in step_keys])  # keys out of order: take them by name
    if {type(v) for row in rows for v in row} - set(_NUMBER_TYPES):
        for p, row in zip(KAGGLE_PARAMETERS, rows):
            for t, v in enumerate(row):
                if not isinstance(v, _NUMBER_TYPES) or isinstance(v, bool):
                    raise fail(f'{p}["{t}"]', "a number or NaN", clip(v))
    try:
        X64 = np.array(rows, dtype=np.float64).T
    except OverflowError:
        raise fail("values", "numbers within the float64 range", "an integer too large") from None
    with np.errstate(over="ignore"):
        X = X64.astype(np.float32)
    if np.isinf(X).any():  # SHARP values stay far below; this is a broken value, not data
        t, j = np.argwhere(np.isinf(X))[0]
        raise fail(f'{KAGGLE_PARAMETERS[j]}["{t}"]', "a finite number within the float32 range (|x| < 3.4e38)",
                   repr(float(X64[t, j])))
    return KaggleRecord(str(sample_id), int(label), fold, X)


# -- one chunk of lines ------------------------------------------------------------------
@dataclass
class ParsedChunk:
    """The samples of a chunk of whole lines, with line numbers relative to the chunk
    (1-based) until :meth:`rebase` shifts them."""

    ids: np.ndarray
    labels: np.ndarray  # int8, UNLABELLED where absent
    folds: np.ndarray  # int64, -1 where absent (see fold_known)
    fold_known: np.ndarray
    X: np.ndarray
    lines: np.ndarray  # line number of each sample
    skipped: list[SkippedRecord] = field(default_factory=list)
    error: DataFormatError | None = None
    n_lines: int = 0
    n_blank: int = 0
    fast: bool = False

    @classmethod
    def from_fast(cls, result) -> ParsedChunk:
        """A chunk from the compiled scanner (``ids``, ``labels`` and ``folds`` or None,
        ``X``), whose lines are all samples, in order."""
        n = len(result.ids)
        return cls(
            ids=result.ids,
            labels=result.labels if result.labels is not None else np.full(n, UNLABELLED, np.int8),
            folds=result.folds if result.folds is not None else np.full(n, -1, np.int64),
            fold_known=np.full(n, result.folds is not None),
            X=result.X, lines=np.arange(1, n + 1, dtype=np.int64), n_lines=n, fast=True,
        )

    @property
    def n_samples(self) -> int:
        return len(self.ids)

    def rebase(self, offset: int) -> ParsedChunk:
        """The same chunk with every line number shifted by ``offset``."""
        if offset == 0:
            return self
        error = self.error
        if error is not None:
            error = DataFormatError(error.path, line=error.line + offset, field=error.field,
                                    expected=error.expected, found=error.found, hint=error.hint)
        return replace(self, lines=self.lines + offset, error=error,
                       skipped=[replace(s, line=s.line + offset) for s in self.skipped])

    def keep(self, mask: np.ndarray) -> ParsedChunk:
        return replace(self, ids=self.ids[mask], labels=self.labels[mask], folds=self.folds[mask],
                       fold_known=self.fold_known[mask], X=self.X[mask], lines=self.lines[mask])

    def to_dataset(self, source: str) -> FlareDataset:
        import pandas as pd

        from flareseq.data.dataset import FlareDataset, empty_meta

        n = self.n_samples
        meta = empty_meta(n)
        meta["source"] = pd.array([source] * n, dtype="string")
        meta["fold"] = pd.array(np.where(self.fold_known, self.folds, 0), dtype="Int64")
        meta.loc[~self.fold_known, "fold"] = pd.NA
        return FlareDataset(X=self.X, y=self.labels, ids=self.ids, feature_names=KAGGLE_PARAMETERS, meta=meta)


def parse_kaggle_chunk(data: bytes, *, path: str, on_error: str = "raise", n_timesteps: int = N_KAGGLE_TIMESTEPS,
                       fast: bool = True) -> ParsedChunk:
    """Parse a chunk of whole lines (the last may lack its newline).

    The compiled scanner takes the chunk when every line is plain Kaggle JSON; otherwise
    (or with ``fast=False``) each line is parsed strictly. With ``on_error="raise"`` the
    first bad line is returned in ``error`` (not raised, so that worker processes can hand it
    back with its line number).
    """
    if fast and data:
        result = scan_chunk(data, n_timesteps)
        if result is not None:
            return ParsedChunk.from_fast(result)
    n_lines = data.count(b"\n") + (0 if not data or data.endswith(b"\n") else 1)
    return _parse_chunk_strict(data, path=path, on_error=on_error, n_timesteps=n_timesteps, n_lines=n_lines)


def _parse_chunk_strict(data: bytes, *, path: str, on_error: str, n_timesteps: int, n_lines: int) -> ParsedChunk:
    records: list[KaggleRecord] = []
    lines: list[int] = []
    skipped: list[SkippedRecord] = []
    error = None
    n_blank = 0
    for number, line in enumerate(data.split(b"\n"), start=1):
        if number > n_lines:
            break
        if not line.strip():
            n_blank += 1
            continue
        try:
            records.append(parse_kaggle_line(line, path=path, line_number=number, n_timesteps=n_timesteps))
            lines.append(number)
        except DataFormatError as exc:
            if on_error == "raise":
                error = exc
                break
            skipped.append(SkippedRecord.from_error(exc))
    X = np.stack([r.X for r in records]) if records else np.empty((0, n_timesteps, len(KAGGLE_PARAMETERS)), np.float32)
    return ParsedChunk(
        ids=np.array([r.id for r in records], dtype=str) if records else np.empty(0, dtype=str),
        labels=np.array([r.label for r in records], dtype=np.int8),
        folds=np.array([-1 if r.fold is None else r.fold for r in records], dtype=np.int64),
        fold_known=np.array([r.fold is not None for r in records], dtype=bool),
        X=X, lines=np.array(lines, dtype=np.int64), skipped=skipped, error=error,
        n_lines=n_lines, n_blank=n_blank, fast=False,
    )


class DuplicateIdFilter:
    """Refuses (or skips) a sample whose id was already read from the same file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._first_line: dict[str, int] = {}

    def apply(self, chunk: ParsedChunk, on_error: str) -> ParsedChunk:
        keep = np.ones(chunk.n_samples, dtype=bool)
        seen = self._first_line
        for i, (sample_id, line) in enumerate(zip(chunk.ids.tolist(), chunk.lines.tolist())):
            first = seen.setdefault(sample_id, line)
            if first == line:
                continue
            exc = DataFormatError(self.path, line=line, field="id", expected="a unique sample id",
                                  found=f"id {sample_id!r} again (first on line {first})", hint=_SKIP_HINT)
            if on_error == "raise":
                raise exc
            chunk.skipped.append(SkippedRecord.from_error(exc))
            keep[i] = False
        if keep.all():
            return chunk
        chunk.skipped.sort(key=lambda s: s.line or 0)
        return chunk.keep(keep)


# -- inputs --------------------------------------------------------------------------------
@dataclass
class ByteSource:
    """One stream of JSON lines: a plain file, a gzip file or a zip member."""

    name: str  # shown in errors: the path, or "archive.zip:member"
    open: object  # () -> binary file object
    size: int  # bytes of the underlying file (for progress), or 0 when unknown
    plain_path: Path | None = None  # set for uncompressed files (byte ranges can be read in parallel)


def is_kaggle_path(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(KAGGLE_SUFFIXES) or name.endswith(tuple(s + ".gz" for s in KAGGLE_SUFFIXES))


def kaggle_sources(path: str | PathLike[str], limits: ReadLimits | None = None) -> list[ByteSource]:
    """The JSON-lines streams in ``path`` (a ``.json``/``.jsonl`` file, its ``.gz``, or a
    ``.zip`` of such files, in the archive's order). Compressed streams are read under
    ``limits`` (:mod:`flareseq.data.limits`): a member that expands beyond them stops."""
    limits = current_limits(limits)
    path = Path(path)
    size = path.stat().st_size
    name = path.name.lower()
    if name.endswith(".gz"):
        return [ByteSource(str(path), lambda: open_decompressed(path, limits=limits, require="gzip"), size)]
    if name.endswith(".zip"):
        return _zip_sources(path, size, limits)
    return [ByteSource(str(path), lambda: open(path, "rb"), size, plain_path=path)]


def _zip_sources(path: Path, size: int, limits: ReadLimits) -> list[ByteSource]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir() and m.filename.lower().endswith(KAGGLE_SUFFIXES)]
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataFormatError(path, expected="a complete zip archive", found=shorten(f"{type(exc).__name__}: {exc}", 120),
                              hint="Download or copy it again.") from None
    budget = ArchiveBudget(str(path), limits)
    for m in members:  # the sizes the archive declares, before anything is read
        where = f"{path}:{m.filename}"
        kind = stat.S_IFMT(m.external_attr >> 16)
        if kind not in (0, stat.S_IFREG):
            raise DataFormatError(where, expected="a regular file in the archive",
                                  found="a symbolic link or special file", hint="Repack the archive with regular files.")
        if m.file_size > limits.max_member_bytes:
            raise limit_error(where, limit_name="max_member_bytes",
                              expected=f"a member of at most {limits.max_member_bytes:,} bytes",
                              found=f"one that declares {m.file_size:,} bytes")
        check_ratio(where, m.file_size, min(m.compress_size, size), limits)
    return [ByteSource(f"{path}:{m.filename}", _zip_opener(path, m, size, limits, budget), m.compress_size)
            for m in members]


def _zip_opener(path: Path, member: zipfile.ZipInfo, size: int, limits: ReadLimits, budget: ArchiveBudget):
    def open_member() -> LimitedStream:
        archive = zipfile.ZipFile(path)
        try:
            handle = archive.open(member)
        except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as exc:  # damaged, unsupported, encrypted
            archive.close()
            raise DataFormatError(f"{path}:{member.filename}", expected="a readable zip member",
                                  found=shorten(f"{type(exc).__name__}: {exc}", 120), hint="Repack the archive.") from None
        # the compressed size the archive declares, at most the archive's own size
        return LimitedStream(handle, name=f"{path}:{member.filename}", limits=limits,
                             compressed=min(member.compress_size, size), budget=budget, closes=(archive,))
    return open_member


def iter_line_chunks(stream: io.BufferedIOBase, chunk_bytes: int = DEFAULT_CHUNK_BYTES, *,
                     max_line_bytes: int | None = None, name: str = "<input>") -> Iterator[bytes]:
    """Chunks of whole lines (each ends with a newline except perhaps the very last).

    A line longer than ``max_line_bytes`` (default: :class:`ReadLimits`) stops with a
    :class:`~flareseq.data.limits.LimitError` naming it: a file without newlines must not
    be gathered into memory whole.
    """
    max_line_bytes = current_limits().max_line_bytes if max_line_bytes is None else max_line_bytes
    rest = b""
    n_lines = 0
    while True:
        block = stream.read(chunk_bytes)
        if not block:
            break
        block = rest + block
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            rest = block
            if len(rest) > max_line_bytes:
                raise _long_line(name, n_lines + 1, len(rest), max_line_bytes)
            continue
        rest = block[cut:]
        if len(rest) > max_line_bytes:
            raise _long_line(name, n_lines + block.count(b"\n") + 1, len(rest), max_line_bytes)
        chunk = block[:cut]
        n_lines += chunk.count(b"\n")
        yield chunk
    if rest:
        yield rest


def _long_line(name: str, line: int, length: int, limit: int):
    return limit_error(name, line=line, limit_name="max_line_bytes",
                       expected=f"a JSON line of at most {limit:,} bytes (a Kaggle record is ~40 KB)",
                       found=f"a line of more than {length:,} bytes without a line break")


def empty_file_error(name: str) -> DataFormatError:
    return DataFormatError(name, expected="at least one sample (one JSON object per line)", found="an empty file",
                           hint="Check that this is the file you meant (an interrupted download or unzip leaves empty files).")


# -- the streaming reader ------------------------------------------------------------------
def iter_kaggle_batches(
    path: str | PathLike[str],
    *,
    batch_size: int = 4096,
    on_error: str = "raise",
    skips: SkipLog | None = None,
    n_timesteps: int = N_KAGGLE_TIMESTEPS,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: bool | None = None,
    limits: ReadLimits | None = None,
) -> Iterator[FlareDataset]:
    """Stream a Kaggle file as :class:`FlareDataset` batches of at most ``batch_size`` samples.

    Parameters
    ----------
    path : ``.json``/``.jsonl`` (or ``.gz``) file, or a ``.zip`` of them.
    on_error : ``"raise"`` stops at the first bad record with a :class:`DataFormatError`;
        ``"skip"`` goes on and appends each skipped record to ``skips``.
    progress : a tqdm bar on stderr; ``None`` shows it only on a terminal.
    limits : caps on archive members, compression ratio and line length
        (:class:`~flareseq.data.limits.ReadLimits`; default: ``$FLARESEQ_LIMITS`` or the defaults).
    """
    check_on_error(on_error)
    skips = skips if skips is not None else SkipLog()
    limits = current_limits(limits)
    for source in kaggle_sources(path, limits):
        yield from _iter_source(source, batch_size, on_error, skips, n_timesteps, chunk_bytes, progress,
                                limits.max_line_bytes)


def _iter_source(source: ByteSource, batch_size, on_error, skips, n_timesteps, chunk_bytes, progress, max_line_bytes):
    from tqdm.auto import tqdm

    duplicates = DuplicateIdFilter(source.name)
    label = Path(source.name).name
    offset = n_records = 0
    with source.open() as stream, tqdm(total=source.size or None, unit="B", unit_scale=True, desc=f"reading {label}",
                                       disable=_progress_disabled(progress), leave=False) as bar:
        for data in iter_line_chunks(stream, chunk_bytes, max_line_bytes=max_line_bytes, name=source.name):
            chunk = parse_kaggle_chunk(data, path=source.name, on_error=on_error, n_timesteps=n_timesteps).rebase(offset)
            offset += chunk.n_lines
            if chunk.error is not None:
                raise chunk.error
            chunk = duplicates.apply(chunk, on_error)
            skips.extend(chunk.skipped)
            n_records += chunk.n_lines - chunk.n_blank
            # a gzip stream counts its compressed bytes as it goes; a zip member only declares them
            compressed = stream.compressed_bytes if callable(getattr(stream, "compressed", None)) else None
            bar.update((compressed if compressed is not None else bar.n + len(data)) - bar.n)
            for start in range(0, chunk.n_samples, batch_size):
                yield chunk.keep(slice(start, start + batch_size)).to_dataset(label)
    if n_records == 0:
        raise empty_file_error(source.name)


def read_kaggle(path: str | PathLike[str], **options) -> FlareDataset:
    """Read a whole Kaggle file into memory (see :func:`iter_kaggle_batches` for options)."""
    from flareseq.data.dataset import FlareDataset, concat_datasets

    batches = list(iter_kaggle_batches(path, **options))
    batches = [b for b in batches if b.n_samples] or batches[:1]
    if not batches:
        return _empty_dataset(options.get("n_timesteps", N_KAGGLE_TIMESTEPS))
    dataset = concat_datasets(batches)
    if dataset.y is not None and (dataset.y == UNLABELLED).all():
        dataset = FlareDataset(X=dataset.X, y=None, ids=dataset.ids, feature_names=dataset.feature_names,
                               meta=dataset.meta)
    return dataset


def _empty_dataset(n_timesteps: int) -> FlareDataset:
    from flareseq.data.dataset import FlareDataset, empty_meta

    return FlareDataset(X=np.empty((0, n_timesteps, len(KAGGLE_PARAMETERS)), np.float32), y=np.empty(0, np.int8),
                        ids=np.empty(0, dtype=str), feature_names=KAGGLE_PARAMETERS, meta=empty_meta(0))


def _progress_disabled(progress: bool | None) -> bool:
    if progress is None:
        return not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    return not progress
