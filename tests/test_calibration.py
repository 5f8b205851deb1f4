"""Platt and isotonic calibration fitted on validation, saved as JSON (flareseq.evaluation.calibration)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flareseq.errors import ConfigError, FlareseqError
from flareseq.evaluation import metrics
from flareseq.evaluation.calibration import (
    IsotonicCalibrator,
    PlattCalibrator,
    calibrator_from_dict,
    fit_calibrator,
    load_calibrator,
    save_calibrator,
)


def inflated(n, seed):
    """Labels drawn from true probabilities, and a model's probabilities whose odds are 5x
    too high -- what a {0: 1, 1: 5} class weight does to a well-trained model."""
    rng = np.random.default_rng(seed)
    true = 1 / (1 + np.exp(-rng.normal(-3.5, 1.5, n)))
    y = (rng.random(n) < true).astype(int)
    odds = 5 * true / (1 - true)
    return y, odds / (1 + odds)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_fitted_on_validation_repairs_inflated_probabilities_on_test(method):
    y_val, p_val = inflated(4000, seed=0)
    y_test, p_test = inflated(4000, seed=1)
    calibrator = fit_calibrator(method, y_val, p_val)
    after = calibrator.transform(p_test)
    climatology = y_val.mean()
    before_bss = metrics.brier_skill_score(y_test, p_test, climatology)
    after_bss = metrics.brier_skill_score(y_test, after, climatology)
    assert before_bss < 0 < after_bss  # inflated forecasts lose to climatology; calibrated ones beat it
    assert abs(after.mean() - y_test.mean()) < 0.01 < p_test.mean() - y_test.mean()


def test_platt_recovers_the_odds_factor_and_keeps_the_ranking():
    y, p = inflated(20000, seed=2)
    platt = PlattCalibrator().fit(y, p)
    assert platt.slope == pytest.approx(1.0, abs=0.1)
    assert platt.intercept == pytest.approx(-np.log(5), abs=0.25)
    assert metrics.roc_auc(y, platt.transform(p)) == pytest.approx(metrics.roc_auc(y, p), abs=1e-12)


def test_isotonic_matches_scikit_learn():
    from sklearn.isotonic import IsotonicRegression

    y, p = inflated(3000, seed=3)
    mine = IsotonicCalibrator().fit(y, p)
    theirs = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p, y)
    grid = np.r_[0.0, np.linspace(0, 1, 501), 1.0, p[:50]]
    np.testing.assert_allclose(mine.transform(grid), theirs.predict(grid), atol=1e-12)
    assert np.all(np.diff(mine.transform(np.linspace(0, 1, 101))) >= 0)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_saved_as_json_and_loaded_gives_identical_output(method, tmp_path):
    y, p = inflated(2000, seed=4)
    calibrator = fit_calibrator(method, y, p)
    path = tmp_path / "calibration.json"
    save_calibrator(calibrator, path)
    assert json.loads(path.read_text())["method"] == method  # plain JSON, no pickle
    again = load_calibrator(path)
    np.testing.assert_array_equal(again.transform(p), calibrator.transform(p))


@pytest.mark.parametrize(("call", "match", "error"), [
    (lambda: fit_calibrator("beta", [0, 1], [0.2, 0.8]), r"training.calibration must be '' \(none\) or one of", ConfigError),
    (lambda: fit_calibrator("platt", [0, 0, 0], [0.1, 0.2, 0.3]), "needs both flaring and quiet samples.*0 of 3",
     FlareseqError),
    (lambda: fit_calibrator("isotonic", [0, 1], [0.2, 1.5]), r"must lie in \[0, 1\]", FlareseqError),
    (lambda: fit_calibrator("platt", [0, -1], [0.2, 0.5]), "must be 0 or 1", FlareseqError),
    (lambda: calibrator_from_dict({"method": "platt", "slope": 1.0}), "needs the field 'intercept'", FlareseqError),
    (lambda: calibrator_from_dict({"method": "isotonic", "x": [0.1], "y": []}), "non-empty lists of one length",
     FlareseqError),
    (lambda: calibrator_from_dict({"method": "?"}), "unknown calibration method", FlareseqError),
])
def test_calibration_errors_say_what_to_do(call, match, error):
    with pytest.raises(error, match=match):
        call()


def test_platt_converges_without_overflow_on_separable_validation_scores():
    import warnings

    y = np.r_[np.zeros(200), np.ones(8)].astype(int)
    p = np.r_[np.full(200, 0.0), np.full(8, 1.0)]  # saturated scores that separate the classes
    p[:20] = 0.3  # and a few quiet samples in between
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in exp would be an error here
        platt = PlattCalibrator().fit(y, p)
        out = platt.transform(np.r_[p, 0.5, 1e-300])
    assert np.isfinite(out).all() and np.isfinite([platt.slope, platt.intercept]).all()
    assert out[-3] > out[0] > out[20]  # the ranking is kept: flaring > in between > quiet
    # Platt's smoothed targets keep the flaring samples below certainty, (8 + 1) / (8 + 2) at most.
    assert out[200] < 0.95
