"""The one curve primitive, and the 2x2 scores written once.

Every score that depends on a decision threshold, and every curve over thresholds (ROC,
precision-recall, TSS against threshold, the threshold choice, the bootstrap of ranked
scores), comes from the same counts: sort the forecasts once by descending probability and
accumulate hits (TP) and false alarms (FP) at every *distinct* probability. A forecast
``p >= t`` then has ``TP(t)`` hits and ``FP(t)`` false alarms; tied probabilities move
together, so a threshold between two scores changes nothing. Sample weights (a bootstrap's
multiplicities) make the counts weighted sums, which equals repeating samples exactly.

The skill scores of a 2x2 table are defined here once, vectorised over arrays of counts
(:func:`true_skill_statistic`, :func:`heidke_skill_score`, ...), and used by
:mod:`flareseq.evaluation.metrics` for one table, by the threshold choice for every candidate
threshold, and by :mod:`flareseq.evaluation.verification` for thousands of resamples.
Undefined values (a zero denominator) are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ThresholdCounts:
    """Hits and false alarms of ``p >= t`` at every distinct probability ``t``, descending.

    Attributes
    ----------
    thresholds : the distinct probabilities, highest first ``(k,)``.
    tp, fp : (weighted) hits and false alarms at each threshold, ``(k,)`` or ``(b, k)`` for
        ``b`` weightings; non-decreasing along the last axis.
    n_pos, n_neg : (weighted) events and non-events, ``()`` or ``(b,)``.
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_pos: np.ndarray
    n_neg: np.ndarray

    @property
    def fn(self) -> np.ndarray:
        return self.n_pos[..., None] - self.tp

    @property
    def tn(self) -> np.ndarray:
        return self.n_neg[..., None] - self.fp


def counts_by_threshold(y_true, y_prob, weights=None) -> ThresholdCounts:
    """The primitive: one sort, cumulative hits and false alarms at each distinct score.

    Parameters
    ----------
    y_true : 0/1 (or bool) labels ``(n,)``.
    y_prob : probabilities (any scores) ``(n,)``.
    weights : optional sample weights ``(n,)`` or ``(b, n)`` (one row per weighting, e.g.
        bootstrap multiplicities); counts are then weighted sums.
    """
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(y_prob, dtype=np.float64)
    order = np.argsort(-p, kind="mergesort")
    p_sorted, y_sorted = p[order], y[order]
    # the last position of each run of equal scores: one point per distinct score
    last = np.r_[np.flatnonzero(np.diff(p_sorted)), p.size - 1] if p.size else np.empty(0, np.int64)
    if weights is None:
        w = np.ones(p.size)
    else:
        w = np.asarray(weights, dtype=np.float64)[..., order]
    tp = np.cumsum(w * y_sorted, axis=-1)[..., last]
    fp = np.cumsum(w * ~y_sorted, axis=-1)[..., last]
    n_pos = tp[..., -1] if p.size else np.zeros(w.shape[:-1])
    n_neg = fp[..., -1] if p.size else np.zeros(w.shape[:-1])
    return ThresholdCounts(p_sorted[last], tp, fp, np.asarray(n_pos), np.asarray(n_neg))


# -- areas under the curves (weighted, vectorised; equal to scikit-learn's on unit weights) ---
def roc_area(counts: ThresholdCounts) -> np.ndarray:
    """Area under the ROC curve; the trapezoid over distinct scores counts a tied pair one
    half (Mann-Whitney). NaN without both classes."""
    n_pos, n_neg = counts.n_pos[..., None], counts.n_neg[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.concatenate([np.zeros_like(n_pos), counts.tp / n_pos], axis=-1)
        fpr = np.concatenate([np.zeros_like(n_neg), counts.fp / n_neg], axis=-1)
        area = np.sum(np.diff(fpr, axis=-1) * (tpr[..., 1:] + tpr[..., :-1]) / 2, axis=-1)
    return np.where((counts.n_pos > 0) & (counts.n_neg > 0), area, np.nan)


def average_precision_area(counts: ThresholdCounts) -> np.ndarray:
    """Average precision, sum over thresholds of (R_k - R_{k-1}) P_k (no interpolation, as
    scikit-learn's ``average_precision_score``). NaN without events."""
    n_pos = counts.n_pos[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        recall_steps = np.diff(np.concatenate([np.zeros_like(n_pos), counts.tp], axis=-1), axis=-1) / n_pos
        precision = np.divide(counts.tp, counts.tp + counts.fp, out=np.zeros_like(counts.tp),
                              where=(counts.tp + counts.fp) > 0)
        area = np.sum(recall_steps * precision, axis=-1)
    return np.where(counts.n_pos > 0, area, np.nan)


# -- the 2x2 scores, written once --------------------------------------------------------------
def divide(num, den) -> np.ndarray:
    """``num / den`` elementwise, NaN where ``den`` is 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)


def true_skill_statistic(tp, fp, fn, tn) -> np.ndarray:
    """TSS = TP / (TP + FN) - FP / (FP + TN) (Hanssen & Kuipers 1965); NaN without both
    events and non-events."""
    return divide(tp, np.add(tp, fn)) - divide(fp, np.add(fp, tn))


def heidke_skill_score(tp, fp, fn, tn) -> np.ndarray:
    """HSS2 = 2 (TP TN - FN FP) / ((TP + FN)(FN + TN) + (TP + FP)(FP + TN)) (Heidke 1926, as
    Bloomfield et al. 2012)."""
    tp, fp, fn, tn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn, tn))
    return divide(2 * (tp * tn - fn * fp), (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def precision(tp, fp, fn, tn) -> np.ndarray:
    return divide(tp, np.add(tp, fp))


def recall(tp, fp, fn, tn) -> np.ndarray:
    return divide(tp, np.add(tp, fn))


def false_alarm_rate(tp, fp, fn, tn) -> np.ndarray:
    return divide(fp, np.add(fp, tn))


def f1_score(tp, fp, fn, tn) -> np.ndarray:
    return divide(np.multiply(2, tp), np.multiply(2, tp) + np.add(fp, fn))


def accuracy(tp, fp, fn, tn) -> np.ndarray:
    return divide(np.add(tp, tn), np.add(np.add(tp, fp), np.add(fn, tn)))


TABLE_SCORES = {"tss": true_skill_statistic, "hss2": heidke_skill_score, "precision": precision, "recall": recall,
                "f1": f1_score, "accuracy": accuracy}
"""Scores of a 2x2 table by short name, each ``f(tp, fp, fn, tn)``, vectorised."""


def brier_skill(squared_error, reference_error) -> np.ndarray:
    """BSS = 1 - BS / BS_ref from (summed or mean) squared errors of the forecast and of the
    reference (climatology) forecast; NaN when the reference is perfect."""
    return 1.0 - divide(squared_error, reference_error)


__all__ = ["ThresholdCounts", "counts_by_threshold", "divide", "roc_area", "average_precision_area", "true_skill_statistic",
           "heidke_skill_score", "precision", "recall", "false_alarm_rate", "f1_score", "accuracy", "TABLE_SCORES",
           "brier_skill"]
