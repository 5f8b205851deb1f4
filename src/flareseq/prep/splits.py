"""Train/validation/test splits that do not leak.

Windows of one active region overlap (a 24 h window slides by 96 min on SMARP, by 1 h on
SWAN-SF), and neighbouring windows share most of their inputs and usually their label. A
sample-level random split puts near-copies of test windows into training and reports skill
that no forecaster will see. So samples are split by what separates them in reality:

- :func:`split_by_fold`: by fold or partition (``meta["fold"]``), e.g. SMARP's region-disjoint
  files or SWAN-SF's time-disjoint partitions; :func:`rotate_folds` makes each fold the test set
  in turn.
- :func:`group_kfold` and :func:`split_by_region`: by region groups (``meta["region"]``).
- :func:`split_by_time`: before/after a date (``meta["end"]``), with an optional embargo.
- :func:`random_split`: by sample, only with ``allow_leaky_split=True``; it warns and the
  returned split says ``leaky=True`` so a report can say so.

Validation sets are carved from the training regions (:func:`carve_validation`), stratified
so that they hold positives when the training part has positives in two regions or more.
Every split that claims region-disjointness checks it (:func:`check_region_disjoint`).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flareseq.data.dataset import FlareDataset
from flareseq.errors import ConfigError, FlareseqWarning, LeakageError

Data = FlareDataset | pd.DataFrame
PART_NAMES = ("train", "validation", "test")


@dataclass(frozen=True, eq=False)
class Split:
    """Index arrays (sorted positions into the dataset) of one split, and how it was made.

    Attributes
    ----------
    train, validation, test : int64 positions; ``validation`` may be empty.
    method : ``"fold"``, ``"region"``, ``"time"`` or ``"random"``.
    leaky : True for a sample-level random split: its scores are optimistic.
    region_disjoint : True when no region has samples in two parts (checked, not assumed).
    n_shared_regions : regions with samples in more than one part.
    n_unused : samples in no part (no fold, or left out by a time embargo).
    description : one line saying what went where.
    """

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    method: str
    leaky: bool = False
    region_disjoint: bool = False
    n_shared_regions: int = 0
    n_unused: int = 0
    description: str = ""

    def parts(self) -> dict[str, np.ndarray]:
        return dict(zip(PART_NAMES, (self.train, self.validation, self.test)))

    def apply(self, dataset: FlareDataset) -> tuple[FlareDataset, FlareDataset, FlareDataset]:
        """The train, validation and test datasets."""
        return tuple(dataset.subset(index) for index in (self.train, self.validation, self.test))

    def summary(self, y: np.ndarray | None = None) -> dict[str, Any]:
        """Sizes (and positives, given ``y``) per part and the flags, as plain values."""
        out: dict[str, Any] = {"method": self.method, "leaky": self.leaky, "region_disjoint": self.region_disjoint,
                               "n_shared_regions": self.n_shared_regions, "n_unused": self.n_unused}
        for name, index in self.parts().items():
            out[f"n_{name}"] = int(index.size)
            if y is not None:
                out[f"n_{name}_positive"] = int((np.asarray(y)[index] == 1).sum())
        return out


# -- the splits ----------------------------------------------------------------------------
def split_by_fold(
    data: Data,
    test_folds: Sequence[int],
    *,
    validation_folds: Sequence[int] = (),
    train_folds: Sequence[int] | None = None,
    validation_share: float | None = None,
    y: np.ndarray | None = None,
    random_state: int = 0,
    stratify: bool = True,
    require_region_disjoint: bool = False,
) -> Split:
    """Split by ``meta["fold"]``: test folds, validation folds (or a share of the training
    regions, ``validation_share``), and training folds (default: all the others).

    ``require_region_disjoint=True`` raises :class:`LeakageError` when a region is in two
    parts; otherwise the count is recorded in ``n_shared_regions``.
    """
    meta, y = _meta_and_y(data, y)
    folds = meta["fold"].astype("Int64")
    present = sorted(int(f) for f in folds.dropna().unique())
    test_folds, validation_folds = _int_list(test_folds, "test_folds"), _int_list(validation_folds, "validation_folds")
    if train_folds is None:
        train_folds = [f for f in present if f not in test_folds and f not in validation_folds]
    train_folds = _int_list(train_folds, "train_folds")
    for name, chosen in (("test_folds", test_folds), ("validation_folds", validation_folds), ("train_folds", train_folds)):
        absent = [f for f in chosen if f not in present]
        if absent:
            raise ConfigError(f"{name} {absent} are not in the data; its folds are {present}.")
    overlap = (set(test_folds) & set(validation_folds)) | (set(train_folds) & (set(test_folds) | set(validation_folds)))
    if overlap:
        raise ConfigError(f"fold(s) {sorted(overlap)} are given to two parts; each fold belongs to one part.")
    if not test_folds or not train_folds:
        raise ConfigError(f"a fold split needs test and training folds; got test {test_folds}, train {train_folds}.")
    if validation_folds and validation_share is not None:
        raise ConfigError("give validation_folds or validation_share, not both.")
    values = folds.to_numpy(dtype=np.float64, na_value=np.nan)
    train = np.flatnonzero(np.isin(values, train_folds))
    validation = np.flatnonzero(np.isin(values, validation_folds))
    test = np.flatnonzero(np.isin(values, test_folds))
    if validation_share is not None:
        train, validation = carve_validation(meta, train, share=validation_share, y=y,
                                             random_state=random_state, stratify=stratify)
    description = f"train folds {train_folds}, " + (
        f"validation folds {validation_folds}" if validation_folds else
        f"validation {validation_share:g} of training regions" if validation_share is not None else "no validation"
    ) + f", test folds {test_folds}"
    return _finish(meta, train, validation, test, "fold", description, require_disjoint=require_region_disjoint)


def rotate_folds(
    data: Data,
    *,
    validation_share: float | None = 0.2,
    y: np.ndarray | None = None,
    random_state: int = 0,
    stratify: bool = True,
    require_region_disjoint: bool = False,
) -> list[Split]:
    """One :func:`split_by_fold` per fold, each fold the test set in turn."""
    meta, y = _meta_and_y(data, y)
    present = sorted(int(f) for f in meta["fold"].dropna().unique())
    if len(present) < 2:
        raise ConfigError(f"rotating folds needs at least two folds; the data has {present}.")
    return [
        split_by_fold(meta, [f], validation_share=validation_share, y=y, random_state=random_state,
                      stratify=stratify, require_region_disjoint=require_region_disjoint)
        for f in present
    ]


def group_kfold(
    data: Data,
    n_splits: int = 5,
    *,
    validation_share: float | None = 0.2,
    y: np.ndarray | None = None,
    random_state: int = 0,
    stratify: bool = True,
) -> list[Split]:
    """K-fold over region groups: each group of regions is the test set once, validation
    is carved from the remaining (training) regions. Stratified by label when possible."""
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    meta, y = _meta_and_y(data, y)
    groups = _region_codes(meta)
    n_regions = len(np.unique(groups))
    if not isinstance(n_splits, int) or n_splits < 2 or n_splits > n_regions:
        raise ConfigError(f"n_splits must be an integer from 2 to the number of regions ({n_regions}), got {n_splits!r}.")
    labels = None if y is None else np.where(np.asarray(y) == 1, 1, 0)
    if stratify and labels is not None and 0 < labels.sum() and (labels == 1).sum() >= n_splits:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
        folds = splitter.split(np.zeros(len(groups)), labels, groups)
    else:
        # GroupKFold is deterministic; shuffle the group codes so random_state still matters.
        permuted = np.random.default_rng(random_state).permutation(groups.max() + 1)[groups]
        folds = GroupKFold(n_splits=n_splits).split(np.zeros(len(groups)), None, permuted)
    splits = []
    for i, (train, test) in enumerate(folds):
        validation = np.array([], dtype=np.int64)
        if validation_share is not None:
            train, validation = carve_validation(meta, train, share=validation_share, y=y,
                                                 random_state=random_state + i, stratify=stratify)
        splits.append(_finish(meta, train, validation, test, "region",
                              f"region group k-fold: fold {i + 1} of {n_splits} as test", require_disjoint=True))
    return splits


def split_by_region(
    data: Data,
    *,
    test_share: float = 0.2,
    validation_share: float | None = 0.2,
    y: np.ndarray | None = None,
    random_state: int = 0,
    stratify: bool = True,
) -> Split:
    """One region-disjoint split: about ``test_share`` of the samples' regions for test, then
    ``validation_share`` of the rest's regions for validation."""
    meta, y = _meta_and_y(data, y)
    everything = np.arange(len(meta))
    rest, test = carve_validation(meta, everything, share=test_share, y=y, random_state=random_state,
                                  stratify=stratify, what="test_share")
    validation = np.array([], dtype=np.int64)
    if validation_share is not None:
        rest, validation = carve_validation(meta, rest, share=validation_share, y=y,
                                            random_state=random_state + 1, stratify=stratify)
    return _finish(meta, rest, validation, test, "region",
                   f"region holdout: test {test_share:g}, validation {validation_share or 0:g} of the rest",
                   require_disjoint=True)


