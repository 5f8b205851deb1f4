"""Reader (and writer) of SWAN-SF: one tab-separated file per sample.

File names carry the label and identity:
``lab[<class>]<magnitude>@<n>_id[<HARPNUM>]_st[<start>]_et[<end>].csv`` where ``<class>`` is
the largest GOES class in the 24 h after the window (``NF``: no flare). The binary label is
1 for M or X. The partition (1-5) is taken from a ``partition<N>`` folder or archive name
in the file's path and goes into the ``fold`` metadata column.

The 25 series of :data:`~flareseq.data.schema.KAGGLE_PARAMETERS` (24 SHARP keywords and
XR_MAX) become the features; every other per-step column (location, quality, NOAA numbers,
flare bookkeeping) is kept in ``aux`` -- numeric where the column is numeric -- and never
used as a feature, because several of them are the label's own source.
"""

from __future__ import annotations

import math
import os
import re
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from flareseq.data.dataset import FlareDataset, concat_datasets, empty_meta
from flareseq.data.limits import (
    STREAM_ERRORS,
    ArchiveBudget,
    LimitedStream,
    ReadLimits,
    check_ratio,
    clip,
    current_limits,
    damaged_stream_error,
    limit_error,
    open_decompressed,
    shorten,
)
from flareseq.data.schema import KAGGLE_PARAMETERS, N_KAGGLE_TIMESTEPS, UNLABELLED
from flareseq.data.skips import SkipLog, SkippedRecord, check_on_error
from flareseq.errors import DataFormatError, UnsupportedInputError

NAME_PATTERN = re.compile(
    r"^lab\[(?P<cls>NF|[ABCMX])\](?P<mag>\d+(?:\.\d+)?)?(?:@(?P<event>\d+))?"
    r"_id\[(?P<harp>\d+)\]_st\[(?P<start>[^\]]+)\]_et\[(?P<end>[^\]]+)\]\.csv$"
)
NAME_FORMAT = "lab[<class>]<magnitude>@<n>_id[<HARPNUM>]_st[<start>]_et[<end>].csv"
_PARTITION = re.compile(r"partition[_ -]?(\d+)", re.IGNORECASE)
# Side columns that hold text; every other non-feature column of the SWAN-SF files is numeric.
STRING_COLUMNS = frozenset(
    ["Timestamp", "NOAA_AR", "IS_TMFI"]
    + [f"{c}FLARE_label" for c in "BCMX"] + [f"{c}FLARE_label_loc" for c in "BCMX"]
)
NUMERIC_COLUMNS = frozenset(
    ["CRVAL1", "CRLN_OBS", "LAT_MIN", "LON_MIN", "LAT_MAX", "LON_MAX", "QUALITY", "XR_QUAL"]
    + [f"{c}FLARE" for c in "BCMX"] + [f"{c}FLARE_loc" for c in "BCMX"]
)
_MISSING = frozenset(["", "nan", "NaN", "None", "NA"])
_SKIP_HINT = "Fix or remove the file, or pass on_error='skip' (CLI: --on-error skip) to skip it and list it."


@dataclass(frozen=True)
class SampleName:
    goes_class: str  # "NF" or e.g. "M1.5"
    label: int
    region: str
    start: pd.Timestamp
    end: pd.Timestamp


def parse_sample_name(name: str, *, path: str | None = None) -> SampleName:
    """The label and identity in a SWAN-SF file name; :class:`DataFormatError` if it does not parse."""
    match = NAME_PATTERN.match(name)
    where = path or name
    if match is None:
        raise DataFormatError(where, field="file name", expected=f"a SWAN-SF sample name {NAME_FORMAT}",
                              found=clip(name), hint=_SKIP_HINT)
    cls = match["cls"]
    try:
        start, end = pd.Timestamp(match["start"]), pd.Timestamp(match["end"])
    except ValueError:
        raise DataFormatError(where, field="file name", expected="ISO times in st[...] and et[...]",
                              found=f"{clip(match['start'], 40)} and {clip(match['end'], 40)}", hint=_SKIP_HINT) from None
    goes = "NF" if cls == "NF" else f"{cls}{match['mag'] or ''}"
    return SampleName(goes, int(cls in ("M", "X")), match["harp"], start, end)


