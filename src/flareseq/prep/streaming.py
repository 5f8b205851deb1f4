"""The statistics of a preparation, gathered block by block in one pass and bounded memory.

A :class:`~flareseq.prep.preparation.Preparation` needs, per feature, the median of the
training values after interpolation in time (the fill of series without any value) and the
mean and standard deviation of the filled, optionally signed-log, values (the z-score).
:class:`PreparationStats` takes the training samples in blocks and keeps only:

* a regular subsample of the interpolated time-step rows for the median: every
  ``median_stride(n_rows)``-th row of the whole training set (numbered sample by sample,
  step by step), so the same rows are picked however the samples are cut into blocks; at
  most :data:`MEDIAN_ROWS` rows, float32 (50 MB at 25 features);
* per feature the count, mean and sum of squared deviations of the interpolated values,
  merged block into total with the pairwise update of Chan, Golub and LeVeque (1979),
  "Updating formulae and a pairwise algorithm for computing sample variances": exact in
  exact arithmetic, and stable where a running sum of squares is not;
* the number of values that interpolation left missing (series without any value), which
  the median fills: they join the moments at the end as one block of that constant.

The in-memory fit runs the same code over blocks of :data:`FIT_BLOCK` samples of its array,
so a fit from the store and a fit from memory give the same floats, not merely close ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flareseq.errors import FlareseqError
from flareseq.prep.missing import MissingValues, interpolate_in_time
from flareseq.prep.scaling import Scaler, signed_log

# time-step rows in the median's subsample: plenty for a median (its standard error is ~1/700 of
# the spread), and 50 MB at 25 features: the one part of a fit's memory that grows with the data
MEDIAN_ROWS = 500_000
FIT_BLOCK = 2048  # samples per block of a fit: the unit of the moments' merge (~100 MB of float64 at (60, 25))


def median_stride(n_rows: int) -> int:
    """Every how many time-step rows the median's subsample takes one (1: all of them)."""
    return 1 if n_rows <= MEDIAN_ROWS else n_rows // MEDIAN_ROWS + 1


def merge_moments(count, mean, m2, count_b, mean_b, m2_b):
    """Chan et al.'s merge of two (count, mean, sum of squared deviations) triples, per feature."""
    total = count + count_b
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = mean_b - mean
        share = np.where(total > 0, count_b / np.where(total > 0, total, 1), 0.0)
        merged_mean = mean + delta * share
        merged_m2 = m2 + m2_b + delta * delta * count * share
    return total, np.where(count_b > 0, merged_mean, mean), np.where(count_b > 0, merged_m2, m2)


class PreparationStats:
    """What a preparation learns from its training samples, given block by block.

    Parameters
    ----------
    feature_names, n_timesteps : the training data's features and sequence length.
    n_samples : the number of training samples that will be added (it fixes the median's
        subsample; :meth:`result` refuses a different total).
    signed_log : take the moments of ``sign(x) log(1 + |x|)`` (the ``"signed-log"`` scaler).
    """

    def __init__(self, feature_names: Sequence[str], n_timesteps: int, n_samples: int, *,
                 signed_log: bool = False) -> None:
        self.feature_names = tuple(feature_names)
        self.n_timesteps, self.n_samples, self.signed_log = int(n_timesteps), int(n_samples), signed_log
        n_features = len(self.feature_names)
        n_rows = self.n_samples * self.n_timesteps
        self.stride = median_stride(n_rows)
        # (F, rows): one contiguous row per feature, so each median sorts one array
        self.subsample = np.empty((n_features, -(-n_rows // self.stride)), dtype=np.float32)
        self.count = np.zeros(n_features)
        self.mean = np.zeros(n_features)
        self.m2 = np.zeros(n_features)
        self.n_left_missing = np.zeros(n_features, dtype=np.int64)
        self.n_added = 0

    def add(self, X: np.ndarray) -> None:
        """Add the next raw training samples ``(b, T, F)`` float32 (NaN: missing), in order."""
        b, T, F = X.shape
        if (T, F) != (self.n_timesteps, len(self.feature_names)):
            raise FlareseqError(f"a block of shape {X.shape} for a preparation of {self.n_timesteps} steps and "
                                f"{len(self.feature_names)} features.")
        if self.n_added + b > self.n_samples:
            raise FlareseqError(f"more training samples than the {self.n_samples} announced.")
        filled, _ = interpolate_in_time(X)
        rows = filled.reshape(b * T, F)
        first_row = self.n_added * T
        offset = (-first_row) % self.stride  # the first row of this block on the global grid
        picked = rows[offset :: self.stride]
        start = -(-first_row // self.stride)
        self.subsample[:, start : start + len(picked)] = picked.T
        values = rows.astype(np.float64)
        if self.signed_log:
            values = signed_log(values)
        present = ~np.isnan(values)
        count_b = present.sum(axis=0).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_b = np.where(present, values, 0.0).sum(axis=0) / np.where(count_b > 0, count_b, 1)
            m2_b = np.where(present, (values - mean_b) ** 2, 0.0).sum(axis=0)
        self.count, self.mean, self.m2 = merge_moments(self.count, self.mean, self.m2, count_b, mean_b, m2_b)
        self.n_left_missing += (b * T - present.sum(axis=0)).astype(np.int64)
        self.n_added += b

    def medians(self) -> np.ndarray:
        """The training median of each feature after interpolation (float64)."""
        self._check_complete()
        used = self.subsample[:, : -(-self.n_added * self.n_timesteps // self.stride)]
        medians = np.full(len(self.feature_names), np.nan)
        for j in range(len(self.feature_names)):  # one feature at a time: one float64 copy at most
            column = used[j].astype(np.float64)
            column = column[~np.isnan(column)]
            if column.size:
                medians[j] = np.median(column)
        empty = [n for n, m in zip(self.feature_names, medians) if np.isnan(m)]
        if empty:
            raise FlareseqError(f"cannot fit the missing-value policy: feature(s) {empty} have no value in the "
                                "training data; drop them with select_features().")
        return medians

    def result(self, *, scale: bool) -> tuple[MissingValues, Scaler | None]:
        """The fitted fill and (``scale``) z-score scaler."""
        medians = self.medians()
        missing = MissingValues("interpolate")
        missing.feature_names_, missing.medians_ = self.feature_names, medians
        if not scale:
            return missing, None
        # the values interpolation left missing are filled with the median (as float32, as
        # the fill writes them): one constant block per feature, merged last
        constant = medians.astype(np.float32).astype(np.float64)
        if self.signed_log:
            constant = signed_log(constant)
        count, mean, m2 = merge_moments(self.count, self.mean, self.m2, self.n_left_missing.astype(np.float64),
                                        constant, np.zeros_like(constant))
        std = np.sqrt(m2 / count)
        scaler = Scaler.from_moments(self.feature_names, mean, std, signed_log=self.signed_log)
        return missing, scaler

    def _check_complete(self) -> None:
        if self.n_added != self.n_samples:
            raise FlareseqError(f"{self.n_added} training samples were added, {self.n_samples} announced.")


__all__ = ["PreparationStats", "merge_moments", "median_stride", "MEDIAN_ROWS", "FIT_BLOCK"]
