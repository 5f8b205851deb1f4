"""SWAN-SF folders on Spark: each tab-separated sample file parsed in Spark SQL, columns by name.

Spark reads the files with its ``binaryFile`` source (its text source cannot open SWAN-SF
names: Hadoop paths refuse the ``:`` in ``st[2014-01-22T23:12:00]``), one row per file. The
header row names the columns; the 25 features and every side column are taken by their
position *in that file's header*, never by a fixed position. As for Kaggle lines
(:mod:`.spark_kaggle`), a file is *clean* only when Spark can prove that the local parser
reads it to the same values: printable ASCII text, a header with the 25 parameters and no
repeated name, T rows of as many fields as the header, and every numeric cell a plain
decimal number or a missing-value token. Other files are *suspect* and the driver parses
them with :func:`~flareseq.data.swansf.parse_sample` (same values or the same error).

The label, region and window come from the file name and the partition from the path; the
driver reads them with the local engine's own functions, in store order (files sorted by
path, as the local reader sorts them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from flareseq.data.dataset import FlareDataset
from flareseq.data.schema import KAGGLE_PARAMETERS
from flareseq.data.skips import SkipLog, SkippedRecord
from flareseq.data.spark.staging import StagedParts
from flareseq.data.swansf import (
    NAME_FORMAT,
    NUMERIC_COLUMNS,
    SampleName,
    SwanSample,
    _to_dataset,
    parse_sample,
    parse_sample_name,
    partition_of,
)
from flareseq.errors import DataFormatError, FlareseqError

CLEAN, SUSPECT = 0, 1
_MISSING_TOKENS = ("", "nan", "NaN", "None", "NA")  # swansf._MISSING, as SQL literals
# a decimal number that Python's float() and Java's Double.parseDouble read to the same double
# (\z, not $: Java's $ also matches before a final line terminator)
_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\z"
_SKIP_HINT = "Fix or remove the file, or pass on_error='skip' (CLI: --on-error skip) to skip it and list it."


def swansf_frame(spark, uri: str, n_timesteps: int):
    """One row per ``.csv`` file under ``uri`` (recursively) with the staging columns
    ``path, kind, X, n_missing, aux_num, aux_str, raw``, each task's rows sorted by path."""
    from pyspark.sql import functions as F

    params = list(KAGGLE_PARAMETERS)
    params_lit = F.array(*[F.lit(p) for p in params])
    numeric_lit = F.array(*[F.lit(c) for c in sorted(NUMERIC_COLUMNS)])
    nan = F.lit(float("nan"))

    def blank(s):
        return s.rlike(r"^[ \t]*\z")

    def number(s):
        """A cell as a double (NaN when missing); null when the cell is not a plain number."""
        return F.when(s.isin(*_MISSING_TOKENS), nan).when(s.rlike(_NUMBER), s.try_cast("double"))

    files = (spark.read.format("binaryFile").option("pathGlobFilter", "*.csv").option("recursiveFileLookup", "true")
             # local files without Hadoop's checksum layer: it looks for a ".NAME.crc" beside each
             # file, and a Hadoop path cannot hold such a name with SWAN-SF's ':'
             .option("fs.file.impl", "org.apache.hadoop.fs.RawLocalFileSystem")
             .option("fs.file.impl.disable.cache", "true")
             .load(uri).select("path", "content"))
    text = F.col("content").cast("string")
    lines = F.split(text, r"\r?\n", -1)
    files = files.select("path", "content", text.alias("text"), lines.alias("lines"))
    text, lines = F.col("text"), F.col("lines")
    header = F.split(F.element_at(lines, 1), "\t", -1)
    rows = F.filter(F.slice(lines, 2, F.size(lines) - 1), lambda line: ~blank(line))
    files = files.select("path", "content", "text", "lines", header.alias("header"),
                         F.transform(rows, lambda line: F.split(line, "\t", -1)).alias("cells"))
    header, cells = F.col("header"), F.col("cells")

    def column(name_col):
        """The cells of a header column (by name) in row order."""
        position = F.array_position(header, name_col).cast("int")  # 0 when absent
        return F.transform(cells, lambda row: F.when(position > 0, F.try_element_at(row, position)))

    # one expression applied to each name (not 25 copies): Spark compiles it once
    features = F.flatten(F.transform(F.array(*[F.lit(p) for p in params]), lambda p: F.transform(column(p), number)))
    side = F.filter(header, lambda h: ~F.array_contains(params_lit, h))
    numeric_side = F.filter(side, lambda h: F.array_contains(numeric_lit, h))
    text_side = F.filter(side, lambda h: ~F.array_contains(numeric_lit, h))
    aux_num = F.map_from_arrays(numeric_side, F.transform(numeric_side, lambda h: F.transform(column(h), number)))
    aux_str = F.map_from_arrays(text_side, F.transform(
        text_side, lambda h: F.transform(column(h), lambda s: F.when(~s.isin(*_MISSING_TOKENS), s))))
    files = files.select("path", "content", "text", "lines", "header", "cells", features.alias("X64"),
                         aux_num.alias("aux_num"), aux_str.alias("aux_str"))
    X64 = F.col("X64")
    X = F.transform(X64, lambda x: x.cast("float"))
    clean = (
        text.rlike(r"^[\t\n\r -~]*\z") & ~text.rlike(r"\r(?!\n)")  # printable ASCII, \n or \r\n line ends
        & ~blank(F.element_at(lines, 1))
        & (F.size(F.array_distinct(header)) == F.size(header))
        & F.forall(params_lit, lambda p: F.array_contains(header, p))
        & (F.size(cells) == n_timesteps)
        & F.forall(cells, lambda row: F.size(row) == F.size(header))
        & F.forall(X64, lambda x: x.isNotNull())
        & ~F.exists(X, lambda x: F.abs(x) == float("inf"))
        & F.forall(F.map_values(F.col("aux_num")), lambda values: F.forall(values, lambda x: x.isNotNull()))
    )
    files = files.select("path", "content", X.alias("X"), "aux_num", "aux_str",
                         F.when(F.coalesce(clean, F.lit(False)), F.lit(CLEAN)).otherwise(F.lit(SUSPECT))
                         .cast("byte").alias("kind"))
    is_clean = F.col("kind") == CLEAN
    return files.select(
        "path", "kind",
        F.when(is_clean, F.col("X")).alias("X"),
        F.when(is_clean, F.size(F.filter(F.col("X"), lambda x: F.isnan(x)))).alias("n_missing"),
        F.when(is_clean, F.col("aux_num")).alias("aux_num"),
        F.when(is_clean, F.col("aux_str")).alias("aux_str"),
        F.when(~is_clean, F.col("content")).alias("raw"),
        # '/' below every other character: each task's files in the order of Path objects
    ).sortWithinPartitions(F.translate(F.col("path"), "/", "\u0000"))


