"""From a run configuration to the train, validation and test sets a model sees.

The order is what keeps verification honest: load, split (by fold, region or time), then
sample, drop what the configuration says to drop, and lay out samples. Everything fitted to
data (the fill of missing values, the scaling) is fitted by the classifier on the training
part only (:class:`flareseq.prep.preparation.Preparation`) and saved with it.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from flareseq.data.dataset import FlareDataset
from flareseq.data.sampling import sample_fraction
from flareseq.errors import ConfigError, FlareseqWarning
from flareseq.evaluation import metrics
from flareseq.experiments.config import DataConfig, PrepConfig, RunConfig
from flareseq.prep.layout import LAYOUTS, to_study_rows, to_study_windows
from flareseq.prep.splits import Split, group_kfold, split_by_fold, split_from_config

PART_NAMES = ("train", "validation", "test")
# What a run does with missing values in its parts (the model fills those of new data itself).
MISSING_POLICIES = ("interpolate", "drop", "drop-rows")


@dataclass(frozen=True)
class Source:
    """The loaded samples and what identifies them (the store's content hash)."""

    dataset: FlareDataset
    content_hash: str
    description: str


@dataclass
class RunData:
    """The three parts of one run, prepared, and the record of how they were made."""

    train: FlareDataset
    validation: FlareDataset
    test: FlareDataset
    split: Split
    source: Source
    facts: dict[str, Any] = field(default_factory=dict)
    # The samples the run forecasts, before any study layout: a few of them (raw training
    # samples, NaN kept) are the model's input example, and their shape is what it takes.
    samples: FlareDataset | None = None

    @property
    def sample_example(self) -> FlareDataset:
        return self.samples if self.samples is not None else self.train.subset(slice(0, 2))

    def parts(self) -> dict[str, FlareDataset]:
        return dict(zip(PART_NAMES, (self.train, self.validation, self.test)))

    def class_counts(self) -> dict[str, tuple[int, int]]:
        return {name: (int((d.y == 0).sum()), int((d.y == 1).sum())) for name, d in self.parts().items()}


# the in-memory path's peak over the store's float32 features: 5.4 GB for 1.18 GB in
# benchmarks/full_data.py (the store, its split copies, the filled and the scaled training set)
IN_MEMORY_FACTOR = 5.0


def in_memory_estimate_mb(manifest: dict) -> float:
    """What reading a store whole and preparing a run from it takes, in MB (``IN_MEMORY_FACTOR``
    times its float32 features)."""
    n = int(manifest["counts"]["n_samples"])
    return IN_MEMORY_FACTOR * n * int(manifest["n_timesteps"]) * len(manifest["feature_names"]) * 4 / 1e6


def over_memory_budget(config: DataConfig) -> float | None:
    """The MB reading ``config.path`` whole would take when that exceeds
    ``config.memory_budget_mb`` (a store only: other inputs are read whole anyway), else None."""
    budget = config.memory_budget_mb
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ConfigError(f"data.memory_budget_mb must be an integer >= 0 (0: no limit), got {budget!r}.")
    if not budget or config.path == "synthetic" or config.format != "auto":
        return None
    from flareseq.data.store import is_store, read_manifest

    if not is_store(config.path):
        return None
    need = in_memory_estimate_mb(read_manifest(config.path))
    return need if need > budget else None


def check_memory_budget(config: DataConfig) -> None:
    """Refuse to read a store whole when that would exceed ``data.memory_budget_mb``."""
    need = over_memory_budget(config)
    if need is not None:
        raise ConfigError(
            f"{config.path}: reading this store whole takes about {need:,.0f} MB, over data.memory_budget_mb = "
            f"{config.memory_budget_mb}. Runs of `flareseq run` and `flareseq experiments` read their store whole; "
            "train within the budget through the cache with flareseq.experiments.cached_run (prepare_cached_run, "
            "fit_cached_run; docs/scale.md), or raise data.memory_budget_mb (0: no limit).")


# -- loading ------------------------------------------------------------------------------
def load_source(config: DataConfig, *, progress: bool | None = None) -> Source:
    """The samples named by ``config.path`` (``"synthetic"``, a table, or any readable input).

    A store that would not fit ``config.memory_budget_mb`` read whole is refused
    (:func:`check_memory_budget`)."""
    from flareseq.data.hashing import content_hash

    check_memory_budget(config)

    if config.path == "synthetic":
        from flareseq.data.synthetic import synthetic_dataset

        dataset = synthetic_dataset(config.synthetic_samples, seed=config.synthetic_seed)
        description = f"synthetic ({config.synthetic_samples} samples, seed {config.synthetic_seed})"
        digest = None
    elif config.format in ("auto", "table"):
        from flareseq.data import detect_format, load_dataset

        table = dict(config.table) if config.format == "table" else None
        dataset = load_dataset(config.path, progress=progress, table=table)
        description = f"tables {config.path}" if table is not None else config.path
        digest = None
        if table is None and detect_format(config.path) == "store":
            digest = verified_hash(config.path, config.verify)
    else:
        raise ConfigError(f"data.format must be 'auto' or 'table', got {config.format!r}.")
    if config.features:
        dataset = dataset.select_features(list(config.features))
    if digest is None or config.features:
        digest = content_hash(dataset)
    return Source(dataset=dataset, content_hash=digest, description=description)


def verified_hash(store, how: str) -> str:
    """The content hash of a store as verified: ``"parts"`` (the default: the reader checked
    every part's SHA-256 against the manifest, whose own digest it checked, so the manifest's
    hash stands for the rows read) or ``"full"`` (every row decoded and the hash recomputed:
    also catches a store rewritten with consistent checksums)."""
    if how == "full":
        from flareseq.data.store import verify_store

        report = verify_store(store, full=True)
        if not report.ok:
            raise ConfigError(f"{store} failed its full check: {'; '.join(report.problems)}")
        return report.content_hash
    if how != "parts":
        raise ConfigError(f"data.verify must be 'parts' or 'full', got {how!r}.")
    from flareseq.data.store import read_manifest

    return read_manifest(store)["content_hash"]


# -- preparing ----------------------------------------------------------------------------
def split_source(source: Source, config: DataConfig) -> Split:
    """The split of ``config.split`` over the labelled samples of ``source``."""
    return split_from_config(source.dataset, dict(config.split))


def labelled_source(source: Source) -> Source:
    """``source`` without its unlabelled samples (the ones no split can score)."""
    labelled = source.dataset.labelled()
    if labelled.n_samples == 0:
        raise ConfigError(f"{source.description}: no labelled samples to train and test on.")
    if labelled.n_samples < source.dataset.n_samples:
        source = Source(labelled, source.content_hash, source.description)
    return source


def rotation_splits(dataset: FlareDataset, config: DataConfig) -> list[Split]:
    """The K splits of a rotation (``config.cv = K``): each fold the test set in turn.

    By fold files or partitions (``meta["fold"]``; more folds than K are taken in K
    contiguous groups) or by K region groups (:func:`flareseq.prep.splits.group_kfold`), as
    ``config.cv_by`` says (``"auto"``: folds when there are K or more). The validation part is
    carved from the training regions (``split.validation_share``, default 0.2), stratified so
    that it holds flaring regions; data without regions validates on the next fold instead.
    Every sample with a fold (or, by region, every sample) is tested exactly once.
    """
    k = config.cv
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ConfigError(f"data.cv must be an integer K >= 2 (K-fold rotation), or 0 for none; got {k!r}.")
    if config.cv_by not in ("auto", "fold", "region"):
        raise ConfigError(f"data.cv_by must be 'auto', 'fold' or 'region', got {config.cv_by!r}.")
    options = dict(config.split)
    share = options.get("validation_share", 0.2)
    random_state = options.get("random_state", 0)
    stratify = options.get("stratify", True)
    meta = dataset.meta
    folds = sorted(int(f) for f in meta["fold"].dropna().unique()) if "fold" in meta.columns else []
    has_regions = "region" in meta.columns and bool(meta["region"].notna().all())
    by = config.cv_by if config.cv_by != "auto" else ("fold" if len(folds) >= k else "region")
    if by == "region":
        if not has_regions:
            raise ConfigError(
                f"data.cv = {k} rotates over region groups (the data has {len(folds)} fold(s) {folds}, fewer than "
                f"{k}), but not every sample has meta['region']. Set data.cv to at most {len(folds)} to rotate "
                "over the folds, or give the data region ids."
            )
        splits = group_kfold(dataset, k, validation_share=share, random_state=random_state, stratify=stratify)
    else:
        if len(folds) < k:
            raise ConfigError(f"data.cv = {k} rotates over fold files, but the data has {len(folds)} fold(s) {folds}; "
                              f"set data.cv to at most {len(folds)}, or data.cv_by = 'region'.")
        if not has_regions and k < 3:
            raise ConfigError("rotating over folds without region ids validates on the next fold, which needs "
                              f"data.cv >= 3 (a test, a validation and a training fold); got {k}.")
        groups = [[int(f) for f in group] for group in np.array_split(np.asarray(folds), k)]
        splits = []
        for i, test_folds in enumerate(groups):
            if has_regions:
                train = [f for g in groups for f in g if g is not test_folds]
                splits.append(split_by_fold(dataset, test_folds, train_folds=train, validation_share=share,
                                            random_state=random_state, stratify=stratify))
            else:
                validation = groups[(i + 1) % k]
                train = [f for g in groups for f in g if g is not test_folds and g is not validation]
                splits.append(split_by_fold(dataset, test_folds, validation_folds=validation, train_folds=train))
    return [replace(split, description=f"rotation {i + 1} of {k} ({by}): {split.description}")
            for i, split in enumerate(splits)]


def prepare_run_data(config: RunConfig, source: Source | None = None, *, split: Split | None = None,
                     progress: bool | None = None) -> RunData:
    """Load (unless ``source`` is given), split and prepare the data of one run.

    ``split`` (positions into the labelled samples, e.g. one of :func:`rotation_splits`)
    replaces the split of ``config.data.split``.
    """
    source = labelled_source(source or load_source(config.data, progress=progress))
    if split is None:
        if config.data.cv:
            raise ConfigError(f"this configuration rotates (data.cv = {config.data.cv}): prepare one fold at a time "
                              "with split=rotation_splits(...)[k], or run it with run_single / run_experiment.")
        split = split_source(source, config.data)
    parts = dict(zip(PART_NAMES, split.apply(source.dataset)))
    if parts["train"].n_samples == 0 or parts["test"].n_samples == 0:
        raise ConfigError(
            f"the split {dict(config.data.split)} leaves {parts['train'].n_samples} training and "
            f"{parts['test'].n_samples} test samples; both must be non-empty."
        )
    return prepare_parts(parts, split, source, config.prep, allow_leaky=config.allow_leaky)


def prepare_parts(parts: dict[str, FlareDataset], split: Split, source: Source, prep: PrepConfig, *,
                  allow_leaky: bool = False) -> RunData:
    """Sample, treat missing values and lay out the parts (state fitted on training data only).

    Scaling and the fill of new data are not done here: the classifier fits its
    :class:`~flareseq.prep.preparation.Preparation` on the training part and saves it.
    """
    check_prep(prep, allow_leaky=allow_leaky)
    facts: dict[str, Any] = {"split": split.summary(), "split_description": split.description}
    fractions = {"train": prep.train_fraction, "validation": prep.val_fraction, "test": prep.test_fraction}
    for k, name in enumerate(PART_NAMES):
        if parts[name].n_samples and fractions[name] < 1.0:
            parts[name] = sample_fraction(parts[name], fractions[name], stratify=prep.stratify,
                                          random_state=prep.sample_seed + k)
    for name in PART_NAMES:
        part = parts[name]
        facts[f"missing_{name}"] = {"policy": prep.missing, "n_samples_in": part.n_samples,
                                    "n_values_missing": part.n_missing_values}
        if prep.missing == "drop" and part.n_samples:
            # the study's policy on whole samples; "interpolate" is the model's own fill
            keep = ~np.isnan(part.X).any(axis=(1, 2))
            parts[name] = part.subset(keep)
            facts[f"missing_{name}"]["n_samples_dropped"] = int((~keep).sum())
    samples = parts["train"].subset(slice(0, 2))
    for k, name in enumerate(PART_NAMES):
        if parts[name].n_samples and prep.layout != "sequence":
            before = parts[name]
            parts[name] = _study_layout(before, prep, random_state=prep.sample_seed + k)
            if prep.missing == "drop-rows":
                facts[f"missing_{name}"] = {"policy": "drop-rows", "n_rows_in": before.n_samples * before.n_timesteps,
                                            "n_rows_dropped": int(np.isnan(before.X).any(axis=2).sum())}
    if prep.layout != "sequence":
        warnings.warn(
            f"layout {prep.layout!r} reproduces the study's flawed sample layout (SPEC section 2); "
            "its scores are not comparable with one-sequence-per-sample runs.",
            FlareseqWarning, stacklevel=2,
        )
    for name, part in parts.items():
        facts[f"n_{name}"] = part.n_samples
        facts[f"n_{name}_positive"] = part.n_positive
    facts["pcc"] = metrics.proportion_chance_criterion(parts["test"].y)
    facts["pcc_125"] = 1.25 * facts["pcc"]
    facts["base_rate"] = float(parts["train"].y.mean()) if parts["train"].n_samples else float("nan")
    return RunData(train=parts["train"], validation=parts["validation"], test=parts["test"], split=split,
                   source=source, facts=facts, samples=samples)


def check_prep(prep: PrepConfig, *, allow_leaky: bool = False) -> None:
    """Refuse combinations that cannot run, and the label leak unless it is asked for."""
    if prep.missing not in MISSING_POLICIES:
        raise ConfigError(f"prep.missing must be one of {list(MISSING_POLICIES)}, got {prep.missing!r}.")
    if prep.missing == "drop-rows" and prep.layout == "sequence":
        raise ConfigError("prep.missing = 'drop-rows' drops time-step rows, which only the study's row and window "
                          "layouts allow; with one sequence per sample use 'interpolate' or 'drop' (samples).")
    if prep.label_as_input:
        if prep.layout != "study-windows":
            raise ConfigError("prep.label_as_input reproduces the study's generator-fed runs and needs "
                              "prep.layout = 'study-windows'.")
        if not allow_leaky:
            raise ConfigError(
                "prep.label_as_input feeds every row's label to the model as an input, as the study's generator-fed "
                "models had it (26 inputs, notebook cells [42] and [75]): the scores then measure the leak, not "
                "forecasting. It is refused unless the run says allow_leaky = true (CLI: --allow-leaky); the run is "
                "then tagged leaky in MLflow and the report.")


def _study_layout(part: FlareDataset, prep: PrepConfig, *, random_state: int) -> FlareDataset:
    drop_rows = prep.missing == "drop-rows"
    if prep.layout == "study-rows":
        return to_study_rows(part, drop_missing_rows=drop_rows)
    if prep.layout == "study-windows":
        return to_study_windows(part, lookback=prep.lookback, step=prep.step, delay=prep.delay,
                                random_state=random_state, drop_missing_rows=drop_rows,
                                label_as_input=prep.label_as_input)
    raise ConfigError(f"unknown layout {prep.layout!r}; expected one of {list(LAYOUTS)}.")


def data_key(config: RunConfig) -> str:
    """Runs with equal keys see the same prepared data (a grid prepares it once)."""
    return json.dumps({"data": config.to_dict()["data"], "prep": config.to_dict()["prep"]}, sort_keys=True)


class DataCache:
    """Prepared data by :func:`data_key` (and rotation fold); labelled sources and rotation
    splits by data section, so a grid loads and splits its data once.

    At most ``max_prepared`` prepared runs are kept (the oldest is dropped first): a rotation
    over K folds of a large store would otherwise hold K copies of it.
    """

    def __init__(self, max_prepared: int = 8) -> None:
        self.max_prepared = max_prepared
        self._sources: dict[str, Source] = {}
        self._rotations: dict[str, list[Split]] = {}
        self._prepared: dict[str, RunData] = {}

    @staticmethod
    def _source_key(data: DataConfig) -> str:
        plain = RunConfig(data=data).to_dict()["data"]
        return json.dumps({k: v for k, v in plain.items() if k not in ("split", "cv", "cv_by")}, sort_keys=True)

    def put_source(self, data: DataConfig, source: Source) -> None:
        """Use ``source`` (already loaded, e.g. by a benchmark) for runs with this data section."""
        self._sources[self._source_key(data)] = labelled_source(source)

    def source(self, config: RunConfig, *, progress: bool | None = None) -> Source:
        key = self._source_key(config.data)
        if key not in self._sources:
            self._sources[key] = labelled_source(load_source(config.data, progress=progress))
        return self._sources[key]

    def rotation(self, config: RunConfig, *, progress: bool | None = None) -> list[Split]:
        """The rotation splits of ``config.data`` (computed once per data section)."""
        key = json.dumps(config.to_dict()["data"], sort_keys=True)
        if key not in self._rotations:
            self._rotations[key] = rotation_splits(self.source(config, progress=progress).dataset, config.data)
        return self._rotations[key]

    def get(self, config: RunConfig, *, fold: int | None = None, progress: bool | None = None) -> RunData:
        """The prepared data of ``config``; of its ``fold``-th rotation split when it rotates."""
        key = data_key(config) + ("" if fold is None else f"#fold{fold}")
        if key not in self._prepared:
            split = None if fold is None else self.rotation(config, progress=progress)[fold]
            while len(self._prepared) >= max(self.max_prepared, 1):
                self._prepared.pop(next(iter(self._prepared)))
            self._prepared[key] = prepare_run_data(config, self.source(config, progress=progress), split=split,
                                                   progress=progress)
        return self._prepared[key]




__all__ = ["Source", "RunData", "load_source", "check_memory_budget", "over_memory_budget", "in_memory_estimate_mb", "IN_MEMORY_FACTOR", "split_source", "labelled_source", "rotation_splits",
           "prepare_run_data", "prepare_parts", "data_key", "DataCache"]