def split_by_time(
    data: Data,
    test_start: object,
    *,
    validation_start: object | None = None,
    embargo_hours: float = 0.0,
    column: str = "end",
    require_region_disjoint: bool = False,
) -> Split:
    """Train before ``validation_start`` (or ``test_start``), validation from
    ``validation_start`` to ``test_start``, test from ``test_start`` on, by ``meta[column]``.

    ``embargo_hours`` leaves out the samples of each earlier part that end within that many
    hours before the next part starts: their inputs and labels overlap the next part's (use
    the window length plus the label horizon to remove all overlap).
    """
    meta, _ = _meta_and_y(data, None)
    if column not in meta.columns:
        raise ConfigError(f"column {column!r} is not in the metadata; it has {list(meta.columns)}.")
    times = pd.to_datetime(meta[column]).to_numpy(dtype="datetime64[ns]")
    if np.isnat(times).any():
        raise ConfigError(f"{int(np.isnat(times).sum())} samples have no {column!r} time; a time split needs all.")
    test_at = _timestamp(test_start, "test_start")
    valid_at = test_at if validation_start is None else _timestamp(validation_start, "validation_start")
    if valid_at > test_at:
        raise ConfigError(f"validation_start {validation_start} is after test_start {test_start}.")
    if not isinstance(embargo_hours, (int, float)) or embargo_hours < 0:
        raise ConfigError(f"embargo_hours must be a number >= 0, got {embargo_hours!r}.")
    embargo = np.timedelta64(int(round(embargo_hours * 3600e9)), "ns")
    train = np.flatnonzero(times < valid_at - embargo)
    validation = np.flatnonzero((times >= valid_at) & (times < test_at - embargo))
    test = np.flatnonzero(times >= test_at)
    description = f"time: train before {valid_at}, " + (f"validation to {test_at}, " if validation_start is not None else "") + \
        f"test from {test_at}" + (f", embargo {embargo_hours:g} h" if embargo_hours else "")
    return _finish(meta, train, validation, test, "time", description, require_disjoint=require_region_disjoint)


