"""Preparation without leakage: sampling, missing values, scaling, class balance.

Everything that learns from data (the missing-value medians, the scaler's statistics) is
fitted on the training split only and then applied to every split.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np

from .errors import ConfigError, FlareseqError, NotFittedError
from .schema import UNLABELLED

# The study's sampling (SPEC section 2): split name -> (fold, fraction).
STUDY_SAMPLING: dict[str, tuple[int, float]] = {"train": (1, 0.3), "validation": (2, 0.1), "test": (3, 0.05)}
MISSING_POLICIES = ("interpolate", "drop")


def signed_log(x: np.ndarray) -> np.ndarray:
    """``sign(x) * log1p(|x|)``: compresses heavy tails (SHARP totals span ~20 decades) while
    keeping the sign and staying defined at zero."""
    return np.sign(x) * np.log1p(np.abs(x))


class Scaler:
    """Per-feature z-score, optionally after a signed log, fitted on training data only.

    Parameters
    ----------
    signed_log : ``False`` (none), ``True`` (every feature) or the names of the features to
        transform with :func:`signed_log` before standardising.
    with_std : divide by the standard deviation (``False`` only centres).

    The statistics are taken over all samples and time steps of the training split,
    ignoring NaN; a constant feature gets a scale of 1 so it maps to zero, not to NaN.
    """

    def __init__(self, *, signed_log: bool | Sequence[str] = False, with_std: bool = True) -> None:
        self.signed_log = signed_log if isinstance(signed_log, bool) else tuple(signed_log)
        self.with_std = with_std

    # -- fitting -----------------------------------------------------------------------
    def fit(self, X: np.ndarray, feature_names: Sequence[str] | None = None) -> Scaler:
        X = _check_3d(X)
        names = tuple(feature_names) if feature_names is not None else tuple(
            f"f{i}" for i in range(X.shape[2])
        )
        if len(names) != X.shape[2]:
            raise FlareseqError(f"{len(names)} feature names for {X.shape[2]} features.")
        self.feature_names_ = names
        self.log_mask_ = self._log_mask(names)
        flat = self._log(X).reshape(-1, X.shape[2]).astype(np.float64)
        with np.errstate(all="ignore"):
            mean = np.nanmean(flat, axis=0)
            std = np.nanstd(flat, axis=0)
        if np.isnan(mean).any():
            empty = [n for n, m in zip(names, mean) if np.isnan(m)]
            raise FlareseqError(
                f"cannot fit the scaler: feature(s) {empty} have no finite value in the training data."
            )
        self.mean_ = mean
        self.scale_ = np.where(std > 0, std, 1.0) if self.with_std else np.ones_like(std)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scaled float32 copy of ``X`` ``(n, T, F)``; NaN stays NaN."""
        self._check_fitted()
        X = _check_3d(X)
        if X.shape[2] != len(self.mean_):
            raise FlareseqError(
                f"X has {X.shape[2]} features, but the scaler was fitted on {len(self.mean_)} "
                f"({list(self.feature_names_)})."
            )
        out = self._log(X).astype(np.float32, copy=True)
        out -= self.mean_.astype(np.float32)
        out /= self.scale_.astype(np.float32)
        return out

    def fit_transform(self, X: np.ndarray, feature_names: Sequence[str] | None = None) -> np.ndarray:
        return self.fit(X, feature_names).transform(X)

    # -- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict:
        self._check_fitted()
        return {
            "kind": "zscore",
            "signed_log": self.signed_log if isinstance(self.signed_log, bool) else list(self.signed_log),
            "with_std": self.with_std,
            "feature_names": list(self.feature_names_),
            "log_mask": [bool(v) for v in self.log_mask_],
            "mean": [float(v) for v in self.mean_],
            "scale": [float(v) for v in self.scale_],
        }

    @classmethod
    def from_dict(cls, state: dict) -> Scaler:
        if state.get("kind") != "zscore":
            raise ConfigError(f"unknown scaler kind {state.get('kind')!r}; expected 'zscore'.")
        scaler = cls(signed_log=state["signed_log"], with_std=state["with_std"])
        scaler.feature_names_ = tuple(state["feature_names"])
        scaler.log_mask_ = np.asarray(state["log_mask"], dtype=bool)
        scaler.mean_ = np.asarray(state["mean"], dtype=np.float64)
        scaler.scale_ = np.asarray(state["scale"], dtype=np.float64)
        return scaler

    def save(self, path: str | PathLike[str]) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | PathLike[str]) -> Scaler:
        return cls.from_dict(json.loads(Path(path).read_text()))

    # -- helpers -----------------------------------------------------------------------
    def _log_mask(self, names: tuple[str, ...]) -> np.ndarray:
        if isinstance(self.signed_log, bool):
            return np.full(len(names), self.signed_log)
        unknown = [n for n in self.signed_log if n not in names]
        if unknown:
            raise ConfigError(f"signed_log names unknown feature(s) {unknown}; features are {list(names)}.")
        return np.array([n in self.signed_log for n in names])

    def _log(self, X: np.ndarray) -> np.ndarray:
        if not self.log_mask_.any():
            return X
        out = X.astype(np.float64, copy=True)
        out[:, :, self.log_mask_] = signed_log(out[:, :, self.log_mask_])
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "mean_"):
            raise NotFittedError("this Scaler is not fitted yet; call fit(X_train) first.")


