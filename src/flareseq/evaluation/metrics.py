"""Verification scores for binary flare forecasts, each with its definition and source.

Conventions: ``y_true`` holds 0/1 labels, ``y_pred`` 0/1 forecasts, ``y_prob`` forecast
probabilities of the positive (flaring) class. Where a score is undefined for the data (no
positives, no negatives, a zero denominator) it is ``NaN``, never a crash and never a made-up
number: e.g. TSS needs at least one event and one non-event, because it is a difference of
two rates, one over each.

Full names are functions (``true_skill_statistic``); :func:`all_scores` returns them under
short keys (``tss``, ``hss2``, ...) for tables, histories and MLflow.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flareseq.data import summary
from flareseq.errors import ConfigError, FlareseqError
from flareseq.evaluation import curves


class ConfusionCounts(NamedTuple):
    """The 2x2 contingency table: true/false positives and negatives."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn


def _labels(y: np.ndarray, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise FlareseqError(f"{name} must be 1-dimensional (n_samples,), got shape {y.shape}.")
    if y.size and not np.isin(y, (0, 1)).all():
        bad = np.unique(y[~np.isin(y, (0, 1))])[:5]
        raise FlareseqError(f"{name} must hold only 0 and 1, found {bad.tolist()}; drop unlabelled (-1) samples first.")
    return y.astype(bool)


def _probs(p: np.ndarray, n: int) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.shape != (n,):
        raise FlareseqError(f"y_prob must have shape ({n},) like y_true, got {p.shape}.")
    if p.size and (not np.isfinite(p).all() or p.min() < 0 or p.max() > 1):
        raise FlareseqError("y_prob must hold probabilities in [0, 1] (no NaN).")
    return p


def confusion_counts(y_true, y_pred) -> ConfusionCounts:
    """Counts of hits (tp), false alarms (fp), misses (fn) and correct rejections (tn)."""
    t = _labels(y_true, "y_true")
    p = _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise FlareseqError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}.")
    tp = int(np.count_nonzero(t & p))
    fp = int(np.count_nonzero(~t & p))
    fn = int(np.count_nonzero(t & ~p))
    return ConfusionCounts(tp, fp, fn, int(t.size - tp - fp - fn))


def _table_score(name: str, y_true, y_pred) -> float:
    c = y_true if isinstance(y_true, ConfusionCounts) else confusion_counts(y_true, y_pred)
    return float(curves.TABLE_SCORES[name](c.tp, c.fp, c.fn, c.tn))


def accuracy(y_true, y_pred=None) -> float:
    """(TP + TN) / N. Misleading under imbalance: always "no" scores the base rate's complement."""
    return _table_score("accuracy", y_true, y_pred)


def precision(y_true, y_pred=None) -> float:
    """TP / (TP + FP), the share of forecast events that happened; NaN with no "yes" forecast."""
    return _table_score("precision", y_true, y_pred)


def recall(y_true, y_pred=None) -> float:
    """TP / (TP + FN), probability of detection (hit rate); NaN with no events."""
    return _table_score("recall", y_true, y_pred)


def false_alarm_rate(y_true, y_pred=None) -> float:
    """FP / (FP + TN), probability of false detection; NaN with no non-events."""
    c = y_true if isinstance(y_true, ConfusionCounts) else confusion_counts(y_true, y_pred)
    return float(curves.false_alarm_rate(c.tp, c.fp, c.fn, c.tn))


def f1_score(y_true, y_pred=None) -> float:
    """2 TP / (2 TP + FP + FN), the harmonic mean of precision and recall."""
    return _table_score("f1", y_true, y_pred)


def true_skill_statistic(y_true, y_pred=None) -> float:
    """TSS = TP / (TP + FN) - FP / (FP + TN), in [-1, 1].

    Hanssen & Kuipers (1965), Peirce's skill score; recommended for flare forecasting because
    it does not depend on the event rate (Bloomfield et al. 2012, ApJL 747, L41). 1 for a
    perfect forecast, 0 for any constant or random one. NaN without both events and
    non-events.
    """
    return _table_score("tss", y_true, y_pred)


def heidke_skill_score(y_true, y_pred=None) -> float:
    """HSS2 = 2 (TP TN - FN FP) / ((TP + FN)(FN + TN) + (TP + FP)(FP + TN)), in [-1, 1].

    Heidke (1926): skill relative to a random forecast with the same marginals; the form
    used in flare forecasting by Bloomfield et al. (2012). Depends on the event rate. NaN
    when the denominator is zero (e.g. no events and no "yes" forecasts).
    """
    return _table_score("hss2", y_true, y_pred)


def roc_auc(y_true, y_prob) -> float:
    """Area under the ROC curve (scikit-learn's ``roc_auc_score``: a random event outranks a
    random non-event, ties count one half). NaN without both classes."""
    t = _labels(y_true, "y_true")
    p = _probs(y_prob, t.size)
    if t.all() or not t.any():
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(t, p))


