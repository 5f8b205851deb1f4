"""Baselines every comparison includes (SPEC section 3), as cores a FlareClassifier trains.

* ``climatology``: always forecasts the training event rate. Its TSS is 0 and its Brier
  skill score is 0 by definition: the floor a model must clear.
* ``logistic-last`` and ``gboost-last``: logistic regression and gradient boosting on the
  *last time step's* features. On real keyword series the most recent values carry most of
  the signal, and this is the strongest simple baseline we know of.
* ``logistic-summary`` and ``gboost-summary``: the same on per-sample summary statistics of
  each series (last value, mean, standard deviation, minimum, maximum, least-squares slope).

A baseline is used like any model: ``FlareClassifier("logistic-last")``. The classifier
prepares its inputs (missing values, scaling), chooses the threshold and calibrates; a
baseline core only maps prepared sequences ``(n, T, F)`` to event probabilities. Fitted
state is plain arrays, saved as ``.npz`` without pickles (gradient boosting's trees too, and
evaluated with NumPy). Gradient boosting stops early on the caller's validation part (split by
region when the data has regions), never on a random share of training samples: windows of
one region would be on both sides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from flareseq.errors import ConfigError

SUMMARY_STATISTICS = ("last", "mean", "std", "min", "max", "slope")


def summary_statistics(X: np.ndarray) -> np.ndarray:
    """Per-sample summary features ``(n, 6 F)``: for each series, in the order of
    :data:`SUMMARY_STATISTICS` (feature-major: all statistics of series 0 first).

    ``slope`` is the least-squares slope per time step, ``sum((t - t_mean)(x - x_mean)) /
    sum((t - t_mean)^2)``; 0 for a single step.
    """
    X = np.asarray(X, dtype=np.float64)
    n, T, _ = X.shape
    t = np.arange(T, dtype=np.float64) - (T - 1) / 2.0
    denominator = float((t * t).sum())
    mean = X.mean(axis=1)
    slope = np.einsum("t,ntf->nf", t, X) / denominator if denominator else np.zeros_like(mean)
    stats = [X[:, -1], mean, X.std(axis=1), X.min(axis=1), X.max(axis=1), slope]  # each (n, F)
    return np.stack(stats, axis=2).reshape(n, -1)


def summary_feature_names(feature_names: Sequence[str]) -> list[str]:
    """Names of :func:`summary_statistics`'s columns, e.g. ``USFLUX_slope``."""
    return [f"{name}_{stat}" for name in feature_names for stat in SUMMARY_STATISTICS]


def last_step(X: np.ndarray) -> np.ndarray:
    """The last time step's features ``(n, F)``."""
    return np.asarray(X[:, -1, :], dtype=np.float64)


FEATURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"summary": summary_statistics, "last": last_step}


class Baseline:
    """A baseline core: ``fit(X, y, X_val, y_val)`` on prepared arrays, ``predict_positive(X)``,
    and its fitted state as arrays (``state()`` / ``load_state()``)."""

    kind = ""
    params: dict

    def __init__(self, **params) -> None:
        unknown = sorted(set(params) - set(self.defaults()))
        if unknown:
            raise ConfigError(f"baseline {self.kind!r} has no parameter(s) {unknown}; it takes "
                              f"{sorted(self.defaults())}.")
        self.params = {**self.defaults(), **params}

    @classmethod
    def defaults(cls) -> dict:
        return {}

    def fit(self, X, y, X_val=None, y_val=None) -> Baseline:
        raise NotImplementedError

    def predict_positive(self, X) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def load_state(self, arrays) -> None:
        raise NotImplementedError


class Climatology(Baseline):
    """Always forecasts the training event rate (the reference forecast of the BSS)."""

    kind = "climatology"

    def fit(self, X, y, X_val=None, y_val=None) -> Climatology:
        self.rate_ = float(np.mean(y))
        return self

    def predict_positive(self, X) -> np.ndarray:
        return np.full(len(X), self.rate_)

    def state(self) -> dict[str, np.ndarray]:
        return {"rate": np.array([self.rate_])}

    def load_state(self, a) -> None:
        self.rate_ = float(a["rate"][0])