def _check_3d(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 3:
        raise FlareseqError(
            f"expected a 3-dimensional array (n_samples, n_timesteps, n_features), got shape {X.shape}."
        )
    return X


# -- sampling ------------------------------------------------------------------------------
def sample_fraction(dataset, fraction: float, *, stratify: bool = False, random_state: int = 0):
    """A seeded random ``fraction`` of a dataset's samples, in their original order.

    With ``stratify`` each label (0, 1, unlabelled) keeps its share: ``round(fraction * n)``
    samples are drawn from each class separately.
    """
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"a sampling fraction must be in (0, 1], got {fraction}.")
    n = dataset.n_samples
    rng = np.random.default_rng(random_state)
    if fraction == 1.0:
        return dataset
    if stratify and dataset.y is not None:
        chosen = []
        for label in (0, 1, UNLABELLED):
            members = np.flatnonzero(dataset.y == label)
            k = int(round(fraction * members.size))
            chosen.append(rng.choice(members, size=k, replace=False))
        index = np.sort(np.concatenate(chosen))
    else:
        index = np.sort(rng.choice(n, size=int(round(fraction * n)), replace=False))
    return dataset.subset(index)


def sample_folds(dataset, sampling: dict[str, tuple[int, float]] | None = None, *, stratify: bool = False,
                 random_state: int = 0) -> dict:
    """Split by fold and sample each split: ``{name: (fold, fraction)}``, by default the
    study's 0.3 of fold 1 (train), 0.1 of fold 2 (validation) and 0.05 of fold 3 (test).

    Each split gets its own seeded stream (``random_state`` plus the split's position), so
    changing one fraction does not change the other splits' samples.
    """
    sampling = STUDY_SAMPLING if sampling is None else sampling
    folds = dataset.meta["fold"]
    out = {}
    for k, (name, (fold, fraction)) in enumerate(sampling.items()):
        mask = (folds == fold).fillna(False).to_numpy(bool)
        if not mask.any():
            present = sorted(int(f) for f in folds.dropna().unique())
            raise ConfigError(f"split {name!r} asks for fold {fold}, but the data has folds {present}.")
        out[name] = sample_fraction(dataset.subset(mask), fraction, stratify=stratify,
                                    random_state=random_state + k)
    return out


# -- missing values -----------------------------------------------------------------------------
class MissingReport(dict):
    """Counts of one missing-value treatment: ``policy``, ``n_samples_in``,
    ``n_samples_dropped``, ``n_values_missing``, ``n_values_interpolated``,
    ``n_values_filled`` (with the training median)."""


def interpolate_in_time(X: np.ndarray) -> tuple[np.ndarray, int]:
    """Fill NaN linearly in time within each sample and feature (constant beyond the first
    and last observed step); a series without any value stays NaN. Returns the new array
    and the number of values filled."""
    X = _check_3d(X)
    n, T, F = X.shape
    series = np.ascontiguousarray(X.transpose(0, 2, 1)).reshape(n * F, T)  # (n*F, T)
    missing = np.isnan(series)
    rows = np.flatnonzero(missing.any(axis=1) & ~missing.all(axis=1))
    out = series.copy()
    if rows.size:
        sub = series[rows]
        valid = ~np.isnan(sub)
        t = np.arange(T)
        # index of the previous and next observed step of every step (vectorised np.interp)
        prev = np.maximum.accumulate(np.where(valid, t, -1), axis=1)
        nxt = np.minimum.accumulate(np.where(valid, t, T)[:, ::-1], axis=1)[:, ::-1]
        prev_c = np.where(prev < 0, nxt, prev)
        next_c = np.where(nxt >= T, prev_c, nxt)
        x0 = np.take_along_axis(sub, prev_c, axis=1)
        x1 = np.take_along_axis(sub, next_c, axis=1)
        span = (next_c - prev_c).astype(np.float64)
        w = np.where(span > 0, (t - prev_c) / np.where(span > 0, span, 1), 0.0)
        filled = (x0 + w * (x1 - x0)).astype(X.dtype)
        out[rows] = np.where(valid, sub, filled)
    n_filled = int(missing[rows].sum()) if rows.size else 0
    return np.ascontiguousarray(out.reshape(n, F, T).transpose(0, 2, 1)), n_filled


