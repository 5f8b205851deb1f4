"""The Spark engine: the same ingestion and sampling on Apache Spark, the same store.

``ingest_spark(inputs, out, master=...)`` (CLI: ``flareseq ingest --engine spark``) reads
Kaggle BigData Cup JSON lines and SWAN-SF folders with Spark DataFrames and writes exactly
the store the local engine (:func:`flareseq.data.ingest.ingest`) writes for the same inputs:
same Parquet schema, same manifest (but for ``created_by``), same content hash.

What runs where, and why:

* **In Spark (distributed, one job per input):** reading the bytes, parsing every record
  against an explicit schema (series and time steps selected by name), checking it,
  converting to float32 and counting missing values. Each task writes its parsed samples as
  Parquet into a staging folder (:mod:`.spark_kaggle`, :mod:`.spark_swansf`). Parsing is
  where the time goes (Spark's JSON reader runs at ~10 MB/s per core), so this is the part
  that must scale out.
* **On the driver (one process):** what depends on order or on the whole input: store
  order and line numbers, the rare *suspect* records that Spark cannot prove it read as the
  local engine does (re-read with the local engine's strict parser, so values and error
  messages are the local ones), repeated ids, the sampling draw, and writing the store with
  the local engine's :class:`~flareseq.data.store.StoreWriter` -- so the store format, the
  manifest and the content hash exist in one place. The driver streams the staged parts
  (Arrow, ~1 GB/s) in constant memory; it holds the ids and labels of all samples (tens of
  bytes each) for duplicate checks and sampling.

Sampling (``fraction``, ``stratify``, ``seed``) is the local engine's draw
(:func:`flareseq.data.sampling.sample_fraction` on the samples read, in store order), not Spark's
``sample``/``sampleBy``: those draw per partition, so their sample changes with the
cluster's partitioning and can never equal the local engine's; this one gives the same
samples for the same seed on any cluster and on one machine.

On a cluster, the inputs and the staging folder (``staging_dir``, by default beside
``out``) must be on a file system that the executors and the driver both see (a shared
mount, or ``hdfs://``/``s3a://`` URIs for the inputs and a shared mount for staging).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from flareseq.data.ingest_report import IngestReport
from flareseq.data.kaggle import KAGGLE_SUFFIXES
from flareseq.data.schema import KAGGLE_PARAMETERS, N_KAGGLE_TIMESTEPS, UNLABELLED
from flareseq.data.skips import SkipLog, check_on_error
from flareseq.data.spark.session import spark_session, sql_conf
from flareseq.data.spark.staging import StagedParts
from flareseq.errors import ConfigError, UnsupportedInputError

__all__ = ["SparkIngestReport", "ingest_spark", "sampled_positions"]


@dataclass
class SparkIngestReport(IngestReport):
    """An :class:`~flareseq.data.ingest.IngestReport` with where the time went: ``spark_seconds``
    (Spark start-up, parsing and staging; driver-side checks included) and ``write_seconds``
    (the driver writing the store). ``n_driver_parsed`` counts the records Spark handed to the
    driver's strict parser (0 for well-formed files)."""

    master: str = ""
    spark_seconds: float = 0.0
    write_seconds: float = 0.0
    n_driver_parsed: int = 0

    def summary(self) -> str:
        return super().summary() + (
            f"\nSpark engine on {self.master}: {self.spark_seconds:.1f} s in Spark (start-up, parse, staging), "
            f"{self.write_seconds:.1f} s writing the store; {self.n_driver_parsed} record(s) parsed on the driver")