def random_split(
    data: Data,
    *,
    test_share: float = 0.2,
    validation_share: float = 0.0,
    y: np.ndarray | None = None,
    random_state: int = 0,
    allow_leaky_split: bool = False,
) -> Split:
    """A sample-level random split. Refused unless ``allow_leaky_split=True``; then it warns
    and returns a split marked ``leaky=True``."""
    meta, y = _meta_and_y(data, y)
    message = ("a sample-level random split puts overlapping windows of one region on both sides, so "
               "test scores are optimistic")
    if not allow_leaky_split:
        raise LeakageError(
            f"{message}. Split by fold, region groups or time (split_by_fold, group_kfold, split_by_region, "
            "split_by_time); only to measure the leak itself pass allow_leaky_split=True."
        )
    warnings.warn(f"allow_leaky_split=True: {message}; the split is marked leaky.", FlareseqWarning, stacklevel=2)
    for name, share in (("test_share", test_share), ("validation_share", validation_share)):
        if not 0 <= share < 1:
            raise ConfigError(f"{name} must be in [0, 1), got {share!r}.")
    order = np.random.default_rng(random_state).permutation(len(meta))
    n_test, n_valid = int(round(test_share * len(meta))), int(round(validation_share * len(meta)))
    test, validation, train = np.split(order, [n_test, n_test + n_valid])
    split = _finish(meta, np.sort(train), np.sort(validation), np.sort(test), "random",
                    f"LEAKY sample-level random split: test {test_share:g}, validation {validation_share:g}",
                    require_disjoint=False)
    return Split(**{**split.__dict__, "leaky": True})


