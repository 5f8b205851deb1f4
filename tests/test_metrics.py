"""Verification scores: definitions, properties, agreement with scikit-learn, degenerate cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from flareseq.errors import ConfigError, FlareseqError
from flareseq.evaluation import metrics as m

labels = st.lists(st.integers(0, 1), min_size=1, max_size=60)


@st.composite
def labels_and_forecasts(draw, both_classes: bool = False):
    y = draw(labels)
    if both_classes:
        y = [0, 1] + y
    pred = draw(st.lists(st.integers(0, 1), min_size=len(y), max_size=len(y)))
    return np.array(y, dtype=np.int8), np.array(pred, dtype=np.int8)


@st.composite
def labels_and_probs(draw):
    y = np.array([0, 1] + draw(labels), dtype=np.int8)
    # Few distinct values so ties happen often.
    p = draw(st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0]), min_size=len(y), max_size=len(y)))
    return y, np.array(p)


def test_worked_example():
    # 30 hits, 10 false alarms, 20 misses, 140 correct rejections.
    c = m.ConfusionCounts(tp=30, fp=10, fn=20, tn=140)
    assert m.recall(c) == 0.6
    assert m.false_alarm_rate(c) == pytest.approx(10 / 150)
    assert m.true_skill_statistic(c) == pytest.approx(0.6 - 10 / 150)
    assert m.heidke_skill_score(c) == pytest.approx(2 * (30 * 140 - 20 * 10) / (50 * 160 + 40 * 150))
    assert m.accuracy(c) == 0.85
    assert m.precision(c) == 0.75
    assert m.f1_score(c) == pytest.approx(60 / 90)


@settings(max_examples=150, deadline=None)
@given(labels_and_forecasts(both_classes=True))
def test_tss_bounded_and_agrees_with_sklearn(data):
    y, pred = data
    tss = m.true_skill_statistic(y, pred)
    assert -1.0 <= tss <= 1.0
    # sklearn: balanced accuracy (adjusted) = recall + specificity - 1 = TSS.
    assert tss == pytest.approx(skm.balanced_accuracy_score(y, pred, adjusted=True))


@settings(max_examples=100, deadline=None)
@given(labels_and_forecasts(both_classes=True))
def test_perfect_and_constant_forecasts(data):
    y, _ = data
    assert m.true_skill_statistic(y, y) == 1.0
    assert m.heidke_skill_score(y, y) == 1.0
    for constant in (0, 1):
        forecast = np.full_like(y, constant)
        assert m.true_skill_statistic(y, forecast) == 0.0
        assert m.heidke_skill_score(y, forecast) == 0.0


@settings(max_examples=150, deadline=None)
@given(labels_and_forecasts())
def test_hss2_agrees_with_cohens_kappa(data):
    y, pred = data
    hss = m.heidke_skill_score(y, pred)
    if math.isnan(hss):
        # Only when the forecast and the observations are the same constant.
        assert len(set(y.tolist()) | set(pred.tolist())) == 1
    else:
        # HSS2 for two classes is Cohen's kappa.
        assert hss == pytest.approx(skm.cohen_kappa_score(y, pred), abs=1e-12)
        assert -1.0 <= hss <= 1.0


@settings(max_examples=150, deadline=None)
@given(labels_and_forecasts())
def test_counts_accuracy_precision_recall_f1_agree_with_sklearn(data):
    y, pred = data
    c = m.confusion_counts(y, pred)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    assert (c.tp, c.fp, c.fn, c.tn) == (tp, fp, fn, tn)
    assert m.accuracy(c) == pytest.approx(skm.accuracy_score(y, pred))
    for ours, theirs in ((m.precision, skm.precision_score), (m.recall, skm.recall_score), (m.f1_score, skm.f1_score)):
        value = ours(c)
        reference = theirs(y, pred, zero_division=np.nan)
        assert (math.isnan(value) and math.isnan(reference)) or value == pytest.approx(reference)


@settings(max_examples=150, deadline=None)
@given(labels_and_probs())
def test_probability_scores_agree_with_sklearn(data):
    y, p = data
    assert m.roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p))
    assert m.average_precision(y, p) == pytest.approx(skm.average_precision_score(y, p))
    assert m.brier_score(y, p) == pytest.approx(skm.brier_score_loss(y, p))


@settings(max_examples=100, deadline=None)
@given(labels_and_probs(), st.sampled_from(["tss", "hss2"]))
def test_chosen_threshold_is_optimal(data, metric):
    y, p = data
    score = {"tss": m.true_skill_statistic, "hss2": m.heidke_skill_score}[metric]
    best = m.choose_threshold(y, p, metric)
    achieved = score(y, (p >= best).astype(np.int8))
    for candidate in np.unique(np.r_[p, 1.5]):
        value = score(y, (p >= candidate).astype(np.int8))
        assert math.isnan(value) or achieved >= value - 1e-12


def test_brier_skill_score_against_training_climatology():
    y = np.array([0, 0, 0, 1])
    assert m.brier_skill_score(y, np.full(4, 0.25), climatology=0.25) == 0.0
    assert m.brier_skill_score(y, y.astype(float), climatology=0.25) == 1.0
    assert m.brier_skill_score(y, np.full(4, 0.9), climatology=0.25) < 0


def test_pcc_is_sum_of_squared_class_shares():
    y = np.r_[np.zeros(80), np.ones(20)].astype(np.int8)
    pcc = m.proportion_chance_criterion(y)
    assert pcc == pytest.approx(0.8**2 + 0.2**2)
    assert m.all_scores(y, np.full(len(y), 0.5))["pcc_125"] == pytest.approx(1.25 * pcc)


def test_no_positives_gives_nan_not_a_crash():
    y = np.zeros(5, dtype=np.int8)
    p = np.linspace(0, 1, 5)
    scores = m.all_scores(y, p, climatology=0.2)
    for key in ("tss", "recall", "roc_auc", "pr_auc"):
        assert math.isnan(scores[key]), key
    assert scores["accuracy"] == pytest.approx(2 / 5)
    assert m.choose_threshold(y, p) == 0.5
    assert math.isnan(m.all_scores(y[:0], p[:0])["accuracy"])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: m.true_skill_statistic([0, 2], [0, 1]), FlareseqError, r"only 0 and 1, found \[2\]"),
        (lambda: m.confusion_counts([0, 1], [0]), FlareseqError, "differ in length: 2 vs 1"),
        (lambda: m.roc_auc([0, 1], [0.2, 1.3]), FlareseqError, r"probabilities in \[0, 1\]"),
        (lambda: m.roc_auc([0, 1], [0.2]), FlareseqError, r"shape \(2,\)"),
        (lambda: m.choose_threshold([0, 1], [0.2, 0.3], "auc"), ConfigError, "one of"),
        (lambda: m.brier_skill_score([0, 1], [0.2, 0.3], 1.5), ConfigError, "climatology"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
