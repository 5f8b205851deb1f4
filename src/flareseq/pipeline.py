"""From a run configuration to the train, validation and test sets a model sees.

The order is what keeps verification honest: load, split (by fold, region or time), then
sample, treat missing values and lay out samples with state fitted on the training part only.
Scaling is fitted inside the estimator, on the training part too.
"""

from __future__ import annotations

import glob
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import DataConfig, PrepConfig, RunConfig
from .dataset import FlareDataset
from .errors import ConfigError, FlareseqWarning
from .prep import MissingValues, pcc, pcc_125, sample_fraction
from .splits import Split, split_from_config
from .study_layout import apply_layout

PART_NAMES = ("train", "validation", "test")


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
    missing: MissingValues
    facts: dict[str, Any] = field(default_factory=dict)

    def parts(self) -> dict[str, FlareDataset]:
        return dict(zip(PART_NAMES, (self.train, self.validation, self.test)))

    def class_counts(self) -> dict[str, tuple[int, int]]:
        return {name: (int((d.y == 0).sum()), int((d.y == 1).sum())) for name, d in self.parts().items()}


# -- loading ------------------------------------------------------------------------------
def load_source(config: DataConfig, *, progress: bool | None = None) -> Source:
    """The samples named by ``config.path`` (``"synthetic"``, a table, or any readable input)."""
    from .data.hashing import content_hash

    if config.path == "synthetic":
        from .data.synthetic import synthetic_dataset

        dataset = synthetic_dataset(config.synthetic_samples, seed=config.synthetic_seed)
        description = f"synthetic ({config.synthetic_samples} samples, seed {config.synthetic_seed})"
        digest = None
    elif config.format == "table":
        from .data.table import build_table_windows
        from .data.table_spec import TableSpec

        spec = TableSpec.from_dict(dict(config.table))
        paths = sorted({p for pattern in config.path.split(",") for p in (glob.glob(pattern.strip()) or [pattern.strip()])})
        windows = build_table_windows(paths, spec, progress=progress)
        dataset, description, digest = windows.dataset, f"tables {config.path}", None
    elif config.format == "auto":
        from .data import detect_format, load_dataset

        dataset = load_dataset(config.path, progress=progress)
        description = config.path
        digest = None
        if detect_format(config.path) == "store":
            from .data.store import read_manifest

            digest = read_manifest(config.path)["content_hash"]
    else:
        raise ConfigError(f"data.format must be 'auto' or 'table', got {config.format!r}.")
    if config.features:
        dataset = dataset.select_features(list(config.features))
    if digest is None or config.features:
        digest = content_hash(dataset)
    return Source(dataset=dataset, content_hash=digest, description=description)


# -- preparing ----------------------------------------------------------------------------
def split_source(source: Source, config: DataConfig) -> Split:
    """The split of ``config.split`` over the labelled samples of ``source``."""
    return split_from_config(source.dataset, dict(config.split))


def prepare_run_data(config: RunConfig, source: Source | None = None, *, progress: bool | None = None) -> RunData:
    """Load (unless ``source`` is given), split and prepare the data of one run."""
    source = source or load_source(config.data, progress=progress)
    labelled = source.dataset.labelled()
    if labelled.n_samples == 0:
        raise ConfigError(f"{source.description}: no labelled samples to train and test on.")
    if labelled.n_samples < source.dataset.n_samples:
        source = Source(labelled, source.content_hash, source.description)
    split = split_source(source, config.data)
    parts = dict(zip(PART_NAMES, split.apply(source.dataset)))
    if parts["train"].n_samples == 0 or parts["test"].n_samples == 0:
        raise ConfigError(
            f"the split {dict(config.data.split)} leaves {parts['train'].n_samples} training and "
            f"{parts['test'].n_samples} test samples; both must be non-empty."
        )
    return prepare_parts(parts, split, source, config.prep)


def prepare_parts(parts: dict[str, FlareDataset], split: Split, source: Source, prep: PrepConfig) -> RunData:
    """Sample, treat missing values and lay out the parts; fitted on training data only."""
    facts: dict[str, Any] = {"split": split.summary(), "split_description": split.description}
    fractions = {"train": prep.train_fraction, "validation": prep.val_fraction, "test": prep.test_fraction}
    for k, name in enumerate(PART_NAMES):
        if parts[name].n_samples and fractions[name] < 1.0:
            parts[name] = sample_fraction(parts[name], fractions[name], stratify=prep.stratify,
                                          random_state=prep.sample_seed + k)
    # The policy for the run's own parts (the study drops samples with missing values) ...
    missing = MissingValues(prep.missing).fit(parts["train"])
    for name in PART_NAMES:
        if parts[name].n_samples:
            parts[name] = missing.transform(parts[name])
            facts[f"missing_{name}"] = dict(missing.report_)
    # ... and the one forecasts use: a forecast is owed for every sample, so new data is
    # always filled (interpolation, then the training median), never dropped.
    forecast_missing = missing if prep.missing == "interpolate" else MissingValues("interpolate").fit(parts["train"])
    window_options = {"lookback": prep.lookback, "step": prep.step, "delay": prep.delay}
    for k, name in enumerate(PART_NAMES):
        if parts[name].n_samples and prep.layout != "sequence":
            parts[name] = apply_layout(parts[name], prep.layout, **window_options, random_state=prep.sample_seed + k) \
                if prep.layout == "study-windows" else apply_layout(parts[name], prep.layout)
    if prep.layout != "sequence":
        warnings.warn(
            f"layout {prep.layout!r} reproduces the study's flawed sample layout (SPEC section 2); "
            "its scores are not comparable with one-sequence-per-sample runs.",
            FlareseqWarning, stacklevel=2,
        )
    for name, part in parts.items():
        facts[f"n_{name}"] = part.n_samples
        facts[f"n_{name}_positive"] = part.n_positive
    facts["pcc"] = pcc(parts["test"].y)
    facts["pcc_125"] = pcc_125(parts["test"].y)
    facts["base_rate"] = float(parts["train"].y.mean()) if parts["train"].n_samples else float("nan")
    return RunData(train=parts["train"], validation=parts["validation"], test=parts["test"], split=split,
                   source=source, missing=forecast_missing, facts=facts)


def data_key(config: RunConfig) -> str:
    """Runs with equal keys see the same prepared data (a grid prepares it once)."""
    return json.dumps({"data": config.to_dict()["data"], "prep": config.to_dict()["prep"]}, sort_keys=True)


class DataCache:
    """Prepared data by :func:`data_key`; sources by data section (loaded once per grid)."""

    def __init__(self) -> None:
        self._sources: dict[str, Source] = {}
        self._prepared: dict[str, RunData] = {}

    def get(self, config: RunConfig, *, progress: bool | None = None) -> RunData:
        key = data_key(config)
        if key not in self._prepared:
            source_key = json.dumps(config.to_dict()["data"], sort_keys=True)
            if source_key not in self._sources:
                self._sources[source_key] = load_source(config.data, progress=progress)
            self._prepared[key] = prepare_run_data(config, self._sources[source_key], progress=progress)
        return self._prepared[key]


def ensure_path_exists(path: str) -> None:
    if path != "synthetic" and not any(glob.glob(p.strip()) for p in path.split(",")) and not Path(path).exists():
        raise ConfigError(f"data path {path!r} does not exist.")


__all__ = ["Source", "RunData", "load_source", "split_source", "prepare_run_data", "prepare_parts", "data_key",
           "DataCache"]