def average_precision(y_true, y_prob) -> float:
    """PR-AUC as average precision (scikit-learn's ``average_precision_score``: the step-wise
    area under the precision-recall curve, without interpolation). Its no-skill value is the
    event rate. NaN with no events."""
    t = _labels(y_true, "y_true")
    p = _probs(y_prob, t.size)
    if not t.any():
        return float("nan")
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(t, p))


def brier_score(y_true, y_prob) -> float:
    """Mean squared error of the probability forecast, (1/N) sum (p - o)^2 (Brier 1950);
    0 is perfect. NaN for no samples."""
    t = _labels(y_true, "y_true")
    p = _probs(y_prob, t.size)
    return float(np.mean((p - t) ** 2)) if t.size else float("nan")


def brier_skill_score(y_true, y_prob, climatology: float) -> float:
    """BSS = 1 - BS / BS_clim, where BS_clim is the Brier score of always forecasting
    ``climatology``, the event rate of the *training* data (pass it in: the test rate would
    leak). 1 is perfect, 0 no better than climatology, negative worse (Wilks 2011, ch. 8).
    NaN when BS_clim is 0."""
    if not 0.0 <= climatology <= 1.0:
        raise ConfigError(f"climatology must be a base rate in [0, 1], got {climatology}.")
    t = _labels(y_true, "y_true")
    p = _probs(y_prob, t.size)
    if not t.size:
        return float("nan")
    return float(curves.brier_skill(np.sum((p - t) ** 2), np.sum((climatology - t) ** 2)))


def proportion_chance_criterion(y_true) -> float:
    """PCC = sum of squared class shares, the accuracy expected by chance when guessing with
    the class proportions (Morrison 1969); the study used it, and 1.25 x PCC as the bar an
    accuracy must clear (Hair et al.). NaN for no samples. Note that 1.25 x PCC can exceed 1
    on imbalanced data (at a 5 % event rate PCC is 0.905): then no accuracy can clear it."""
    t = _labels(y_true, "y_true")
    n_pos = int(t.sum())
    return summary.proportion_chance_criterion(t.size - n_pos, n_pos)


def all_scores(y_true, y_prob, *, threshold: float = 0.5, climatology: float | None = None) -> dict[str, float]:
    """Every score of a probability forecast under short keys.

    Parameters
    ----------
    y_true : 0/1 labels.
    y_prob : forecast probabilities of an event.
    threshold : ``y_prob >= threshold`` is a "yes" forecast.
    climatology : the training event rate, the reference forecast of ``bss``; ``None`` gives
        ``bss = NaN`` (the test rate is not used, it would leak).

    Returns
    -------
    dict with ``tp, fp, fn, tn, n, accuracy, precision, recall, f1, tss, hss2, roc_auc,
    pr_auc, brier, bss, pcc, pcc_125, event_rate, threshold``.
    """
    t = _labels(y_true, "y_true")
    p = _probs(y_prob, t.size)
    c = confusion_counts(t.astype(np.int8), (p >= threshold).astype(np.int8))
    pcc = proportion_chance_criterion(t.astype(np.int8))
    return {
        "tp": c.tp, "fp": c.fp, "fn": c.fn, "tn": c.tn, "n": c.n,
        "accuracy": accuracy(c), "precision": precision(c), "recall": recall(c), "f1": f1_score(c),
        "tss": true_skill_statistic(c), "hss2": heidke_skill_score(c),
        "roc_auc": roc_auc(t.astype(np.int8), p), "pr_auc": average_precision(t.astype(np.int8), p),
        "brier": brier_score(t.astype(np.int8), p),
        "bss": float("nan") if climatology is None else brier_skill_score(t.astype(np.int8), p, climatology),
        "pcc": pcc, "pcc_125": 1.25 * pcc,
        "event_rate": float(t.mean()) if t.size else float("nan"),
        "threshold": float(threshold),
    }


_THRESHOLD_METRICS = ("tss", "hss2")


def choose_threshold(y_val, p_val, metric: str = "tss") -> float:
    """The threshold that maximises ``metric`` ("tss" or "hss2") on *validation* data.

    Every distinct probability is a candidate (a threshold between two scores changes
    nothing); ties go to the highest threshold (fewest false alarms). Never call this with
    test data: the threshold would be fitted to the test set. Returns 0.5 when the metric is
    undefined on ``y_val`` (one class only), so a model can still be used.
    """
    if metric not in _THRESHOLD_METRICS:
        raise ConfigError(f"threshold metric must be one of {list(_THRESHOLD_METRICS)}, got {metric!r}.")
    t = _labels(y_val, "y_val")
    p = _probs(p_val, t.size)
    if t.all() or not t.any():
        return 0.5
    counts = curves.counts_by_threshold(t, p)
    score = curves.TABLE_SCORES[metric](counts.tp, counts.fp, counts.fn, counts.tn)
    score = np.where(np.isnan(score), -np.inf, score)
    return float(counts.thresholds[int(np.argmax(score))])
