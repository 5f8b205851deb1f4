"""The contract every estimator keeps (FlareClassifier on a model and on each baseline), one
parametrized suite.

scikit-learn's own ``check_estimator`` is not used: it feeds 2-D tabular data, and these
estimators take 3-D sequences (n_samples, n_timesteps, n_features) by design. What it would
check that applies to 3-D input is checked here.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from flareseq.errors import ConfigError, FlareseqError, NotFittedError
from flareseq.evaluation import metrics
from flareseq.training.baselines import BASELINES
from flareseq.training.estimator import FlareClassifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY_NET = {"hidden_size": 4, "dropout": 0.1, "recurrent_dropout": 0.1}
# tiny test parameters; no validation-based choices, which test_threshold_chosen_on_validation_data checks
FIXED = {"threshold_metric": "", "early_stopping": False, "progress": False}
ESTIMATORS = {
    "FlareClassifier": lambda: FlareClassifier("lstm", TINY_NET, epochs=2, batch_size=16, **FIXED),
    **{name: (lambda name=name: FlareClassifier(name, {"max_iter": 10} if name.startswith("gboost") else None,
                                                **FIXED)) for name in BASELINES},
}


def _load(name, path):
    return FlareClassifier.load(path, device="cpu")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 6, 3)).astype(np.float32)
    y = (X[:, -2:, 0].mean(axis=1) + 0.3 * rng.normal(size=80) > 0.4).astype(np.int8)
    return X, y


@pytest.fixture(scope="module", params=list(ESTIMATORS))
def fitted(request, data):
    X, y = data
    estimator = ESTIMATORS[request.param]()
    returned = estimator.fit(X, y)
    return request.param, estimator, returned


def test_init_stores_only_and_clone_works(fitted):
    name, _, _ = fitted
    estimator = ESTIMATORS[name]()
    assert not [k for k in vars(estimator) if k.endswith("_")]
    cloned = clone(estimator)
    assert cloned.get_params() == estimator.get_params()
    key = next(iter(estimator.get_params()))
    assert cloned.set_params(**{key: estimator.get_params()[key]}) is cloned


def test_fit_returns_self(fitted):
    _, estimator, returned = fitted
    assert returned is estimator


def test_unfitted_use_raises_not_fitted(fitted, data, tmp_path):
    name, _, _ = fitted
    estimator = ESTIMATORS[name]()
    for call in (lambda: estimator.predict_proba(data[0]), lambda: estimator.predict(data[0]),
                 lambda: estimator.save(tmp_path / "x")):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            call()


def test_predictions(fitted, data):
    _, estimator, _ = fitted
    X, y = data
    proba = estimator.predict_proba(X)
    assert proba.shape == (80, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert ((proba >= 0) & (proba <= 1)).all()
    predicted = estimator.predict(X)
    np.testing.assert_array_equal(predicted, (proba[:, 1] >= estimator.threshold_).astype(np.int8))
    assert estimator.score(X, y) == metrics.true_skill_statistic(y, predicted)
    scores = estimator.scores(X, y)
    assert scores["tss"] == estimator.score(X, y)
    assert scores["event_rate"] == pytest.approx(y.mean())


def test_same_random_state_same_probabilities(fitted, data):
    name, estimator, _ = fitted
    X, y = data
    again = ESTIMATORS[name]().fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X), estimator.predict_proba(X))


def test_save_load_round_trip(fitted, data, tmp_path):
    name, estimator, _ = fitted
    estimator.save(tmp_path / "saved")
    loaded = _load(name, tmp_path / "saved")
    np.testing.assert_allclose(loaded.predict_proba(data[0]), estimator.predict_proba(data[0]), rtol=0, atol=1e-12)
    assert loaded.threshold_ == estimator.threshold_
    assert loaded.get_params() == {**estimator.get_params(), "device": "cpu"}


def test_threshold_chosen_on_validation_data(fitted, data):
    name, _, _ = fitted
    X, y = data
    estimator = ESTIMATORS[name]().set_params(threshold_metric="tss")
    with pytest.raises(ConfigError, match="need validation data: pass X_val and y_val to fit"):
        estimator.fit(X, y)
    estimator.fit(X[:60], y[:60], X_val=X[60:], y_val=y[60:])
    assert estimator.threshold_ == metrics.choose_threshold(y[60:], estimator.predict_proba(X[60:])[:, 1], "tss")


def test_defaults_need_validation_data(fitted, data):
    """The one set of defaults chooses the threshold on validation data (and stops early on it)."""
    name, _, _ = fitted
    X, y = data
    with pytest.raises(ConfigError, match="threshold_metric='tss'"):
        FlareClassifier(name, progress=False).fit(X, y)


def test_missing_values_are_filled_as_in_training(fitted, data):
    _, estimator, _ = fitted
    X, _ = data
    holed = X.copy()
    holed[:, 2, :] = np.nan
    p = estimator.predict_proba(holed)
    assert np.isfinite(p).all()
    # the fill is the saved preparation's: interpolation in time between steps 1 and 3
    filled = X.copy()
    filled[:, 2, :] = (X[:, 1, :] + X[:, 3, :]) / 2
    np.testing.assert_allclose(p, estimator.predict_proba(filled), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda X, y: (X[:, :, 0], y), r"must be 3-dimensional \(n_samples, n_timesteps, n_features\), got shape \(80, 6\)"),
        (lambda X, y: (np.where(np.arange(6)[None, :, None] == 4, np.inf, X), y),
         r"infinite value\(s\) in 80 sample\(s\), the first at sample 0, step 4, feature f0"),
        (lambda X, y: (X, np.where(np.arange(80) == 3, -1, y)), r"only 0 and 1, found \[-1\] at 1 position"),
        (lambda X, y: (X, y[:-1]), r"y must have shape \(80,\) to match X, got \(79,\)"),
    ],
)
def test_bad_fit_input_is_a_clear_error(fitted, data, mutate, match):
    name, _, _ = fitted
    X, y = mutate(*data)
    with pytest.raises(FlareseqError, match=match):
        ESTIMATORS[name]().fit(X, y)


def test_wrong_feature_count_at_predict(fitted, data):
    _, estimator, _ = fitted
    with pytest.raises(FlareseqError, match="X has 4 features, but the model was fitted on 3"):
        estimator.predict_proba(np.zeros((2, 6, 4), dtype=np.float32))
