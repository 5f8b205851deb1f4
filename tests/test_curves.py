"""The curve primitive and the 2x2 scores: brute force, weights as repetition, scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from flareseq.evaluation import curves


@st.composite
def forecasts(draw):
    n = draw(st.integers(1, 40))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), dtype=np.int8)
    # few distinct values, so that ties are common
    p = np.array(draw(st.lists(st.sampled_from([0.0, 0.1, 0.3, 0.3, 0.5, 0.9, 1.0]), min_size=n, max_size=n)))
    w = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), dtype=np.float64)
    return y, p, w


@settings(max_examples=120, deadline=None)
@given(forecasts())
def test_counts_equal_brute_force_at_every_distinct_score(data):
    y, p, _ = data
    c = curves.counts_by_threshold(y, p)
    assert np.array_equal(c.thresholds, np.unique(p)[::-1])
    for k, t in enumerate(c.thresholds):
        assert c.tp[k] == np.sum((p >= t) & (y == 1)) and c.fp[k] == np.sum((p >= t) & (y == 0))
    assert c.n_pos == y.sum() and c.n_neg == (y == 0).sum()


@settings(max_examples=120, deadline=None)
@given(forecasts())
def test_weights_equal_repeating_samples(data):
    y, p, w = data
    repeat = w.astype(int)
    weighted = curves.counts_by_threshold(y, p, weights=np.stack([w, np.ones_like(w)]))
    repeated = curves.counts_by_threshold(np.repeat(y, repeat), np.repeat(p, repeat))
    for score in (curves.roc_area, curves.average_precision_area):
        assert np.allclose(score(weighted)[0], score(repeated), equal_nan=True)
    assert np.allclose(curves.roc_area(weighted)[1], curves.roc_area(curves.counts_by_threshold(y, p)),
                       equal_nan=True)


@settings(max_examples=120, deadline=None)
@given(forecasts())
def test_areas_equal_scikit_learn(data):
    y, p, _ = data
    c = curves.counts_by_threshold(y, p)
    if 0 < y.sum() < y.size:
        assert curves.roc_area(c) == pytest.approx(skm.roc_auc_score(y, p))
    else:
        assert np.isnan(curves.roc_area(c))
    if y.sum():
        assert curves.average_precision_area(c) == pytest.approx(skm.average_precision_score(y, p))


def test_table_scores_vectorise_and_mark_undefined_values():
    tp, fp, fn, tn = np.array([30, 0]), np.array([10, 0]), np.array([20, 0]), np.array([140, 5])
    tss = curves.true_skill_statistic(tp, fp, fn, tn)
    assert tss[0] == pytest.approx(0.6 - 10 / 150) and np.isnan(tss[1])  # no events: undefined
    hss = curves.heidke_skill_score(tp, fp, fn, tn)
    assert hss[0] == pytest.approx(2 * (30 * 140 - 20 * 10) / (50 * 160 + 40 * 150))
    assert curves.brier_skill(0.5, 1.0) == 0.5 and np.isnan(curves.brier_skill(0.1, 0.0))