class MissingValues:
    """Missing-value policy fitted on training data: ``"interpolate"`` (default: linear in time
    within a sample, then the training median of the feature for what is left) or
    ``"drop"`` (the study's: drop every sample with a missing value).

    :meth:`transform` takes a :class:`~flareseq.FlareDataset` (or an array for
    ``"interpolate"``) and leaves the counts of what it did in ``report_``.
    """

    def __init__(self, policy: str = "interpolate") -> None:
        if policy not in MISSING_POLICIES:
            raise ConfigError(f"missing-value policy must be one of {list(MISSING_POLICIES)}, got {policy!r}.")
        self.policy = policy

    def fit(self, data, feature_names=None) -> MissingValues:
        X = data.X if hasattr(data, "X") else _check_3d(data)
        names = tuple(data.feature_names) if hasattr(data, "feature_names") else tuple(
            feature_names or (f"f{i}" for i in range(X.shape[2])))
        self.feature_names_ = names
        if self.policy == "interpolate":
            filled, _ = interpolate_in_time(X)
            flat = filled.reshape(-1, X.shape[2])
            if flat.shape[0] > 2_000_000:  # a regular subsample: the median of 2 M values is plenty
                flat = flat[:: flat.shape[0] // 2_000_000 + 1]
            with np.errstate(all="ignore"), _quiet_nan_warnings():
                medians = np.nanmedian(flat.astype(np.float64), axis=0)
            empty = [n for n, m in zip(names, medians) if np.isnan(m)]
            if empty:
                raise FlareseqError(f"cannot fit the missing-value policy: feature(s) {empty} have no value "
                                    "in the training data; drop them with select_features().")
            self.medians_ = medians
        else:
            self.medians_ = None
        return self

    def transform(self, data):
        if not hasattr(self, "feature_names_"):
            raise NotFittedError("this MissingValues is not fitted yet; call fit(train) first.")
        is_dataset = hasattr(data, "X")
        X = data.X if is_dataset else _check_3d(data)
        if X.shape[2] != len(self.feature_names_):
            raise FlareseqError(f"X has {X.shape[2]} features, but the policy was fitted on "
                                f"{len(self.feature_names_)} ({list(self.feature_names_)}).")
        missing = np.isnan(X)
        report = MissingReport(policy=self.policy, n_samples_in=int(X.shape[0]), n_samples_dropped=0,
                               n_values_missing=int(missing.sum()), n_values_interpolated=0, n_values_filled=0)
        self.report_ = report
        if self.policy == "drop":
            keep = ~missing.any(axis=(1, 2))
            report["n_samples_dropped"] = int((~keep).sum())
            if not is_dataset:
                raise ConfigError("the 'drop' policy needs a FlareDataset (labels must be dropped too), not an array.")
            return data.subset(keep)
        filled, report["n_values_interpolated"] = interpolate_in_time(X)
        left = np.isnan(filled)
        report["n_values_filled"] = int(left.sum())
        if left.any():
            filled = np.where(left, self.medians_.astype(X.dtype)[None, None, :], filled)
        filled = filled.astype(np.float32, copy=False)
        return data.with_X(filled) if is_dataset else filled

    def fit_transform(self, data):
        return self.fit(data).transform(data)

    def to_dict(self) -> dict:
        return {"policy": self.policy, "feature_names": list(getattr(self, "feature_names_", ())),
                "medians": None if getattr(self, "medians_", None) is None else [float(m) for m in self.medians_]}

    @classmethod
    def from_dict(cls, state: dict) -> MissingValues:
        obj = cls(state["policy"])
        obj.feature_names_ = tuple(state["feature_names"])
        obj.medians_ = None if state["medians"] is None else np.asarray(state["medians"], dtype=np.float64)
        return obj


class _quiet_nan_warnings:
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)


# -- class balance ---------------------------------------------------------------------------
def class_counts(y: np.ndarray | None) -> dict[int, int]:
    """Samples per label among the labelled ones (``{0: n0, 1: n1}``)."""
    if y is None:
        return {0: 0, 1: 0}
    y = np.asarray(y)
    return {0: int((y == 0).sum()), 1: int((y == 1).sum())}


def pcc(y: np.ndarray | None) -> float | None:
    """Proportion chance criterion: the sum of squared class shares among labelled samples
    (Morrison 1969; the study's baseline). ``None`` when no sample is labelled."""
    counts = class_counts(y)
    total = counts[0] + counts[1]
    if total == 0:
        return None
    return float((counts[0] / total) ** 2 + (counts[1] / total) ** 2)


def pcc_125(y: np.ndarray | None) -> float | None:
    """1.25 x :func:`pcc`: the bar a classifier's accuracy must clear (the study's rule)."""
    value = pcc(y)
    return None if value is None else 1.25 * value


SUMMARY_KEYS = ("n_samples", "n_positive", "n_unlabelled", "n_timesteps", "n_features", "n_missing_values",
                "pcc", "pcc_125")


def summarize(dataset) -> dict:
    """The figures of ``flareseq summary``: exactly :data:`SUMMARY_KEYS`."""
    y = dataset.y
    return {
        "n_samples": dataset.n_samples,
        "n_positive": dataset.n_positive,
        "n_unlabelled": dataset.n_unlabelled,
        "n_timesteps": dataset.n_timesteps,
        "n_features": dataset.n_features,
        "n_missing_values": dataset.n_missing_values,
        "pcc": pcc(y),
        "pcc_125": pcc_125(y),
    }
