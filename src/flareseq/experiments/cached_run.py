"""A run's parts read from a store in bounded memory, through a float32 cache beside it.

:func:`prepare_run_data` reads the whole store into memory, then splits, fills and scales
copies of it: about five times the store's float32 features at the peak (5.4 GB for the
full Kaggle folds' 1.2 GB). When ``data.memory_budget_mb`` is smaller than that,
:func:`prepare_cached_run` does the same work a block of samples at a time:

1. one pass over the training folds fits the :class:`~flareseq.prep.preparation.Preparation`
   (:meth:`~flareseq.prep.preparation.Preparation.fit_blocks`: the same floats as fitting
   the whole array);
2. one pass over each part writes its prepared samples to a float32 cache beside the store
   (:mod:`flareseq.data.cache`), keyed by the store's content hash and the preparation's
   settings, so the next run with the same data reads it without either pass;
3. training and prediction gather batches from the cache by index
   (:meth:`~flareseq.training.estimator.FlareClassifier.fit_prepared`).

The parts hold the same samples in the same (store) order as :func:`prepare_run_data`'s, so
on the same seed the model is the same. What the cache path supports is the default
preparation of a fold split; anything else says so and how to run it in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flareseq.data.cache import CachedArray, CacheWriter, cache_key, cache_root, read_meta
from flareseq.errors import ConfigError
from flareseq.experiments.config import RunConfig
from flareseq.experiments.rundata import PART_NAMES, over_memory_budget, verified_hash
from flareseq.prep.preparation import Preparation
from flareseq.prep.streaming import FIT_BLOCK
from flareseq.training.estimator import FlareClassifier

READ_ROWS = 4096  # store rows read at a time (the Python engine's row group)


@dataclass
class CachedPart:
    """One part of a run: prepared inputs on disk, labels in memory."""

    X: CachedArray
    y: np.ndarray

    @property
    def n_samples(self) -> int:
        return len(self.y)


@dataclass
class CachedRunData:
    """The three parts of a run read through the cache, and the preparation they share."""

    train: CachedPart
    validation: CachedPart
    test: CachedPart
    preparation: Preparation
    content_hash: str
    folder: Path
    written: bool  # this call wrote the cache (False: an earlier run had)
    facts: dict[str, Any] = field(default_factory=dict)

    def parts(self) -> dict[str, CachedPart]:
        return dict(zip(PART_NAMES, (self.train, self.validation, self.test)))


def needs_cache(config: RunConfig) -> bool:
    """Whether ``config``'s data goes through the cache: a store with a memory budget that
    reading it whole would exceed."""
    return over_memory_budget(config.data) is not None


def check_cacheable(config: RunConfig) -> None:
    """Refuse what the cache path does not do, naming it and the way to run it in memory."""
    data, prep = config.data, config.prep
    split = dict(data.split)
    problems = []
    if data.cv:
        problems.append(f"data.cv = {data.cv} (a rotation)")
    if split.get("method") != "fold" or "validation_share" in split or not split.get("test_folds"):
        problems.append(f"data.split = {split} (it needs method 'fold' with test_folds, and validation_folds if any)")
    if (prep.train_fraction, prep.val_fraction, prep.test_fraction) != (1.0, 1.0, 1.0):
        problems.append("prep.*_fraction below 1 (sampling)")
    if prep.missing != "interpolate" or prep.layout != "sequence":
        problems.append(f"prep.missing = {prep.missing!r} / prep.layout = {prep.layout!r} (it needs 'interpolate' "
                        "and 'sequence')")
    if problems:
        raise ConfigError("the memory-budget path (data.memory_budget_mb) prepares fold splits of a store with the "
                          "default preparation; this run has " + "; ".join(problems)
                          + ". Set data.memory_budget_mb = 0 to prepare it in memory.")


def part_folds(config: RunConfig, present: Sequence[int]) -> dict[str, list[int]]:
    """The folds of each part, as :func:`flareseq.prep.splits.split_by_fold` takes them."""
    split = dict(config.data.split)
    test = [int(f) for f in split["test_folds"]]
    validation = [int(f) for f in split.get("validation_folds", [])]
    train = split.get("train_folds")
    train = [f for f in present if f not in test and f not in validation] if train is None else [int(f) for f in train]
    absent = sorted(set(train + validation + test) - set(present))
    if absent:
        raise ConfigError(f"fold(s) {absent} of data.split are not in {config.data.path}; its folds are "
                          f"{sorted(present)}.")
    return {"train": train, "validation": validation, "test": test}


def prepare_cached_run(config: RunConfig) -> CachedRunData:
    """The run's parts through the cache beside its store (written on first use)."""
    from flareseq.data.store import read_manifest

    check_cacheable(config)
    store = Path(config.data.path)
    manifest = read_manifest(store)
    content_hash = verified_hash(store, config.data.verify)
    present = sorted(int(f) for f in manifest["folds"] if f != "unknown")
    folds = part_folds(config, present)
    features = list(config.data.features) or list(manifest["feature_names"])
    T = int(manifest["n_timesteps"])
    key = cache_key(content_hash=content_hash, features=features, folds=folds, scaler=config.prep.scaler,
                    missing=config.prep.missing)
    folder = cache_root(store) / key
    written = False
    if read_meta(folder) is None:
        _write_cache(store, folder, folds, features, T, config)
        written = True
    meta = read_meta(folder)
    assert meta is not None
    parts = {name: CachedPart(CachedArray(folder / f"{name}.npy"), np.load(folder / f"{name}_y.npy"))
             for name in PART_NAMES}
    facts = {"cache": str(folder), "cache_written": written, **{f"n_{n}": p.n_samples for n, p in parts.items()}}
    return CachedRunData(**parts, preparation=Preparation.from_dict(meta["preparation"]), content_hash=content_hash,
                         folder=folder, written=written, facts=facts)