@dataclass
class ResolvedSwansf:
    """The samples of one SWAN-SF folder in store order: where each is staged, and its identity."""

    name: str  # the folder as given
    source: str  # the folder's name: the samples' ``source`` metadata
    staged: StagedParts
    part: np.ndarray
    row: np.ndarray
    suspect: np.ndarray
    paths: list  # display path of each sample (as the local reader shows it)
    ids: np.ndarray
    labels: np.ndarray
    names: list = field(default_factory=list)  # SampleName of each sample
    folds: list = field(default_factory=list)
    info: dict = field(default_factory=dict)
    n_driver_parsed: int = 0  # suspect files the driver's parser read (good or bad)

    @property
    def n_samples(self) -> int:
        return self.ids.size


def display_path(spark_path: str, root_given: str, root_uri: str) -> str:
    """The path the local reader would show for a file Spark lists as ``spark_path``."""
    plain = re.sub(r"^file:(//)?(?=/)", "", spark_path)
    root = re.sub(r"^file:(//)?(?=/)", "", root_uri).rstrip("/")
    if not plain.startswith(root + "/"):
        return spark_path
    return str(Path(root_given) / plain[len(root) + 1:]) if "://" not in root_given else \
        root_given.rstrip("/") + "/" + plain[len(root) + 1:]


