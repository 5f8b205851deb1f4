"""Kaggle JSON lines on Spark: parse and check every line in Spark SQL, resolve on the driver.

Each line becomes one row of the staged output (see :mod:`.spark_staging`): the line's place
in the file (``block``: the Hadoop split it was read from; ``mono``: its position in the
task), and either the parsed sample (*clean*), the raw line (*suspect*) or nothing (*blank*).

Spark parses with an explicit schema in which ``values`` is a map of maps, so that series
and time steps are selected **by name** (Spark would sort an inferred ``"0".."59"`` struct
as text: ``"0", "1", "10", ...``) and so that the key sets can be checked exactly. A line is
*clean* only when Spark can prove that the local engine's strict parser reads it to the
same values: well-formed JSON that is one object, no string values other than the keys (so
no quoted ``"NaN"``, no extra keys), no backslash escapes, integer ``id`` (or a plain string
id), ``classNum`` 0/1, exactly the 25 parameters with exactly the step keys, and every value
finite as float32. Anything else is *suspect*: the driver runs the local engine's own strict
parser on it (:func:`~flareseq.data.kaggle.parse_kaggle_line`), which either reads it (same
values by construction) or raises the same error, with the same file, line and field. In
real files (and the synthetic ones) every line is clean.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from flareseq.data.dataset import FlareDataset
from flareseq.data.kaggle import (
    DuplicateIdFilter,
    ParsedChunk,
    empty_file_error,
    parse_kaggle_line,
)
from flareseq.data.schema import KAGGLE_PARAMETERS, UNLABELLED
from flareseq.data.skips import SkipLog, SkippedRecord
from flareseq.data.spark.staging import StagedParts
from flareseq.errors import DataFormatError

CLEAN, SUSPECT, BLANK = 0, 1, 2
_JSON_SPACE = r" \t\r"  # JSON whitespace left in a line split at "\n" (as a regex character class)
_INT_ID = r"^(0|-?[1-9][0-9]*)$"  # how Spark prints an integer id that Python prints alike ("-0" is not)


def kaggle_frame(spark, uri: str, n_timesteps: int):
    """One row per line of the JSON-lines file at ``uri`` with the staging columns
    ``block, mono, kind, n_bytes, id, label, fold, X, n_missing, raw``.

    ``X`` holds the 25 series one after the other (parameter-major, ``25 x T`` float32);
    ``raw`` holds the line's bytes for suspect lines only.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    F_ = len(KAGGLE_PARAMETERS)
    steps = [str(t) for t in range(n_timesteps)]
    text_order = sorted(steps)
    # 1-based position in text order of each step "0".."T-1" (to reorder a key-sorted series)
    permutation = F.array(*[F.lit(text_order.index(s) + 1) for s in steps])
    steps_lit = F.array(*[F.lit(s) for s in steps])
    text_order_lit = F.array(*[F.lit(s) for s in text_order])
    schema = T.StructType([
        T.StructField("id", T.StringType()),
        T.StructField("classNum", T.LongType()),
        T.StructField("fold", T.LongType()),
        # parameters by name (a struct: Spark looks each up as it parses), steps as a map: its
        # keys can be checked exactly
        T.StructField("values", T.StructType([T.StructField(name, T.MapType(T.StringType(), T.DoubleType()))
                                              for name in KAGGLE_PARAMETERS])),
        T.StructField("_corrupt_record", T.StringType()),
    ])
    options = {"allowNonNumericNumbers": "true", "allowSingleQuotes": "false", "mode": "PERMISSIVE",
               "columnNameOfCorruptRecord": "_corrupt_record"}
    nan = F.lit(float("nan")).cast("float")
    inf = F.lit(float("inf")).cast("float")

    def count(column, char: str):
        """Occurrences of an ASCII character (bytes, not characters: counting those is a pass)."""
        return F.octet_length(column) - F.octet_length(F.replace(column, F.lit(char), F.lit("")))

    def series(name: str):
        """The series' T values in step order, or null when its keys are not exactly the steps."""
        m = F.col("p.values")[name]
        by_text = F.array_sort(F.map_entries(m))
        return (F.when(F.map_keys(m) == steps_lit, F.map_values(m))  # the usual order: as written
                .when(F.transform(by_text, lambda e: e["key"]) == text_order_lit,
                      F.transform(permutation, lambda i: F.element_at(by_text, i)["value"])))

    # the line's place: rows of one split (block) are read in order, so mono orders them
    lines = spark.read.option("lineSep", "\n").text(uri).select(
        "value", F.col("_metadata.file_block_start").alias("block"), F.monotonically_increasing_id().alias("mono"))
    parsed = lines.select("value", "block", "mono", F.from_json("value", schema, options).alias("p"))
    # flatten() is null when any series is (a parameter missing, keys not exactly the steps).
    # No lambda over parameters or values: Spark interprets lambdas, and one per value took
    # several times the parse; JSON null stays null here and becomes NaN on the driver.
    X = F.flatten(F.array(*[series(name) for name in KAGGLE_PARAMETERS])).cast("array<float>")
    parsed = parsed.select("value", "block", "mono", "p", X.alias("X"))

    value, p, X = F.col("value"), F.col("p"), F.col("X")
    # "fold": null is a key too (the local parser reads it as an unknown fold)
    fold_key = F.when(p["fold"].isNotNull(), True).otherwise(value.rlike(r'"fold"\s*:\s*null'))
    n_keys = (F.lit(2 + F_ + F_ * n_timesteps) + p["classNum"].isNotNull().cast("int") + fold_key.cast("int"))
    quotes = count(value, '"')
    int_id = (quotes == 2 * n_keys) & p["id"].rlike(_INT_ID)
    # one string value besides the keys, and it is the id's; "NaN" inside it would be
    # rewritten by the local parser's NaN->null trick, so the strict parser must see it
    string_id = ((quotes == 2 * n_keys + 2) & value.rlike(r'"id"\s*:\s*"') & p["id"].rlike(r"^[ -~]*$")
                 & ~p["id"].contains("NaN"))
    clean = (
        p["_corrupt_record"].isNull()
        & ~value.rlike(r"\\")  # cheaper than instr(): regular expressions search literals fast
        & value.rlike(rf"^[{_JSON_SPACE}]*\{{") & value.rlike(rf"\}}[{_JSON_SPACE}]*\z")
        & (count(value, "{") == 2 + F_) & (count(value, "}") == 2 + F_)
        & (int_id | string_id)
        & (p["classNum"].isNull() | p["classNum"].isin(0, 1))
        # (array_contains is null, not false, for an array with nulls: JSON nulls are compacted away)
        & X.isNotNull() & ~F.array_contains(F.array_compact(X), inf) & ~F.array_contains(F.array_compact(X), -inf)
    )
    # what bytes.strip() leaves empty (\z, not $: Java's $ also matches before a final "\u2028")
    blank = value.rlike(r"^[ \t\r\x0b\x0c]*\z")
    kind = F.when(blank, F.lit(BLANK)).when(F.coalesce(clean, F.lit(False)), F.lit(CLEAN)).otherwise(F.lit(SUSPECT))
    # kind in a projection of its own: the outputs below refer to it many times, and Spark
    # keeps a non-trivial column that is used more than once computed once
    parsed = parsed.select("value", "block", "mono", "p", "X", kind.cast("byte").alias("kind"))
    kind = F.col("kind")
    is_clean = kind == CLEAN
    return parsed.select(
        "block", "mono", "kind", F.octet_length(value).alias("n_bytes"),
        F.when(is_clean, p["id"]).alias("id"),
        F.when(is_clean, F.coalesce(p["classNum"], F.lit(UNLABELLED))).cast("byte").alias("label"),
        F.when(is_clean, p["fold"]).alias("fold"),
        F.when(is_clean, X).alias("X"),
        # null (JSON null) or NaN (bare NaN); Spark's NaN equals NaN, so array_remove drops it
        F.when(is_clean, F.size(X) - F.size(F.array_remove(F.array_compact(X), nan))).alias("n_missing"),
        F.when(kind == SUSPECT, value.cast("binary")).alias("raw"),
    )


