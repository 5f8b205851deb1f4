"""Missing values, fitted on training data only: interpolation in time, then the training median,
or (the study's policy) dropping."""

from __future__ import annotations

import numpy as np

from flareseq.data.dataset import check_3d
from flareseq.errors import ConfigError, FlareseqError, NotFittedError

MISSING_POLICIES = ("interpolate", "drop")


class MissingReport(dict):
    """Counts of one missing-value treatment: ``policy``, ``n_samples_in``,
    ``n_samples_dropped``, ``n_values_missing``, ``n_values_interpolated``,
    ``n_values_filled`` (with the training median)."""


def interpolate_in_time(X: np.ndarray) -> tuple[np.ndarray, int]:
    """Fill NaN linearly in time within each sample and feature (constant beyond the first
    and last observed step); a series without any value stays NaN. Returns the new array
    and the number of values filled."""
    X = check_3d(X)
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
        X = data.X if hasattr(data, "X") else check_3d(data)
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
        X = data.X if is_dataset else check_3d(data)
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