def format_sample_name(goes_class: str, region: str, start: pd.Timestamp, end: pd.Timestamp, event: int = 0) -> str:
    """The SWAN-SF file name of a sample (inverse of :func:`parse_sample_name`)."""
    lab = "lab[NF]" if goes_class == "NF" else f"lab[{goes_class[0]}]{goes_class[1:]}@{event}"
    fmt = "%Y-%m-%dT%H:%M:%S"
    return f"{lab}_id[{region}]_st[{pd.Timestamp(start).strftime(fmt)}]_et[{pd.Timestamp(end).strftime(fmt)}].csv"


def partition_of(path: str) -> int | None:
    matches = _PARTITION.findall(path)
    return int(matches[-1]) if matches else None


# -- one file ------------------------------------------------------------------------------
@dataclass
class SwanSample:
    id: str
    name: SampleName
    fold: int | None
    X: np.ndarray  # float32 (T, F)
    aux: dict


def parse_sample(text: str, *, path: str, name: str, n_timesteps: int = N_KAGGLE_TIMESTEPS) -> SwanSample:
    """Parse one SWAN-SF file's text (its name gives the label)."""
    meta = parse_sample_name(name, path=path)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DataFormatError(path, line=1, expected="a header row of tab-separated column names",
                              found="an empty file", hint=_SKIP_HINT)
    header = lines[0].split("\t")
    missing = [p for p in KAGGLE_PARAMETERS if p not in header]
    if missing:
        raise DataFormatError(path, line=1, field=missing[0], expected=f"the {len(KAGGLE_PARAMETERS)} parameter columns "
                              "(24 SHARP keywords and XR_MAX) in a tab-separated header",
                              found=f"no column {missing[0]!r} (header: {clip(header[:4])})", hint=_SKIP_HINT)
    rows = [line.split("\t") for line in lines[1:] if line.strip()]
    if len(rows) != n_timesteps:
        raise DataFormatError(path, field="rows", expected=f"a series of {n_timesteps} time steps (rows)",
                              found=f"{len(rows)} rows", hint=_SKIP_HINT)
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise DataFormatError(path, line=number, expected=f"{len(header)} tab-separated fields",
                                  found=f"{len(row)} fields", hint=_SKIP_HINT)
    columns = list(zip(*rows))
    index = {c: i for i, c in enumerate(header)}
    X = np.empty((n_timesteps, len(KAGGLE_PARAMETERS)), dtype=np.float64)
    for j, p in enumerate(KAGGLE_PARAMETERS):
        X[:, j] = _numbers(columns[index[p]], path, p)
    aux = {}
    for c, i in index.items():
        if c in KAGGLE_PARAMETERS:
            continue
        if c in NUMERIC_COLUMNS:
            aux[c] = _numbers(columns[i], path, c)
        else:
            aux[c] = np.array([None if v in _MISSING else v for v in columns[i]], dtype=object)
    return SwanSample(name, meta, partition_of(path), X.astype(np.float32), aux)


def _numbers(values, path: str, column: str) -> np.ndarray:
    out = np.empty(len(values), dtype=np.float64)
    for t, v in enumerate(values):
        if v in _MISSING:
            out[t] = math.nan
            continue
        try:
            out[t] = float(v)
        except ValueError:
            raise DataFormatError(path, line=t + 2, field=column, expected="a number or an empty cell",
                                  found=clip(v), hint=_SKIP_HINT) from None
    return out




# -- files, folders and archives: regular files only, within the limits --------------------
@dataclass(frozen=True)
class SampleEntry:
    """One ``.csv`` of a folder or archive: its bytes, or why it was not read (a record
    that ``on_error="skip"`` skips: a link leaving the folder, a device, a file too large)."""

    display: str  # the path shown in errors: a file's path or "archive:member"
    name: str  # the file name (label and identity)
    content: bytes | None
    problem: DataFormatError | None = None


def list_sample_files(folder: str | PathLike[str]) -> list[Path]:
    """The ``.csv`` entries under ``folder`` sorted by path (the store order), without
    descending into linked folders; links and special files are listed (and refused when
    read, see :func:`read_sample_file`)."""
    found = []
    for directory, _, names in os.walk(folder, followlinks=False):
        found.extend(Path(directory) / n for n in names if n.endswith(".csv"))
    return sorted(found)


