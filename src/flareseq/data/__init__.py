"""Reading flare MVTS data: one module per source, a columnar store, and a dispatcher.

:func:`load_dataset` reads any supported input into a :class:`~flareseq.FlareDataset`;
:func:`flareseq.data.ingest.ingest` turns inputs into a store; the per-source readers
(:mod:`.kaggle`, :mod:`.swansf`, :mod:`.store`) also stream batches.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from flareseq.errors import UnsupportedInputError

if TYPE_CHECKING:
    from flareseq.data.dataset import FlareDataset

# Nothing heavy at import time (no pandas, no pyarrow): ingest workers import this package.

SUPPORTED = (
    "a store directory (from `flareseq ingest`), a Kaggle BigData Cup JSON-lines file "
    "(.json/.jsonl/.ndjson, optionally .gz, or a .zip of them), or a SWAN-SF directory, "
    "sample file or archive (.tar/.tar.gz/.tgz/.zip)"
)

# (The ingest function is `flareseq.data.ingest.ingest`: the name `ingest` here is its module.)
__all__ = ["SUPPORTED", "detect_format", "load_dataset", "read_store", "summarize_paths", "synthetic_dataset",
           "write_synthetic_kaggle"]

# Lazily imported names (module, attribute), so that `import flareseq.data` stays cheap.
_LAZY = {
    "read_store": ("store", "read_store"),
    "synthetic_dataset": ("synthetic", "synthetic_dataset"),
    "write_synthetic_kaggle": ("synthetic", "write_synthetic_kaggle"),
}


def detect_format(path: str | PathLike[str]) -> str:
    """``"store"``, ``"kaggle"`` or ``"swansf"`` for ``path``; :class:`UnsupportedInputError`
    (naming what was found and what is supported) for anything else."""
    from flareseq.data.kaggle import is_kaggle_path
    from flareseq.data.store import is_store
    from flareseq.data.swansf import NAME_PATTERN

    path = Path(path)
    if not path.exists():
        raise UnsupportedInputError(f"{path}: expected {SUPPORTED}; found nothing at this path.")
    if path.is_dir():
        if is_store(path):
            return "store"
        from flareseq.data.swansf import list_sample_files

        if list_sample_files(path):
            return "swansf"
        raise UnsupportedInputError(f"{path}: expected {SUPPORTED}; found a directory with neither "
                                    "manifest.json nor .csv sample files.")
    name = path.name.lower()
    if is_kaggle_path(path):
        return "kaggle"
    if name.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = [n.lower() for n in archive.namelist()]
        except zipfile.BadZipFile:
            raise UnsupportedInputError(f"{path}: expected a zip archive, found a damaged or non-zip file.") from None
        if any(n.endswith((".json", ".jsonl", ".ndjson")) for n in names):
            return "kaggle"
        if any(n.endswith(".csv") for n in names):
            return "swansf"
        raise UnsupportedInputError(f"{path}: expected {SUPPORTED}; found a zip without .json/.jsonl or .csv members.")
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        return "swansf"
    if name.endswith(".csv") and NAME_PATTERN.match(path.name):
        return "swansf"
    with path.open("rb") as handle:
        head = handle.read(64).lstrip()
    if head.startswith(b"{"):
        return "kaggle"  # JSON lines under another suffix
    found = "an empty file" if not head else f"a file starting {head[:24]!r}"
    hint = (" For a table of keyword time series (one row per region and time), use "
            "flareseq.data.tables.windows.read_table_windows(paths, TableSpec(...)) (config: data.format = \"table\")."
            if name.endswith((".csv", ".tsv")) else "")
    raise UnsupportedInputError(f"{path}: expected {SUPPORTED}; found {found}.{hint}")


def load_dataset(path: str | PathLike[str] | Sequence[str | PathLike[str]], *,
                 folds: Sequence[int] | None = None, on_error: str = "raise", progress: bool | None = None,
                 skips=None, aux: bool | None = None, table=None) -> FlareDataset:
    """Read any supported input (or several, concatenated in order) into memory: the one
    factory of datasets from files.

    Parameters
    ----------
    path : a store, a Kaggle JSON-lines file or archive, or a SWAN-SF directory/archive/file;
        with ``table``, keyword tables (paths or glob patterns).
    table : a :class:`~flareseq.data.tables.spec.TableSpec` (or its fields as a dict): read
        ``path`` as per-region keyword tables and cut labelled windows from them.
    folds : keep only samples of these folds (SWAN-SF: partitions); read selectively from a store.
    on_error : ``"raise"`` or ``"skip"`` for bad records in files (see :mod:`.skips`).
    skips : a :class:`~flareseq.data.skips.SkipLog` that receives skipped records.
    aux : keep the side series (SWAN-SF's non-feature columns). Default: yes for files, no
        for a store (see :func:`~flareseq.data.store.read_store`; pass ``True`` or names).
    """
    from flareseq.data.dataset import FlareDataset, concat_datasets

    if table is not None:
        import glob

        from flareseq.data.tables.spec import TableSpec
        from flareseq.data.tables.windows import build_table_windows

        spec = table if isinstance(table, TableSpec) else TableSpec.from_dict(dict(table))
        patterns = [str(path)] if isinstance(path, (str, PathLike)) else [str(p) for p in path]
        paths = sorted({p for pattern in patterns for part in pattern.split(",")
                        for p in (glob.glob(part.strip()) or [part.strip()])})
        return build_table_windows(paths, spec, progress=progress is not False).dataset
    if not isinstance(path, (str, PathLike)):
        parts = [load_dataset(p, folds=folds, on_error=on_error, progress=progress, skips=skips, aux=aux)
                 for p in path]
        if not parts:
            raise UnsupportedInputError(f"no input given; expected {SUPPORTED}.")
        return concat_datasets(parts)
    fmt = detect_format(path)
    if fmt == "store":
        from flareseq.data.store import read_store

        return read_store(path, folds=folds, aux=bool(aux) if isinstance(aux, bool) or aux is None else aux)
    if fmt == "kaggle":
        from flareseq.data.kaggle import read_kaggle

        dataset = read_kaggle(path, on_error=on_error, progress=progress, skips=skips)
    elif Path(path).is_file() and Path(path).suffix.lower() == ".csv":
        from flareseq.data.swansf import _to_dataset, read_swansf_file

        sample = read_swansf_file(path)
        dataset = _to_dataset([sample], Path(path).parent.name, sample.X.shape[0])
    else:
        from flareseq.data.swansf import read_swansf

        dataset = read_swansf(path, on_error=on_error, progress=progress, skips=skips)
    if aux is False and dataset.aux:
        dataset = FlareDataset(X=dataset.X, y=dataset.y, ids=dataset.ids, feature_names=dataset.feature_names,
                               meta=dataset.meta)
    if folds is not None:
        dataset = dataset.subset(dataset.meta["fold"].isin([int(f) for f in folds]).fillna(False).to_numpy(bool))
    return dataset


def summarize_path(path: str | PathLike[str], *, on_error: str = "raise", progress: bool | None = None,
                   limits=None) -> dict:
    """:func:`flareseq.data.summary.summarize` figures of one input, plus ``n_negative``; a store is
    summarised from its manifest, without reading its arrays, once its parts' row counts, labels
    and folds have been checked against it (``checked`` says so), a file batch by batch
    (``limits``: :class:`~flareseq.data.limits.ReadLimits` for archives)."""
    from flareseq.data.summary import summarize

    if detect_format(path) == "store":
        from flareseq.data.store import read_manifest
        from flareseq.data.store_verify import cross_check_counts

        m = read_manifest(path)
        note = cross_check_counts(path, m)  # an edited manifest must not be printed as fact
        c = m["counts"]
        from_manifest = _with_pcc({"n_samples": c["n_samples"], "n_positive": c["n_positive"],
                                   "n_negative": c["n_negative"], "n_unlabelled": c["n_unlabelled"],
                                   "n_timesteps": m["n_timesteps"], "n_features": len(m["feature_names"]),
                                   "n_missing_values": c["n_missing_values"]})
        from_manifest["checked"] = note
        by_class = [s["window_report"]["by_class"] for s in m.get("sources", [])
                    if (s.get("window_report") or {}).get("by_class")]
        if by_class:  # a store ingested from tables: what the window filter did to each class
            from_manifest["windows_by_class"] = by_class[0] if len(by_class) == 1 else by_class
        return from_manifest
    fmt = detect_format(path)
    if fmt == "kaggle":  # streamed: counts only, constant memory for a 13 GB file
        from flareseq.data.kaggle import iter_kaggle_batches

        batches = iter_kaggle_batches(path, on_error=on_error, progress=progress, limits=limits)
    elif Path(path).is_dir() or not Path(path).suffix.lower() == ".csv":
        from flareseq.data.swansf import iter_swansf_batches

        batches = iter_swansf_batches(path, on_error=on_error, progress=progress, limits=limits)
    else:
        batches = iter([load_dataset(path, aux=False)])
    figures: dict | None = None
    for batch in batches:
        part = summarize(batch)
        part["n_negative"] = 0 if batch.y is None else int((batch.y == 0).sum())
        if figures is None:
            figures = part
        else:
            for key in ("n_samples", "n_positive", "n_negative", "n_unlabelled", "n_missing_values"):
                figures[key] += part[key]
    if figures is None:  # every record skipped
        from flareseq.data.schema import KAGGLE_PARAMETERS, N_KAGGLE_TIMESTEPS

        figures = {"n_samples": 0, "n_positive": 0, "n_negative": 0, "n_unlabelled": 0,
                   "n_timesteps": N_KAGGLE_TIMESTEPS, "n_features": len(KAGGLE_PARAMETERS), "n_missing_values": 0}
    return _with_pcc(figures)


def summarize_paths(paths: Sequence[str | PathLike[str]], *, on_error: str = "raise",
                    progress: bool | None = None, limits=None) -> tuple[dict, dict]:
    """The summed figures of several inputs and each input's own: ``(total, {path: figures})``.
    Inputs of different lengths or feature counts cannot be added up."""
    from flareseq.errors import FlareseqError

    per_path = {str(p): summarize_path(p, on_error=on_error, progress=progress, limits=limits) for p in paths}
    shapes = {(s["n_timesteps"], s["n_features"]) for s in per_path.values()}
    if len(shapes) > 1:
        raise FlareseqError(f"cannot add up inputs of different shapes (timesteps, features): {sorted(shapes)}; "
                            "summarise them separately.")
    total = {k: sum(s[k] for s in per_path.values())
             for k in ("n_samples", "n_positive", "n_negative", "n_unlabelled", "n_missing_values")}
    (total["n_timesteps"], total["n_features"]), = shapes
    return _with_pcc(total), per_path


def _with_pcc(figures: dict) -> dict:
    from flareseq.data.summary import pcc_figures

    return {**figures, **pcc_figures(figures["n_negative"], figures["n_positive"])}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    raise AttributeError(f"module 'flareseq.data' has no attribute {name!r}")
