"""Baselines: summary statistics, what each baseline learns, the registry, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from flareseq.errors import ConfigError, FlareseqError
from flareseq.evaluation import metrics
from flareseq.training.baselines import (
    BASELINES,
    SUMMARY_STATISTICS,
    SummaryGradientBoosting,
    load_baseline,
    make_baseline,
    summary_feature_names,
    summary_statistics,
)


def _trend_data(n=300, seed=0):
    """Flaring samples have a rising series 1; the last value alone does not separate them."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(np.int8)
    t = np.arange(12)
    slope = np.where(y == 1, 0.3, -0.3)[:, None] + 0.1 * rng.normal(size=(n, 1))
    X = rng.normal(size=(n, 12, 2)) * 0.5
    X[:, :, 1] += slope * (t - 11)  # all samples end near 0
    return X.astype(np.float32), y


def test_summary_statistics_of_a_ramp():
    X = np.stack([np.arange(5.0) * 2 + 1, np.full(5, 3.0)], axis=1)[None]  # (1, 5, 2)
    Z = summary_statistics(X).reshape(2, len(SUMMARY_STATISTICS))
    np.testing.assert_allclose(Z[0], [9.0, 5.0, np.std([1, 3, 5, 7, 9]), 1.0, 9.0, 2.0])
    np.testing.assert_allclose(Z[1], [3.0, 3.0, 0.0, 3.0, 3.0, 0.0])
    assert summary_feature_names(["A", "B"])[:2] == ["A_last", "A_mean"]
    assert summary_feature_names(["A", "B"])[-1] == "B_slope"
    assert summary_statistics(np.ones((3, 1, 2))).shape == (3, 12)


def test_climatology_forecasts_the_training_rate():
    X, y = _trend_data()
    clim = make_baseline("climatology").fit(X, y)
    p = clim.predict_proba(X[:10])[:, 1]
    np.testing.assert_allclose(p, y.mean())
    scores = clim.scores(X, y)
    assert scores["tss"] == 0.0
    assert scores["bss"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", ["logistic-summary", "gboost-summary"])
def test_summary_models_find_the_trend(name):
    X, y = _trend_data()
    Xt, yt = _trend_data(seed=1)
    params = {"max_iter": 30} if name == "gboost-summary" else {}
    model = make_baseline(name, threshold_metric="tss", **params).fit(X, y, X_val=X, y_val=y)
    assert model.score(Xt, yt) > 0.8
    assert model.scores(Xt, yt)["bss"] > 0.3


def test_numpy_tree_evaluation_equals_sklearn():
    X, y = _trend_data()
    X[:, 3, 0] = np.where(np.arange(len(X)) % 2, X[:, 3, 0], 0.0)
    ours = SummaryGradientBoosting(max_iter=15, random_state=3).fit(X, y)
    reference = HistGradientBoostingClassifier(max_iter=15, random_state=3, class_weight="balanced").fit(
        summary_statistics(X), y)
    np.testing.assert_allclose(ours.predict_proba(X), reference.predict_proba(summary_statistics(X)), atol=1e-12)


def test_registry_and_errors(tmp_path):
    assert list(BASELINES) == ["climatology", "logistic-summary", "gboost-summary"]
    with pytest.raises(ConfigError, match=r"unknown baseline 'knn'; choose one of \['climatology'"):
        make_baseline("knn")
    X, y = _trend_data(n=40)
    make_baseline("climatology").fit(X, y).save(tmp_path)
    assert type(load_baseline(tmp_path)).__name__ == "ClimatologyClassifier"
    with pytest.raises(FlareseqError, match="holds a ClimatologyClassifier, not a SummaryGradientBoosting"):
        SummaryGradientBoosting.load(tmp_path)


def test_threshold_tuning_beats_default_on_rare_events():
    X, y = _trend_data()
    tuned = make_baseline("logistic-summary", class_weight=None, threshold_metric="tss").fit(X, y, X_val=X, y_val=y)
    fixed = make_baseline("logistic-summary", class_weight=None).fit(X, y)
    assert metrics.true_skill_statistic(y, tuned.predict(X)) >= metrics.true_skill_statistic(y, fixed.predict(X))