@dataclass
class ResolvedKaggle:
    """The samples of one Kaggle file in store order: where each is staged, and its identity."""

    name: str  # the path as given: errors, skipped.tsv and the manifest name it
    source: str  # the file name: the samples' ``source`` metadata
    staged: StagedParts
    part: np.ndarray
    row: np.ndarray
    suspect: np.ndarray
    ids: np.ndarray
    labels: np.ndarray
    folds: np.ndarray
    fold_known: np.ndarray
    lines: np.ndarray
    info: dict = field(default_factory=dict)
    n_bytes: int = 0
    n_driver_parsed: int = 0  # suspect lines the driver's strict parser read (good or bad)

    @property
    def n_samples(self) -> int:
        return self.ids.size


def resolve_kaggle(staged: StagedParts, name: str, source: str, *, on_error: str, skips: SkipLog,
                   n_timesteps: int) -> ResolvedKaggle:
    """Order the staged lines, number them, parse the suspect ones with the strict parser,
    refuse (or skip) bad records and repeated ids as the local engine does."""
    import pyarrow.compute as pc

    table = staged.read_columns(["block", "mono", "kind", "n_bytes", "id", "label", "fold"])
    if table is None or table.num_rows == 0:
        raise empty_file_error(name)
    block = table.column("block").to_numpy()
    mono = table.column("mono").to_numpy()
    order = np.lexsort((mono, block))
    _check_contiguous(block[order], mono[order], name)
    kind = table.column("kind").to_numpy()[order]
    present = np.flatnonzero(kind != BLANK)
    if present.size == 0:
        raise empty_file_error(name)
    take = order[present]
    lines = present.astype(np.int64) + 1  # every line of the file is a row, so its rank is its number
    suspect = kind[present] == SUSPECT
    ids = np.asarray(table.column("id").to_numpy(zero_copy_only=False), dtype=object)[take]
    labels = pc.fill_null(table.column("label"), UNLABELLED).to_numpy()[take].astype(np.int8)
    fold_known = table.column("fold").is_valid().to_numpy(zero_copy_only=False)[take]
    folds = pc.fill_null(table.column("fold"), -1).to_numpy()[take].astype(np.int64)
    part = table.column("_part").to_numpy()[take]
    row = table.column("_row").to_numpy()[take]

    bad: list[tuple[int, DataFormatError]] = []
    where = np.flatnonzero(suspect)
    for batch_start, batch in zip(range(0, where.size, 4096),
                                  staged.iter_rows(part[where], row[where], ["raw"], batch_size=4096)):
        for k, raw in enumerate(batch.column("raw").to_pylist()):
            i = int(where[batch_start + k])
            try:
                record = parse_kaggle_line(raw, path=name, line_number=int(lines[i]), n_timesteps=n_timesteps)
            except DataFormatError as exc:
                bad.append((i, exc))
                if on_error == "raise":
                    break
                continue
            ids[i], labels[i] = record.id, record.label
            fold_known[i] = record.fold is not None
            folds[i] = -1 if record.fold is None else record.fold
        if bad and on_error == "raise":
            break

    ok = np.ones(ids.size, dtype=bool)
    ok[[i for i, _ in bad]] = False
    light = ParsedChunk(ids=ids[ok].astype(str), labels=labels[ok], folds=folds[ok], fold_known=fold_known[ok],
                        X=np.empty((int(ok.sum()), 0, 0), np.float32), lines=lines[ok])
    duplicates = DuplicateIdFilter(name)
    if on_error == "raise":
        if bad:  # a repeated id before the first bad line is the first error
            duplicates.apply(light.keep(light.lines < lines[bad[0][0]]), "raise")
            raise bad[0][1]
        duplicates.apply(light, "raise")
        kept = ok
    else:
        deduped = duplicates.apply(light, "skip")
        kept = ok.copy()
        kept[ok] = np.isin(light.lines, deduped.lines)
        records = [SkippedRecord.from_error(exc) for _, exc in bad] + list(deduped.skipped)
        skips.extend(sorted(records, key=lambda r: r.line or 0))
    n_records = int(present.size)
    n_blank = int(kind.size - present.size)
    n_read = int(kept.sum())
    resolved = ResolvedKaggle(
        name=name, source=source, staged=staged, part=part[kept], row=row[kept], suspect=suspect[kept],
        ids=ids[kept].astype(str), labels=labels[kept], folds=folds[kept], fold_known=fold_known[kept],
        lines=lines[kept],
        info={"path": name, "format": "kaggle", "n_records": n_records, "n_read": n_read,
              "n_skipped": n_records - n_read, "n_blank_lines": n_blank},
        n_bytes=int(table.column("n_bytes").to_numpy().sum()) + int(kind.size),
        n_driver_parsed=int(suspect.sum()),
    )
    return resolved