def read_sample_file(path: str | PathLike[str], root: str | PathLike[str] | None, limits: ReadLimits | None = None
                     ) -> bytes:
    """The bytes of one sample file, read only if it is a regular file of at most
    ``limits.max_sample_bytes``; a symbolic link is followed only to a regular file inside
    ``root`` (the folder being read). Anything else is a :class:`DataFormatError` that names
    the entry and never quotes the content of what it points to."""
    limits = current_limits(limits)
    path = Path(path)
    display = str(path)
    try:
        target = path
        if stat.S_ISLNK(os.lstat(path).st_mode):
            resolved = path.resolve()
            if root is None or not resolved.is_relative_to(Path(root).resolve()):
                raise _not_regular(display, "a symbolic link to a path outside the folder being read")
            target = resolved
        # O_NOFOLLOW: no link swapped in since the check; O_NONBLOCK: a FIFO must not hang the read
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, RuntimeError) as exc:  # RuntimeError: a loop of links
        raise DataFormatError(display, expected="a readable regular file",
                              found=shorten(getattr(exc, "strerror", None) or str(exc)), hint=_SKIP_HINT) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(display, "a device, pipe, socket or folder")
        if info.st_size > limits.max_sample_bytes:
            raise _too_large(display, info.st_size, limits)
        data = handle.read(limits.max_sample_bytes + 1)
    if len(data) > limits.max_sample_bytes:  # it grew while being read
        raise _too_large(display, len(data), limits)
    return data


def _not_regular(display: str, what: str) -> DataFormatError:
    return DataFormatError(display, expected="a regular sample file", found=what, hint=_SKIP_HINT)


def _too_large(display: str, size: int, limits: ReadLimits) -> DataFormatError:
    return limit_error(display, limit_name="max_sample_bytes",
                       expected=f"a sample file of at most {limits.max_sample_bytes:,} bytes (real ones: ~40 KB)",
                       found=f"{size:,} bytes")


def iter_swansf_files(path: str | PathLike[str], limits: ReadLimits | None = None) -> Iterator[SampleEntry]:
    """Every ``.csv`` of a directory (sorted by path) or archive (a zip sorted by member name;
    a tar in archive order, streamed), as :class:`SampleEntry`. Archives are read under
    ``limits``: an archive that expands too much (a bomb) stops with a
    :class:`~flareseq.data.limits.LimitError`."""
    limits = current_limits(limits)
    path = Path(path)
    if path.is_dir():
        for f in list_sample_files(path):
            try:
                yield SampleEntry(str(f), f.name, read_sample_file(f, path, limits))
            except DataFormatError as exc:
                yield SampleEntry(str(f), f.name, None, exc)
        return
    name = path.name.lower()
    if name.endswith(".zip"):
        yield from _zip_entries(path, limits)
        return
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        yield from _tar_entries(path, limits)
        return
    raise UnsupportedInputError(f"{path}: expected a SWAN-SF directory or a .tar/.tar.gz/.tgz/.zip of one.")


def _zip_entries(path: Path, limits: ReadLimits) -> Iterator[SampleEntry]:
    size = path.stat().st_size
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise damaged_stream_error(str(path), exc) from None
    budget = ArchiveBudget(str(path), limits, compressed_bytes=size)
    with archive:
        for member in sorted((m for m in archive.infolist() if m.filename.lower().endswith(".csv")),
                             key=lambda m: m.filename):
            display, short = f"{path}:{shorten(member.filename, 300)}", PurePosixPath(member.filename).name
            kind = stat.S_IFMT(member.external_attr >> 16)
            if member.is_dir() or kind not in (0, stat.S_IFREG):
                yield SampleEntry(display, short, None, _not_regular(display, "a link, folder or special file"))
                continue
            if member.file_size > limits.max_sample_bytes:
                yield SampleEntry(display, short, None, _too_large(display, member.file_size, limits))
                continue
            check_ratio(display, member.file_size, min(member.compress_size, size), limits)
            try:
                handle = archive.open(member)
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, *STREAM_ERRORS) as exc:
                raise damaged_stream_error(display, exc) from None
            with LimitedStream(handle, name=display, limits=limits, compressed=min(member.compress_size, size),
                               max_bytes=limits.max_sample_bytes, max_bytes_name="max_sample_bytes",
                               budget=budget) as stream:
                content = stream.read()
            yield SampleEntry(display, short, content)