def ingest_spark(
    inputs: str | PathLike[str] | Sequence[str | PathLike[str]],
    out: str | PathLike[str],
    *,
    master: str = "local[*]",
    fraction: float | None = None,
    stratify: bool = False,
    seed: int = 0,
    on_error: str = "raise",
    overwrite: bool = False,
    progress: bool | None = None,
    n_timesteps: int = N_KAGGLE_TIMESTEPS,
    spark=None,
    spark_conf: Mapping[str, str] | None = None,
    staging_dir: str | PathLike[str] | None = None,
) -> SparkIngestReport:
    """Read Kaggle JSON-lines files and SWAN-SF folders with Spark into a new store at ``out``.

    Parameters
    ----------
    inputs : Kaggle ``.json``/``.jsonl``/``.ndjson`` files (or their ``.gz``) and SWAN-SF
        folders, in store order; local paths or URIs Spark can read (``hdfs://...``).
    master : any Spark master URL (``local[*]``, ``local[4]``, ``spark://host:7077``,
        ``yarn``, ``k8s://...``); ignored when a session is already active or given.
    fraction, stratify, seed : keep a seeded random ``fraction`` of the samples read (over all
        inputs together), the same samples as :func:`flareseq.data.sampling.sample_fraction` with
        ``random_state=seed``; ``stratify`` keeps each label's share exactly.
    on_error : ``"raise"`` or ``"skip"``, as for the local engine (bad records are listed in
        ``out/skipped.tsv`` and counted in the manifest).
    spark : an existing SparkSession to use (left running).
    spark_conf : extra Spark settings for a new session (``{"spark.executor.memory": "8g"}``).
    staging_dir : where Spark's tasks write the parsed samples before the driver writes the
        store (removed afterwards); by default a hidden folder beside ``out``.

    Returns
    -------
    SparkIngestReport
        The manifest, skipped records and timings; ``report.summary()`` prints them.
    """
    from flareseq.data.kaggle import _progress_disabled
    from flareseq.data.store import StoreWriter, read_manifest
    from flareseq.data.swansf import NUMERIC_COLUMNS, STRING_COLUMNS

    check_on_error(on_error)
    paths = [inputs] if isinstance(inputs, (str, PathLike)) else list(inputs)
    if not paths:
        raise ConfigError("nothing to ingest: give at least one input path.")
    if fraction is not None and not 0.0 < fraction <= 1.0:
        raise ConfigError(f"a sampling fraction must be in (0, 1], got {fraction}.")
    formats = [_input_format(p) for p in paths]  # fail on an unsupported input before Spark starts
    aux_types: dict = {}
    if "swansf" in formats:  # as the local engine: side series fixed up front
        aux_types.update({c: "float64" for c in NUMERIC_COLUMNS})
        aux_types.update({c: "string" for c in STRING_COLUMNS})
    out = Path(out)
    # raises now if `out` exists, not after the Spark work
    writer = StoreWriter(out, feature_names=KAGGLE_PARAMETERS, n_timesteps=n_timesteps, overwrite=overwrite,
                         engine="spark", aux_types=aux_types,
                         protect=[p for p in paths if "://" not in str(p)])
    staging = (Path(staging_dir) if staging_dir is not None else out.parent) / \
        f".{out.name}.spark-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    report = SparkIngestReport(out, {}, SkipLog(), 0.0, 0, 1)
    show = not _progress_disabled(progress)
    try:
        with spark_session(master, spark=spark, conf=spark_conf, progress=show) as session:
            report.master = session.sparkContext.master
            report.workers = session.sparkContext.defaultParallelism
            resolved = [_stage_input(session, path, fmt, staging / f"input-{i:03d}", on_error=on_error,
                                     report=report, n_timesteps=n_timesteps)
                        for i, (path, fmt) in enumerate(zip(paths, formats))]
        report.spark_seconds = time.perf_counter() - started
        written = time.perf_counter()
        _write_store(writer, resolved, report.skips, fraction=fraction, stratify=stratify, seed=seed,
                     n_timesteps=n_timesteps, progress=show)
        report.write_seconds = time.perf_counter() - written
        report.manifest = read_manifest(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.seconds = time.perf_counter() - started
    return report


def _stage_input(session, path, fmt: str, stage: Path, *, on_error: str, report: SparkIngestReport,
                 n_timesteps: int):
    """Spark parses one input into ``stage``; the driver resolves it (order, suspects, skips)."""
    from flareseq.data.spark.kaggle import kaggle_frame, resolve_kaggle
    from flareseq.data.spark.swansf import (
        check_regular_files,
        resolve_swansf,
        swansf_frame,
    )

    uri = _uri(path)
    if fmt == "swansf":
        check_regular_files(path)  # before Spark opens anything: it follows links
    frame = kaggle_frame(session, uri, n_timesteps) if fmt == "kaggle" else swansf_frame(session, uri, n_timesteps)
    # SWAN-SF files are ~40 kB: pack tasks by their size, not by Spark's 4 MB "cost" of opening
    # a file (that made a task of every 8 files)
    settings = {} if fmt == "kaggle" else {"spark.sql.files.openCostInBytes": str(64 << 10)}
    with sql_conf(session, settings):
        # small row groups: each task buffers one while it writes (Spark's default: 128 MB)
        frame.write.mode("overwrite").option("parquet.block.size", str(16 << 20)).parquet(_uri(stage))
    name = str(path)
    if fmt == "kaggle":
        item = resolve_kaggle(StagedParts(stage), name, Path(name).name, on_error=on_error, skips=report.skips,
                              n_timesteps=n_timesteps)
    else:
        item = resolve_swansf(StagedParts(stage), name, uri, on_error=on_error, skips=report.skips,
                              n_timesteps=n_timesteps)
    report.n_driver_parsed += item.n_driver_parsed
    report.input_bytes += _input_bytes(path, fmt, item)
    return item


def _write_store(writer, resolved: list, skips: SkipLog, *, fraction: float | None, stratify: bool, seed: int,
                 n_timesteps: int, progress: bool) -> None:
    """The driver writes the (sampled) samples in store order with the local engine's writer."""
    from tqdm.auto import tqdm

    from flareseq.data.spark.kaggle import ResolvedKaggle, iter_kaggle_datasets
    from flareseq.data.spark.swansf import iter_swansf_datasets

    labels = np.concatenate([r.labels for r in resolved]) if resolved else np.empty(0, np.int8)
    chosen = sampled_positions(labels, fraction, stratify=stratify, seed=seed)
    with writer, tqdm(total=labels.size if chosen is None else chosen.size, unit=" samples",
                      desc=f"writing {writer.path.name}", disable=not progress, leave=False) as bar:
        offset = 0
        for item in resolved:
            n = item.n_samples
            positions = np.arange(n) if chosen is None else chosen[(chosen >= offset) & (chosen < offset + n)] - offset
            offset += n
            writer.new_part()
            batches = iter_kaggle_datasets if isinstance(item, ResolvedKaggle) else iter_swansf_datasets
            for dataset in batches(item, positions, n_timesteps=n_timesteps):
                writer.write(dataset)
                bar.update(dataset.n_samples)
            info = dict(item.info)
            if fraction is not None:
                info.update(n_sampled=int(positions.size),
                            sampling={"fraction": fraction, "stratify": bool(stratify), "seed": int(seed)})
            writer.add_source(info)
        writer.add_skipped(skips)


class _LabelView:
    """Just enough of a dataset for :func:`flareseq.data.sampling.sample_fraction` (its ``n_samples``,
    ``y`` and ``subset``), so that the Spark engine draws with the local engine's own code."""

    def __init__(self, labels: np.ndarray) -> None:
        self.n_samples = labels.size
        # a dataset whose samples are all unlabelled has y None (read_kaggle, read_store)
        self.y = None if (labels == UNLABELLED).all() else labels

    def subset(self, index) -> np.ndarray:
        return np.asarray(index, dtype=np.int64)


def sampled_positions(labels: np.ndarray, fraction: float | None, *, stratify: bool = False,
                      seed: int = 0) -> np.ndarray | None:
    """Store positions of the samples kept by ``sample_fraction(dataset, fraction,
    stratify=stratify, random_state=seed)`` of a dataset with these labels, in order; ``None``
    when every sample is kept."""
    from flareseq.data.sampling import sample_fraction

    if fraction is None:
        return None
    view = _LabelView(np.asarray(labels, dtype=np.int8))
    result = sample_fraction(view, fraction, stratify=stratify, random_state=seed)
    return None if result is view else result


def _input_format(path) -> str:
    """``"kaggle"`` or ``"swansf"``, or an error saying what the Spark engine cannot read."""
    from flareseq.data import detect_format

    text = str(path)
    if "://" in text:  # a URI for Spark (hdfs://, s3a://): judged by its name
        name = text.rstrip("/").rsplit("/", 1)[-1].lower()
        return "kaggle" if name.endswith(KAGGLE_SUFFIXES + tuple(s + ".gz" for s in KAGGLE_SUFFIXES)) else "swansf"
    fmt = detect_format(path)
    local = Path(path)
    hint = "Extract it first (unzip / tar -xf), or use the local engine (leave out --engine spark)."
    if fmt == "store":
        raise UnsupportedInputError(f"{path}: is a flareseq store; the Spark engine reads Kaggle JSON-lines files "
                                    "and SWAN-SF folders. Copy or merge stores with the local engine.")
    if fmt == "kaggle" and local.name.lower().endswith(".zip"):
        raise UnsupportedInputError(f"{path}: the Spark engine cannot read inside a zip archive. {hint}")
    if fmt == "swansf" and not local.is_dir():
        raise UnsupportedInputError(f"{path}: the Spark engine reads SWAN-SF folders, not archives or single "
                                    f"files. {hint}")
    return fmt


def _uri(path) -> str:
    """A local path as a ``file://`` URI without percent-encoding (Hadoop parses it; a bare path
    would mean the cluster's default file system); URIs pass through."""
    text = str(path)
    return text if "://" in text else "file://" + os.path.abspath(text)


def _input_bytes(path, fmt: str, item) -> int:
    """Bytes read, as the local engine counts them: the file (decompressed for .gz) or the folder."""
    local = Path(str(path))
    if "://" in str(path):
        return getattr(item, "n_bytes", 0)
    if fmt == "kaggle":
        return item.n_bytes if local.name.lower().endswith(".gz") else local.stat().st_size
    return sum(f.stat().st_size for f in local.rglob("*") if f.is_file())
