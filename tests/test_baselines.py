"""Baselines: their features, what each learns, the registry, and that they train through the
same FlareClassifier (preparation, threshold, persistence) as every model."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from flareseq.errors import ConfigError
from flareseq.evaluation import metrics
from flareseq.experiments.config import DEFAULT_BASELINES
from flareseq.training.baselines import (
    BASELINES,
    SUMMARY_STATISTICS,
    last_step,
    make_baseline_core,
    summary_feature_names,
    summary_statistics,
)
from flareseq.training.estimator import FlareClassifier, make_baseline


def _trend_data(n=300, seed=0):
    """Flaring samples have a rising series 1; the last value alone does not separate them."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(np.int8)
    t = np.arange(12)
    slope = np.where(y == 1, 0.3, -0.3)[:, None] + 0.1 * rng.normal(size=(n, 1))
    X = rng.normal(size=(n, 12, 2)) * 0.5
    X[:, :, 1] += slope * (t - 11)  # all samples end near 0
    return X.astype(np.float32), y


def _level_data(n=300, seed=0):
    """Flaring samples end high on series 0; the summaries dilute it over 12 noisy steps."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(np.int8)
    X = rng.normal(size=(n, 12, 2)).astype(np.float32)
    X[:, -1, 0] += 2.5 * y
    return X, y


def test_summary_statistics_of_a_ramp_and_the_last_step():
    X = np.stack([np.arange(5.0) * 2 + 1, np.full(5, 3.0)], axis=1)[None]  # (1, 5, 2)
    Z = summary_statistics(X).reshape(2, len(SUMMARY_STATISTICS))
    np.testing.assert_allclose(Z[0], [9.0, 5.0, np.std([1, 3, 5, 7, 9]), 1.0, 9.0, 2.0])
    np.testing.assert_allclose(Z[1], [3.0, 3.0, 0.0, 3.0, 3.0, 0.0])
    assert summary_feature_names(["A", "B"])[:2] == ["A_last", "A_mean"]
    assert summary_feature_names(["A", "B"])[-1] == "B_slope"
    assert summary_statistics(np.ones((3, 1, 2))).shape == (3, 12)
    np.testing.assert_array_equal(last_step(X), [[9.0, 3.0]])


def test_climatology_forecasts_the_training_rate():
    X, y = _trend_data()
    clim = make_baseline("climatology").fit(X, y, X_val=X, y_val=y)
    np.testing.assert_allclose(clim.predict_proba(X[:10])[:, 1], y.mean())
    scores = clim.scores(X, y)
    assert scores["tss"] == 0.0 and scores["bss"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", ["logistic-summary", "gboost-summary"])
def test_summary_models_find_the_trend(name):
    X, y = _trend_data()
    Xt, yt = _trend_data(seed=1)
    model = make_baseline(name, **({"max_iter": 30} if name.startswith("gboost") else {}))
    model.fit(X, y, X_val=X, y_val=y)
    assert model.score(Xt, yt) > 0.8
    assert model.scores(Xt, yt)["bss"] > 0.3


def test_last_step_baseline_finds_a_last_step_signal_that_summaries_dilute():
    X, y = _level_data()
    Xv, yv = _level_data(seed=1)
    Xt, yt = _level_data(seed=2)
    last = make_baseline("logistic-last").fit(X, y, X_val=Xv, y_val=yv)
    summary = make_baseline("logistic-summary").fit(X, y, X_val=Xv, y_val=yv)
    assert last.score(Xt, yt) > 0.6  # the Bayes-optimal TSS at 2.5 sd of separation is 0.79
    assert metrics.average_precision(yt, last.predict_proba(Xt)[:, 1]) > metrics.average_precision(
        yt, summary.predict_proba(Xt)[:, 1])


def test_numpy_tree_evaluation_equals_sklearn():
    X, y = _trend_data()
    X[:, 3, 0] = np.where(np.arange(len(X)) % 2, X[:, 3, 0], 0.0)
    ours = make_baseline_core("gboost-summary", {"max_iter": 15, "random_state": 3}).fit(X, y)
    reference = HistGradientBoostingClassifier(max_iter=15, random_state=3, class_weight="balanced",
                                               early_stopping=False).fit(summary_statistics(X), y)
    np.testing.assert_allclose(ours.predict_positive(X), reference.predict_proba(summary_statistics(X))[:, 1],
                               atol=1e-12)


def test_gradient_boosting_stops_on_the_given_validation_part_only():
    """Never on a random share of training samples (windows of one region on both sides)."""
    X, y = _trend_data(n=400)
    without = make_baseline_core("gboost-last", {"max_iter": 60}).fit(X, y)
    assert without.n_iter_ == 60  # no validation part given: no internal split, every iteration
    Xv, yv = _trend_data(n=200, seed=5)
    stopped = make_baseline_core("gboost-last", {"max_iter": 60, "n_iter_no_change": 3}).fit(X, y, Xv, yv)
    assert stopped.n_iter_ < 60


def test_registry_defaults_and_errors(tmp_path):
    assert list(BASELINES) == ["climatology", "logistic-last", "logistic-summary", "gboost-last", "gboost-summary"]
    assert set(DEFAULT_BASELINES) <= set(BASELINES)
    with pytest.raises(ConfigError, match=r"unknown baseline 'knn'; choose one of \['climatology'"):
        make_baseline("knn")
    with pytest.raises(ConfigError, match=r"has no parameter\(s\) \['depth'\]"):
        make_baseline("logistic-last", depth=3).fit(*_trend_data(n=40), X_val=_trend_data(n=40)[0],
                                                    y_val=_trend_data(n=40)[1])
    X, y = _trend_data(n=40)
    make_baseline("logistic-last").fit(X, y, X_val=X, y_val=y).save(tmp_path)
    loaded = FlareClassifier.load(tmp_path)
    assert loaded.model == "logistic-last" and type(loaded.model_).kind == "logistic-last"
    np.testing.assert_array_equal(loaded.predict_proba(X), make_baseline("logistic-last").fit(
        X, y, X_val=X, y_val=y).predict_proba(X))


def test_threshold_tuning_beats_default_on_rare_events():
    X, y = _trend_data()
    tuned = make_baseline("logistic-summary", class_weight=None).fit(X, y, X_val=X, y_val=y)
    fixed = FlareClassifier("logistic-summary", {"class_weight": None}, threshold_metric="").fit(X, y)
    assert metrics.true_skill_statistic(y, tuned.predict(X)) >= metrics.true_skill_statistic(y, fixed.predict(X))