def resolve_swansf(staged: StagedParts, name: str, root_uri: str, *, on_error: str, skips: SkipLog,
                   n_timesteps: int) -> ResolvedSwansf:
    """Sort the staged files as the local reader does, read their names, parse the suspect
    ones with the strict parser, and refuse (or skip) bad files as the local engine does."""
    table = staged.read_columns(["path", "kind"])
    spark_paths = [] if table is None else table.column("path").to_pylist()
    shown = [display_path(p, name, root_uri) for p in spark_paths]
    _check_same_files(name, shown)
    if not shown:
        raise DataFormatError(name, expected=f"SWAN-SF sample files named {NAME_FORMAT}",
                              found="no .csv file", hint="Point flareseq at a partition folder or its archive.")
    order = np.array(sorted(range(len(shown)), key=lambda i: Path(shown[i])), dtype=np.int64)
    kind = table.column("kind").to_numpy()[order]
    part = table.column("_part").to_numpy()[order]
    row = table.column("_row").to_numpy()[order]
    paths = [shown[i] for i in order]
    n = len(paths)
    ids = np.empty(n, dtype=object)
    labels = np.zeros(n, dtype=np.int8)
    names: list[SampleName | None] = [None] * n
    errors: dict[int, DataFormatError] = {}
    suspect_raw = _suspect_contents(staged, part, row, kind == SUSPECT)
    for i, path in enumerate(paths):
        file_name = PurePosixPath(path).name
        try:
            if kind[i] == SUSPECT:
                sample = _parse_suspect(suspect_raw.pop(i), path, file_name, n_timesteps)
                names[i] = sample.name
            else:
                names[i] = parse_sample_name(file_name, path=path)
        except DataFormatError as exc:
            if on_error == "raise":
                raise
            errors[i] = exc
            continue
        ids[i], labels[i] = file_name, names[i].label
    kept = np.array([i not in errors for i in range(n)], dtype=bool)
    skips.extend(SkippedRecord.from_error(errors[i]) for i in sorted(errors))
    keep = np.flatnonzero(kept)
    return ResolvedSwansf(
        name=name, source=Path(name).name or name, staged=staged, part=part[keep], row=row[keep],
        suspect=(kind == SUSPECT)[keep], paths=[paths[i] for i in keep], ids=ids[keep].astype(str),
        labels=labels[keep], names=[names[i] for i in keep], folds=[partition_of(paths[i]) for i in keep],
        info={"path": name, "format": "swansf", "n_records": n, "n_read": int(keep.size),
              "n_skipped": n - int(keep.size)},
        n_driver_parsed=int((kind == SUSPECT).sum()),
    )


def _suspect_contents(staged: StagedParts, part: np.ndarray, row: np.ndarray, suspect: np.ndarray) -> dict:
    where = np.flatnonzero(suspect)
    out = {}
    for start, table in zip(range(0, where.size, 4096), staged.iter_rows(part[where], row[where], ["raw"])):
        for k, raw in enumerate(table.column("raw").to_pylist()):
            out[int(where[start + k])] = raw
    return out