def fit_cached_run(config: RunConfig, data: CachedRunData, *, progress: bool | None = None) -> FlareClassifier:
    """The run's classifier trained on the cached parts (validation: early stopping,
    calibration and the threshold, as :meth:`FlareClassifier.fit`)."""
    from flareseq.experiments.single import build_classifier

    classifier = build_classifier(config, progress=progress)
    has_val = data.validation.n_samples > 0
    return classifier.fit_prepared(data.preparation, data.train.X, data.train.y,
                                   X_val=data.validation.X if has_val else None,
                                   y_val=data.validation.y if has_val else None)


# -- writing the cache ------------------------------------------------------------------------
def _write_cache(store: Path, folder: Path, folds: dict[str, list[int]], features: list[str], T: int,
                 config: RunConfig) -> None:
    counts = {name: _count_labelled(store, folds[name]) for name in PART_NAMES}
    preparation = Preparation(config.prep.scaler).fit_blocks(
        _blocks(store, folds["train"], features, FIT_BLOCK), n_samples=counts["train"],
        feature_names=features, n_timesteps=T)
    with CacheWriter(folder.parent, folder.name) as writer:
        for name in PART_NAMES:
            labels: list[np.ndarray] = []
            prepared = (preparation.transform(X, name=name) for X in
                        _blocks(store, folds[name], features, READ_ROWS, labels))
            writer.write_blocks(name, (counts[name], T, len(features)), prepared)
            writer.save(f"{name}_y", np.concatenate(labels) if labels else np.empty(0, np.int8))
        writer.commit({"store": str(store), "folds": folds, "features": features, "counts": counts,
                       "preparation": preparation.to_dict()})


def _blocks(store: Path, folds: list[int], features: list[str], size: int,
            labels: list[np.ndarray] | None = None) -> Iterator[np.ndarray]:
    """The labelled samples of ``folds`` in store order, as float32 blocks of exactly ``size``
    samples (the last shorter); their labels appended to ``labels``."""
    from flareseq.data.store import iter_store_batches

    if not folds:
        return
    pending: list[np.ndarray] = []
    n_pending = 0
    # every part's checksum is checked as it is read, whatever data.verify says (as read_store)
    for batch in iter_store_batches(store, batch_size=READ_ROWS, folds=folds):
        batch = batch.labelled()
        if not batch.n_samples:
            continue
        if list(batch.feature_names) != features:
            batch = batch.select_features(features)
        if labels is not None and batch.y is not None:  # labelled() above: y is set
            labels.append(batch.y)
        pending.append(batch.X)
        n_pending += batch.n_samples
        while n_pending >= size:
            joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
            yield joined[:size]
            pending, n_pending = [joined[size:]], n_pending - size
    if n_pending:
        yield np.concatenate(pending)


def _count_labelled(store: Path, folds: list[int]) -> int:
    """Labelled samples of ``folds``, from the label and fold columns only (a few bytes each)."""
    import pyarrow.parquet as pq

    from flareseq.data.store import read_manifest

    if not folds:
        return 0
    n = 0
    for part in read_manifest(store)["parts"]:
        table = pq.read_table(store / part["file"], columns=["label", "fold"])
        label = table.column("label").to_numpy(zero_copy_only=False)
        fold = table.column("fold").to_numpy(zero_copy_only=False)
        n += int(((label != -1) & np.isin(fold, folds)).sum())
    return n


__all__ = ["CachedPart", "CachedRunData", "prepare_cached_run", "fit_cached_run", "needs_cache", "check_cacheable"]
