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
import re
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from flareseq.data.dataset import FlareDataset, concat_datasets, empty_meta
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
                              found=repr(name), hint=_SKIP_HINT)
    cls = match["cls"]
    try:
        start, end = pd.Timestamp(match["start"]), pd.Timestamp(match["end"])
    except ValueError:
        raise DataFormatError(where, field="file name", expected="ISO times in st[...] and et[...]",
                              found=f"{match['start']!r} and {match['end']!r}", hint=_SKIP_HINT) from None
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
                              found=f"no column {missing[0]!r} (header: {header[:4]}...)", hint=_SKIP_HINT)
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
                                  found=repr(v), hint=_SKIP_HINT) from None
    return out




def iter_swansf_files(path: str | PathLike[str]) -> Iterator[tuple[str, str, bytes]]:
    """``(display path, file name, content)`` of every ``.csv`` in a directory (sorted by path)
    or archive (a zip sorted by member name; a tar in archive order, so it streams)."""
    path = Path(path)
    if path.is_dir():
        for f in sorted(path.rglob("*.csv")):
            yield str(f), f.name, f.read_bytes()
        return
    name = path.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            for member in sorted(m for m in archive.namelist() if m.lower().endswith(".csv")):
                yield f"{path}:{member}", PurePosixPath(member).name, archive.read(member)
        return
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if member.isfile() and member.name.lower().endswith(".csv"):
                    yield f"{path}:{member.name}", PurePosixPath(member.name).name, archive.extractfile(member).read()
        return
    raise UnsupportedInputError(f"{path}: expected a SWAN-SF directory or a .tar/.tar.gz/.tgz/.zip of one.")


def iter_swansf_batches(
    path: str | PathLike[str],
    *,
    batch_size: int = 4096,
    on_error: str = "raise",
    skips: SkipLog | None = None,
    n_timesteps: int = N_KAGGLE_TIMESTEPS,
    progress: bool | None = None,
    counts: dict | None = None,
) -> Iterator[FlareDataset]:
    """Stream SWAN-SF samples as :class:`FlareDataset` batches.

    ``counts`` (optional dict) receives ``n_records`` and ``n_read``.
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
    for display, name, content in tqdm(iter_swansf_files(path), desc=f"reading {source}", unit=" files",
                                       disable=_progress_disabled(progress), leave=False):
        counts["n_records"] += 1
        sample = _parse_entry(display, name, content, on_error, skips, n_timesteps)
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


def _parse_entry(display: str, name: str, content: bytes, on_error: str, skips: SkipLog,
                 n_timesteps: int) -> SwanSample | None:
    """One file's sample, or ``None`` when it was skipped (``on_error="skip"``)."""
    try:
        return parse_sample(content.decode("utf-8"), path=display, name=name, n_timesteps=n_timesteps)
    except UnicodeDecodeError as exc:
        error = DataFormatError(display, expected="UTF-8 text", found=f"undecodable bytes ({exc.reason})",
                                hint=_SKIP_HINT)
        if on_error == "raise":
            raise error from None
        skips.add(SkippedRecord.from_error(error))
    except DataFormatError as exc:
        if on_error == "raise":
            raise
        skips.add(SkippedRecord.from_error(exc))
    return None


def parse_swansf_files(files: list[str], source: str, on_error: str, n_timesteps: int = N_KAGGLE_TIMESTEPS):
    """Parse the SWAN-SF files ``files`` (paths, in order): ``(dataset or None, skipped
    records)``; what the ingest workers run on a batch of a folder's files."""
    skips = SkipLog()
    samples = []
    for f in files:
        path = Path(f)
        sample = _parse_entry(str(path), path.name, path.read_bytes(), on_error, skips, n_timesteps)
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