def _parse_suspect(content: bytes, path: str, file_name: str, n_timesteps: int) -> SwanSample:
    """The local reader's handling of one file (iter_swansf_batches), errors included."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, expected="UTF-8 text", found=f"undecodable bytes ({exc.reason})",
                              hint=_SKIP_HINT) from None
    return parse_sample(text, path=path, name=file_name, n_timesteps=n_timesteps)


def check_regular_files(path) -> None:
    """Refuse a local folder holding ``.csv`` entries that are links or special files: Spark
    opens whatever it lists (a link to ``/dev/zero`` or to a file outside the folder), while
    the local engine reads regular files only (and skips the others with --on-error skip)."""
    import os
    import stat

    from flareseq.data.swansf import list_sample_files

    root = Path(str(path))
    if "://" in str(path) or not root.is_dir():
        return
    odd = [f for f in list_sample_files(root) if not stat.S_ISREG(os.lstat(f).st_mode)]
    if odd:
        raise FlareseqError(
            f"{root}: {len(odd)} .csv entries are symbolic links or special files (e.g. {str(odd[0])!r}); Spark would "
            "open them as they are, links leaving the folder included. Remove them, or use the local engine (leave "
            "out --engine spark), which reads regular files only and lists the others as skipped with --on-error "
            "skip.")


def _check_same_files(name: str, shown: list[str]) -> None:
    """Spark (Hadoop) does not list files or folders whose names start with '.' or '_';
    the local reader does. A local folder is listed both ways so that no file is left out
    unnoticed."""
    root = Path(name)
    if "://" in name or not root.is_dir():
        return
    local = {str(f) for f in root.rglob("*.csv") if f.is_file()}
    missing = sorted(local - set(shown))
    if missing:
        raise FlareseqError(
            f"{name}: Spark does not see {len(missing)} of the {len(local)} .csv files the local engine reads "
            f"(e.g. {missing[:3]}): Spark skips names starting with '.' or '_'. Rename them, or use the local "
            "engine (leave out --engine spark).")


def iter_swansf_datasets(resolved: ResolvedSwansf, positions: np.ndarray, *, n_timesteps: int,
                         batch_size: int = 4096) -> Iterator[FlareDataset]:
    """The samples at ``positions`` (store order) as datasets, built by the local reader's own
    :func:`~flareseq.data.swansf._to_dataset` from the staged values."""
    F_ = len(KAGGLE_PARAMETERS)
    r = resolved
    columns = ["X", "n_missing", "aux_num", "aux_str", "raw"]
    for start, table in zip(range(0, positions.size, batch_size),
                            r.staged.iter_rows(r.part[positions], r.row[positions], columns, batch_size)):
        pos = positions[start:start + table.num_rows]
        numeric = _map_rows(table.column("aux_num"), np.float64, n_timesteps)
        text = _map_rows(table.column("aux_str"), object, n_timesteps)
        xs = table.column("X").combine_chunks()
        samples = []
        for k, i in enumerate(pos.tolist()):
            if r.suspect[i]:
                raw = table.column("raw")[k].as_py()
                samples.append(_parse_suspect(raw, r.paths[i], r.ids[i], n_timesteps))
                continue
            X = xs[k].values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
            X = np.ascontiguousarray(X.reshape(F_, n_timesteps).T)
            samples.append(SwanSample(r.ids[i], r.names[i], r.folds[i], X, {**numeric[k], **text[k]}))
        yield _to_dataset(samples, r.source, n_timesteps)


def _map_rows(column, dtype, n_timesteps: int) -> list[dict]:
    """Per row, ``{name: array (T,)}`` of a ``map<string, array<...>>`` column (null -> {})."""
    column = column.combine_chunks()
    offsets = column.offsets.to_numpy()
    keys = column.keys.to_numpy(zero_copy_only=False)
    items = column.items.flatten().to_numpy(zero_copy_only=False)
    values = (items.astype(dtype, copy=False) if dtype is not object else np.asarray(items, dtype=object))
    values = values.reshape(-1, n_timesteps) if keys.size else values.reshape(0, n_timesteps)
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    out = []
    for k in range(len(column)):
        if not valid[k]:
            out.append({})
            continue
        a, b = int(offsets[k]), int(offsets[k + 1])
        out.append({str(keys[j]): values[j] for j in range(a, b)})
    return out