def _check_contiguous(block: np.ndarray, mono: np.ndarray, name: str) -> None:
    """Line numbers rest on Spark reading each split's lines in order into one task; if a
    future Spark broke that, say so rather than number lines wrongly."""
    same_block = block[1:] == block[:-1]
    if same_block.size and not (np.diff(mono)[same_block] == 1).all():
        raise RuntimeError(f"{name}: Spark did not read the lines of each file split in sequence; the Spark "
                           "engine cannot number lines. Please report this with your Spark version.")


def iter_kaggle_datasets(resolved: ResolvedKaggle, positions: np.ndarray, *, n_timesteps: int,
                         batch_size: int = 4096) -> Iterator[FlareDataset]:
    """The samples at ``positions`` (store order) as datasets, exactly as the local reader
    builds them (:meth:`ParsedChunk.to_dataset`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    F_ = len(KAGGLE_PARAMETERS)
    r = resolved
    batches = r.staged.iter_rows(r.part[positions], r.row[positions], ["X", "n_missing", "raw"], batch_size)
    for start, table in zip(range(0, positions.size, batch_size), batches):
        pos = positions[start:start + table.num_rows]
        n = pos.size
        X = np.empty((n, n_timesteps, F_), dtype=np.float32)
        suspect = r.suspect[pos]
        clean = np.flatnonzero(~suspect)
        if clean.size:
            column = table.column("X").combine_chunks().filter(pa.array(~suspect))
            values = pc.fill_null(column.flatten(), pa.scalar(np.nan, pa.float32())).to_numpy()  # JSON null
            X[clean] = values.reshape(clean.size, F_, n_timesteps).transpose(0, 2, 1)
            counted = table.column("n_missing").to_numpy(zero_copy_only=False)[clean]
            if not np.array_equal(np.isnan(X[clean]).sum(axis=(1, 2)), counted):
                raise RuntimeError(f"{r.name}: the staged values lost or gained missing values between Spark "
                                   "and the store; please report this.")
        for k in np.flatnonzero(suspect):
            raw = table.column("raw")[int(k)].as_py()
            X[k] = parse_kaggle_line(raw, path=r.name, line_number=int(r.lines[pos[k]]), n_timesteps=n_timesteps).X
        chunk = ParsedChunk(ids=r.ids[pos], labels=r.labels[pos], folds=r.folds[pos], fold_known=r.fold_known[pos],
                            X=X, lines=r.lines[pos])
        yield chunk.to_dataset(r.source)