def _tar_entries(path: Path, limits: ReadLimits) -> Iterator[SampleEntry]:
    # decompressed here, not by tarfile, so that every byte passes the limits (ratio, total)
    stream = open_decompressed(path, limits=limits)
    stream.max_bytes, stream.max_bytes_name = limits.max_total_bytes, "max_total_bytes"
    with stream:
        try:
            with tarfile.open(fileobj=stream, mode="r|") as archive:
                for member in archive:
                    if not member.name.lower().endswith(".csv"):
                        continue
                    display, short = f"{path}:{shorten(member.name, 300)}", PurePosixPath(member.name).name
                    if not member.isfile():
                        yield SampleEntry(display, short, None, _not_regular(display, "a link, folder or special file"))
                    elif member.size > limits.max_sample_bytes:
                        yield SampleEntry(display, short, None, _too_large(display, member.size, limits))
                    else:
                        yield SampleEntry(display, short, archive.extractfile(member).read())
        except (tarfile.TarError, *STREAM_ERRORS) as exc:
            raise DataFormatError(path, expected="a complete tar archive (optionally gzip, bzip2 or xz compressed)",
                                  found=shorten(f"{type(exc).__name__}: {exc}", 120),
                                  hint="Download or copy it again.") from None


def iter_swansf_batches(
    path: str | PathLike[str],
    *,
    batch_size: int = 4096,
    on_error: str = "raise",
    skips: SkipLog | None = None,
    n_timesteps: int = N_KAGGLE_TIMESTEPS,
    progress: bool | None = None,
    counts: dict | None = None,
    limits: ReadLimits | None = None,
) -> Iterator[FlareDataset]:
    """Stream SWAN-SF samples as :class:`FlareDataset` batches.

    ``counts`` (optional dict) receives ``n_records`` and ``n_read``; ``limits``
    (:class:`~flareseq.data.limits.ReadLimits`) caps archives and sample files. Only regular
    files are read: a link that leaves the folder, a device or a pipe is a bad record.
    """
    from tqdm.auto import tqdm

    from flareseq.data.kaggle import _progress_disabled

    check_on_error(on_error)
    skips = skips if skips is not None else SkipLog()
    source = Path(path).name
    counts = counts if counts is not None else {}
    counts.setdefault("n_records", 0)
    counts.setdefault("n_read", 0)
    batch: list[SwanSample] = []
    for entry in tqdm(iter_swansf_files(path, limits), desc=f"reading {source}", unit=" files",
                      disable=_progress_disabled(progress), leave=False):
        counts["n_records"] += 1
        sample = _parse_entry(entry, on_error, skips, n_timesteps)
        if sample is not None:
            batch.append(sample)
            counts["n_read"] += 1
        if len(batch) >= batch_size:
            yield _to_dataset(batch, source, n_timesteps)
            batch = []
    if counts["n_records"] == 0:
        raise no_files_error(path)
    if batch:
        yield _to_dataset(batch, source, n_timesteps)


def no_files_error(path) -> DataFormatError:
    return DataFormatError(str(path), expected=f"SWAN-SF sample files named {NAME_FORMAT}",
                           found="no .csv file", hint="Point flareseq at a partition folder or its archive.")


def _parse_entry(entry: SampleEntry, on_error: str, skips: SkipLog, n_timesteps: int) -> SwanSample | None:
    """One file's sample, or ``None`` when it was skipped (``on_error="skip"``)."""
    try:
        if entry.problem is not None:
            raise entry.problem
        return parse_sample(entry.content.decode("utf-8"), path=entry.display, name=entry.name,
                            n_timesteps=n_timesteps)
    except UnicodeDecodeError as exc:
        error = DataFormatError(entry.display, expected="UTF-8 text", found=f"undecodable bytes ({exc.reason})",
                                hint=_SKIP_HINT)
        if on_error == "raise":
            raise error from None
        skips.add(SkippedRecord.from_error(error))
    except DataFormatError as exc:
        if on_error == "raise":
            raise exc from None
        skips.add(SkippedRecord.from_error(exc))
    return None


def read_swansf_file(path: str | PathLike[str], *, n_timesteps: int = N_KAGGLE_TIMESTEPS,
                     limits: ReadLimits | None = None) -> SwanSample:
    """One SWAN-SF sample file named by the user (a link is followed to its regular file)."""
    path = Path(path)
    entry = SampleEntry(str(path), path.name, read_sample_file(path.resolve(), None, limits))
    return _parse_entry(entry, "raise", SkipLog(), n_timesteps)