# -- validation carving and checks --------------------------------------------------------
def carve_validation(
    data: Data,
    train: np.ndarray,
    *,
    share: float = 0.2,
    y: np.ndarray | None = None,
    random_state: int = 0,
    stratify: bool = True,
    what: str = "validation_share",
) -> tuple[np.ndarray, np.ndarray]:
    """Move whole regions from ``train`` to a validation part of about ``share`` of its samples.

    With labels and ``stratify``, regions with positives are chosen first until the part
    holds about ``share`` of the positives (at least one region with positives, and at least
    one left for training, when there are two or more); then positive-free regions fill the
    part up to ``share`` of the samples. Returns ``(train, validation)`` positions, sorted.
    """
    meta, y = _meta_and_y(data, y)
    if not isinstance(share, (int, float)) or not 0 < share < 1:
        raise ConfigError(f"{what} must be a number strictly between 0 and 1, got {share!r}.")
    train = np.asarray(train, dtype=np.int64)
    codes = _region_codes(meta)[train]
    groups, inverse, sizes = np.unique(codes, return_inverse=True, return_counts=True)
    if len(groups) < 2:
        raise ConfigError(f"cannot carve {what} from {len(groups)} region(s): at least two are needed.")
    rng = np.random.default_rng(random_state)
    positives = np.zeros(len(groups), dtype=np.int64)
    if y is not None:
        np.add.at(positives, inverse, (np.asarray(y)[train] == 1).astype(np.int64))
    chosen = np.zeros(len(groups), dtype=bool)
    target = share * len(train)
    if stratify and positives.sum() > 0:
        pos_groups = rng.permutation(np.flatnonzero(positives > 0))
        target_pos = share * positives.sum()
        taken_pos = 0
        for g in pos_groups[: max(1, len(pos_groups) - 1)]:
            if taken_pos > 0 and (taken_pos >= target_pos or sizes[chosen].sum() + sizes[g] > 1.5 * target):
                break
            chosen[g] = True
            taken_pos += positives[g]
        pool = rng.permutation(np.flatnonzero(positives == 0))
    else:
        pool = rng.permutation(len(groups))
    taken = sizes[chosen].sum()
    for g in pool:
        if taken >= target:
            break
        # Skip a region that would overshoot the target by more than it would fill.
        if taken + sizes[g] - target > target - taken:
            continue
        chosen[g] = True
        taken += sizes[g]
    if not chosen.any():
        # Every region is larger than the target: the smallest one is the closest we get.
        chosen[pool[np.argmin(sizes[pool])] if len(pool) else np.argmin(sizes)] = True
    if chosen.all():
        chosen[np.argmax(sizes)] = False
    in_validation = chosen[inverse]
    return np.sort(train[~in_validation]), np.sort(train[in_validation])