class Logistic(Baseline):
    """Standardised features -> L2 logistic regression (scikit-learn, lbfgs).

    ``class_weight="balanced"`` by default: without it the rare flaring class is ignored.
    """

    features = "summary"

    @classmethod
    def defaults(cls) -> dict:
        return {"C": 1.0, "class_weight": "balanced", "max_iter": 2000}

    def fit(self, X, y, X_val=None, y_val=None) -> Logistic:
        from sklearn.linear_model import LogisticRegression

        Z = FEATURES[self.features](X)
        self.mean_ = Z.mean(axis=0)
        std = Z.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        clf = LogisticRegression(C=self.params["C"], class_weight=self.params["class_weight"] or None,
                                 max_iter=self.params["max_iter"])
        clf.fit((Z - self.mean_) / self.scale_, y)
        self.coef_ = clf.coef_.ravel().copy()
        self.intercept_ = float(clf.intercept_[0])
        return self

    def predict_positive(self, X) -> np.ndarray:
        z = ((FEATURES[self.features](X) - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        return 1.0 / (1.0 + np.exp(-z))

    def state(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean_, "scale": self.scale_, "coef": self.coef_, "intercept": np.array([self.intercept_])}

    def load_state(self, a) -> None:
        self.mean_, self.scale_, self.coef_ = a["mean"], a["scale"], a["coef"]
        self.intercept_ = float(a["intercept"][0])


_TREE_FIELDS = ("value", "feature_idx", "num_threshold", "missing_go_to_left", "left", "right", "is_leaf")


class GradientBoosting(Baseline):
    """Features -> histogram gradient boosting (scikit-learn), trees kept as plain arrays.

    With validation data it stops when the validation loss has not improved for
    ``n_iter_no_change`` iterations (on the caller's split, by region); without, it runs
    ``max_iter`` iterations.
    """

    features = "summary"

    @classmethod
    def defaults(cls) -> dict:
        return {"learning_rate": 0.1, "max_iter": 200, "max_leaf_nodes": 31, "l2_regularization": 0.0,
                "class_weight": "balanced", "n_iter_no_change": 10, "random_state": 0}

    def fit(self, X, y, X_val=None, y_val=None) -> GradientBoosting:
        from sklearn.ensemble import HistGradientBoostingClassifier

        features = FEATURES[self.features]
        has_val = X_val is not None and y_val is not None and len(np.unique(y_val)) == 2
        p = self.params
        clf = HistGradientBoostingClassifier(
            learning_rate=p["learning_rate"], max_iter=p["max_iter"], max_leaf_nodes=p["max_leaf_nodes"],
            l2_regularization=p["l2_regularization"], class_weight=p["class_weight"] or None,
            early_stopping=has_val, n_iter_no_change=p["n_iter_no_change"], random_state=p["random_state"],
        )
        if has_val:
            clf.fit(features(X), y, X_val=features(X_val), y_val=y_val)
        else:
            clf.fit(features(X), y)
        trees = [predictors[0].nodes for predictors in clf._predictors]
        self.tree_offsets_ = np.cumsum([0] + [len(t) for t in trees]).astype(np.int64)
        nodes = np.concatenate(trees)
        self.nodes_ = {name: np.ascontiguousarray(nodes[name]) for name in _TREE_FIELDS}
        self.baseline_ = float(np.ravel(clf._baseline_prediction)[0])
        self.n_iter_ = int(clf.n_iter_)
        return self

    def predict_positive(self, X) -> np.ndarray:
        Z = FEATURES[self.features](X)
        raw = np.full(len(Z), self.baseline_)
        rows = np.arange(len(Z))
        nodes = self.nodes_
        for start in self.tree_offsets_[:-1]:
            node = np.zeros(len(Z), dtype=np.int64)
            while True:
                leaf = nodes["is_leaf"][start + node].astype(bool)
                if leaf.all():
                    break
                at = start + node
                x = Z[rows, nodes["feature_idx"][at]]
                go_left = np.where(np.isnan(x), nodes["missing_go_to_left"][at].astype(bool),
                                   x <= nodes["num_threshold"][at])
                step = np.where(go_left, nodes["left"][at], nodes["right"][at]).astype(np.int64)
                node = np.where(leaf, node, step)
            raw += nodes["value"][start + node]
        return 1.0 / (1.0 + np.exp(-raw))

    def state(self) -> dict[str, np.ndarray]:
        return {**{f"node_{k}": v for k, v in self.nodes_.items()}, "tree_offsets": self.tree_offsets_,
                "baseline": np.array([self.baseline_])}

    def load_state(self, a) -> None:
        self.nodes_ = {k: a[f"node_{k}"] for k in _TREE_FIELDS}
        self.tree_offsets_ = a["tree_offsets"]
        self.baseline_ = float(a["baseline"][0])


def _variant(base: type[Baseline], kind: str, features: str) -> type[Baseline]:
    return type(base.__name__ + features.title(), (base,), {"kind": kind, "features": features,
                                                             "__doc__": f"{base.__doc__} On {features} features."})


BASELINES: dict[str, type[Baseline]] = {
    "climatology": Climatology,
    "logistic-last": _variant(Logistic, "logistic-last", "last"),
    "logistic-summary": _variant(Logistic, "logistic-summary", "summary"),
    "gboost-last": _variant(GradientBoosting, "gboost-last", "last"),
    "gboost-summary": _variant(GradientBoosting, "gboost-summary", "summary"),
}
"""Baseline cores by name; every comparison of models includes them."""

def make_baseline_core(name: str, params: dict | None = None, *, random_state: int = 0) -> Baseline:
    """A new (unfitted) baseline core by registry name."""
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; choose one of {list(BASELINES)}.")
    klass = BASELINES[name]
    params = dict(params or {})
    if "random_state" in klass.defaults():
        params.setdefault("random_state", random_state)
    return klass(**params)


__all__ = ["BASELINES", "Baseline", "SUMMARY_STATISTICS", "summary_statistics",
           "summary_feature_names", "last_step", "make_baseline_core"]