def parse_swansf_files(files: list[str], source: str, on_error: str, n_timesteps: int = N_KAGGLE_TIMESTEPS,
                       root: str | None = None, limits: ReadLimits | None = None):
    """Parse the SWAN-SF files ``files`` (paths under the folder ``root``, in order):
    ``(dataset or None, skipped records)``; what the ingest workers run on a batch of a
    folder's files."""
    skips = SkipLog()
    samples = []
    for f in files:
        path = Path(f)
        try:
            entry = SampleEntry(str(path), path.name, read_sample_file(path, root, limits))
        except DataFormatError as exc:
            entry = SampleEntry(str(path), path.name, None, exc)
        sample = _parse_entry(entry, on_error, skips, n_timesteps)
        if sample is not None:
            samples.append(sample)
    return (_to_dataset(samples, source, n_timesteps) if samples else None), skips.records


def _to_dataset(samples: list[SwanSample], source: str, n_timesteps: int) -> FlareDataset:
    n = len(samples)
    meta = empty_meta(n)
    meta["source"] = pd.array([source] * n, dtype="string")
    meta["fold"] = pd.array([s.fold for s in samples], dtype="Int64")
    meta["region"] = pd.array([s.name.region for s in samples], dtype="string")
    meta["start"] = pd.to_datetime([s.name.start for s in samples]).astype("datetime64[ns]")
    meta["end"] = pd.to_datetime([s.name.end for s in samples]).astype("datetime64[ns]")
    meta["goes_class"] = pd.array([s.name.goes_class for s in samples], dtype="string")
    names = sorted({c for s in samples for c in s.aux})
    aux = {}
    for c in names:
        numeric = c in NUMERIC_COLUMNS
        fill = np.full(n_timesteps, np.nan) if numeric else np.array([None] * n_timesteps, dtype=object)
        aux[c] = np.stack([s.aux.get(c, fill) for s in samples]).astype(np.float64 if numeric else object)
    return FlareDataset(
        X=np.stack([s.X for s in samples]),
        y=np.array([s.name.label for s in samples], dtype=np.int8),
        ids=np.array([s.id for s in samples], dtype=str),
        feature_names=KAGGLE_PARAMETERS, meta=meta, aux=aux,
    )


def read_swansf(path: str | PathLike[str], **options) -> FlareDataset:
    """Read a whole SWAN-SF directory or archive into memory (options as :func:`iter_swansf_batches`)."""
    batches = [b for b in iter_swansf_batches(path, **options) if b.n_samples]
    if not batches:
        n_timesteps = options.get("n_timesteps", N_KAGGLE_TIMESTEPS)
        return FlareDataset(X=np.empty((0, n_timesteps, len(KAGGLE_PARAMETERS)), np.float32),
                            y=np.empty(0, np.int8), ids=np.empty(0, dtype=str), feature_names=KAGGLE_PARAMETERS,
                            meta=empty_meta(0))
    return concat_datasets(batches)


# -- writing (synthetic data, tests) -----------------------------------------------------------
def write_swansf(dataset: FlareDataset, directory: str | PathLike[str], *, cadence_minutes: int = 12) -> list[Path]:
    """Write each sample as a SWAN-SF file under ``directory/partition<fold>/`` (the 25
    features; the label, region and window in the file name from ``meta``)."""
    directory = Path(directory)
    written = []
    labels = dataset.y if dataset.y is not None else np.full(dataset.n_samples, UNLABELLED)
    for i in range(dataset.n_samples):
        row = dataset.meta.iloc[i]
        goes = row["goes_class"] if pd.notna(row["goes_class"]) else ("M1.0" if labels[i] == 1 else "NF")
        region = row["region"] if pd.notna(row["region"]) else str(i)
        start = row["start"] if pd.notna(row["start"]) else pd.Timestamp("2010-05-01") + pd.Timedelta(hours=i)
        end = start + pd.Timedelta(minutes=cadence_minutes * (dataset.n_timesteps - 1))
        fold = row["fold"]
        folder = directory / (f"partition{int(fold)}" if pd.notna(fold) else "partition")
        folder.mkdir(parents=True, exist_ok=True)
        times = pd.date_range(start, periods=dataset.n_timesteps, freq=f"{cadence_minutes}min")
        lines = ["\t".join(("Timestamp",) + tuple(dataset.feature_names))]
        for t in range(dataset.n_timesteps):
            values = ("" if np.isnan(v) else repr(float(v)) for v in dataset.X[i, t])
            lines.append("\t".join([times[t].strftime("%Y-%m-%d %H:%M:%S"), *values]))
        target = folder / format_sample_name(goes, region, start, end, event=i)
        target.write_text("\n".join(lines) + "\n")
        written.append(target)
    return written