def check_region_disjoint(data: Data, *parts: np.ndarray, names: Sequence[str] = PART_NAMES) -> None:
    """Raise :class:`LeakageError` when a region has samples in two of ``parts``."""
    meta, _ = _meta_and_y(data, None)
    shared = _shared_regions(meta, parts)
    if shared:
        raise LeakageError(
            f"{len(shared)} region(s) have samples in more than one of the parts {list(names[:len(parts)])}, "
            f"e.g. {shared[:5]}: their overlapping windows leak between them. Split by region groups "
            "(group_kfold, split_by_region) or by region-disjoint folds."
        )


def split_from_config(data: Data, options: Mapping[str, Any]) -> Split:
    """A split from a config mapping ``{"method": "fold" | "region" | "time" | "random", ...}``
    whose other keys are the chosen function's keyword arguments; unknown keys are an error
    listing the valid ones."""
    methods = {"fold": split_by_fold, "region": split_by_region, "time": split_by_time, "random": random_split}
    options = dict(options)
    method = options.pop("method", None)
    method = {"folds": "fold", "regions": "region"}.get(method, method)  # plural spellings, as in DataConfig
    if method not in methods:
        raise ConfigError(f"split method must be one of {list(methods)}, got {method!r}.")
    function = methods[method]
    valid = [p for p in inspect.signature(function).parameters if p not in ("data", "y")]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for split method {method!r}; valid options are {valid}.")
    return function(data, **options)


# -- helpers -------------------------------------------------------------------------------
def _meta_and_y(data: Data, y: np.ndarray | None) -> tuple[pd.DataFrame, np.ndarray | None]:
    if isinstance(data, FlareDataset):
        return data.meta, data.y if y is None else y
    if isinstance(data, pd.DataFrame):
        if y is not None and len(y) != len(data):
            raise ConfigError(f"y has {len(y)} labels for {len(data)} samples.")
        return data, y
    raise ConfigError(f"expected a FlareDataset or its meta DataFrame, got {type(data).__name__}.")


def _region_codes(meta: pd.DataFrame) -> np.ndarray:
    if "region" not in meta.columns:
        raise ConfigError("a region split needs meta['region']; this data has none. Split by fold or time.")
    region = meta["region"].astype("string")
    missing = int(region.isna().sum())
    if missing:
        raise ConfigError(
            f"{missing} of {len(meta)} samples have no region, so region groups cannot keep them apart; "
            "split by fold or time instead."
        )
    return pd.factorize(region)[0].astype(np.int64)


def _shared_regions(meta: pd.DataFrame, parts: Sequence[np.ndarray]) -> list[str]:
    if "region" not in meta.columns:
        return []
    region = meta["region"].astype("string").to_numpy(dtype=object, na_value=None)
    seen: dict[str, int] = {}
    shared: set[str] = set()
    for k, index in enumerate(parts):
        for r in set(region[np.asarray(index, dtype=np.int64)]) - {None}:
            if seen.setdefault(r, k) != k:
                shared.add(r)
    return sorted(shared)


def _finish(meta, train, validation, test, method, description, *, require_disjoint) -> Split:
    parts = [np.asarray(p, dtype=np.int64) for p in (train, validation, test)]
    if require_disjoint:
        check_region_disjoint(meta, *parts)
    shared = _shared_regions(meta, parts)
    known = "region" in meta.columns and not meta["region"].isna().all()
    used = sum(p.size for p in parts)
    return Split(*parts, method=method, region_disjoint=known and not shared, n_shared_regions=len(shared),
                 n_unused=len(meta) - used, description=description)


def _int_list(values: Sequence[int], name: str) -> list[int]:
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    if isinstance(values, str) or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"{name} must be a list of integer folds, got {values!r}.")
    return [int(v) for v in values]


def _timestamp(value: object, name: str) -> np.datetime64:
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name} must be a date such as '2005-01-01', got {value!r} ({exc}).") from None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return np.datetime64(stamp.to_datetime64(), "ns")
