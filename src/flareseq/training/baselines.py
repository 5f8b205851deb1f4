"""Baselines every comparison includes (SPEC section 3), behind FlareClassifier's interface.

* ``climatology``: always forecasts the training event rate. Its TSS is 0 and its Brier
  skill score is 0 by definition: the floor a model must clear.
* ``logistic-summary`` and ``gboost-summary``: logistic regression and gradient boosting on
  per-sample summary statistics of each series (last value, mean, standard deviation,
  minimum, maximum, least-squares slope). Such models reach TSS ~0.85 on SWAN-SF; a
  sequence model that does not beat them has not earned its cost.

All share ``fit(X, y, *, X_val=None, y_val=None)``, ``predict_proba``, ``predict``
(``threshold`` or ``threshold_metric`` chosen on validation data), ``score`` (TSS),
``scores`` and ``save``/``load`` (JSON and ``.npz`` without pickles).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator

from flareseq.errors import ConfigError, FlareseqError, NotFittedError
from flareseq.training.estimator import (
    ThresholdedClassifierMixin,
    _split_dataset,
    check_X,
    check_y,
)

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


class _Baseline(ThresholdedClassifierMixin, BaseEstimator):
    """Input checks, threshold and persistence shared by the baselines."""

    kind = ""

    def fit(self, X, y=None, *, X_val=None, y_val=None):
        X, y, names = _split_dataset(X, y)
        X = check_X(X, feature_names=names)
        y = check_y(y, len(X))
        if X_val is not None or y_val is not None:
            X_val, y_val, _ = _split_dataset(X_val, y_val)
            X_val = check_X(X_val, name="X_val", n_features=X.shape[2], feature_names=names)
            y_val = check_y(y_val, len(X_val), name="y_val")
        self.n_features_in_ = X.shape[2]
        self.feature_names_in_ = names
        self.base_rate_ = float(y.mean())
        self.classes_ = np.array([0, 1])
        self._fit(X, y)
        self.threshold_ = self._choose_threshold(X_val, y_val)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities ``(n, 2)``: column 0 no flare, column 1 flare."""
        if not hasattr(self, "base_rate_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) first.")
        X, _, _ = _split_dataset(X, None)
        X = check_X(X, n_features=self.n_features_in_, feature_names=self.feature_names_in_)
        p = np.clip(self._predict_positive(X), 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    def save(self, path: str | PathLike[str]) -> Path:
        """Write ``config.json`` (and ``arrays.npz`` where needed) into the folder ``path``."""
        if not hasattr(self, "base_rate_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; nothing to save.")
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = self._state_arrays()
        config = {
            "format": "flareseq-baseline", "kind": self.kind, "params": self.get_params(),
            "threshold": self.threshold_, "base_rate": self.base_rate_, "n_features": self.n_features_in_,
            "feature_names": None if self.feature_names_in_ is None else list(self.feature_names_in_),
        }
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        np.savez(folder / "arrays.npz", **arrays)
        return folder

    @classmethod
    def load(cls, path: str | PathLike[str]):
        """A fitted baseline from a folder written by :meth:`save`."""
        folder = Path(path)
        config = json.loads((folder / "config.json").read_text())
        if config.get("format") != "flareseq-baseline" or config.get("kind") not in BASELINES:
            raise FlareseqError(
                f"{folder / 'config.json'}: expected a saved baseline, found format {config.get('format')!r} "
                f"kind {config.get('kind')!r}."
            )
        klass = BASELINES[config["kind"]]
        if cls is not _Baseline and klass is not cls:
            raise FlareseqError(f"{folder} holds a {klass.__name__}, not a {cls.__name__}.")
        params = config["params"]
        if isinstance(params.get("class_weight"), dict):
            params["class_weight"] = {int(k): v for k, v in params["class_weight"].items()}
        model = klass(**params)
        with np.load(folder / "arrays.npz", allow_pickle=False) as data:
            model._load_state_arrays({k: data[k] for k in data.files})
        model.threshold_ = float(config["threshold"])
        model.base_rate_ = float(config["base_rate"])
        model.n_features_in_ = int(config["n_features"])
        names = config["feature_names"]
        model.feature_names_in_ = None if names is None else tuple(names)
        model.classes_ = np.array([0, 1])
        return model


class ClimatologyClassifier(_Baseline):
    """Always forecasts the training event rate (the reference forecast of the BSS)."""

    kind = "climatology"

    def __init__(self, *, threshold: float = 0.5, threshold_metric: str | None = None) -> None:
        self.threshold = threshold
        self.threshold_metric = threshold_metric

    def _fit(self, X, y) -> None:
        pass

    def _predict_positive(self, X) -> np.ndarray:
        return np.full(len(X), self.base_rate_)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _load_state_arrays(self, arrays) -> None:
        pass


class SummaryLogisticRegression(_Baseline):
    """Standardised summary statistics -> L2 logistic regression (scikit-learn, lbfgs).

    ``class_weight="balanced"`` by default: without it the rare flaring class is ignored and
    the 0.5 threshold forecasts almost no events.
    """

    kind = "logistic-summary"

    def __init__(self, *, C: float = 1.0, class_weight="balanced", max_iter: int = 2000,
                 threshold: float = 0.5, threshold_metric: str | None = None) -> None:
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.threshold = threshold
        self.threshold_metric = threshold_metric

    def _fit(self, X, y) -> None:
        from sklearn.linear_model import LogisticRegression

        Z = summary_statistics(X)
        self.mean_ = Z.mean(axis=0)
        std = Z.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        clf = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=self.max_iter)
        clf.fit((Z - self.mean_) / self.scale_, y)
        self.coef_ = clf.coef_.ravel().copy()
        self.intercept_ = float(clf.intercept_[0])

    def _predict_positive(self, X) -> np.ndarray:
        z = ((summary_statistics(X) - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        return 1.0 / (1.0 + np.exp(-z))

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean_, "scale": self.scale_, "coef": self.coef_, "intercept": np.array([self.intercept_])}

    def _load_state_arrays(self, a) -> None:
        self.mean_, self.scale_, self.coef_ = a["mean"], a["scale"], a["coef"]
        self.intercept_ = float(a["intercept"][0])


_TREE_FIELDS = ("value", "feature_idx", "num_threshold", "missing_go_to_left", "left", "right", "is_leaf")


class SummaryGradientBoosting(_Baseline):
    """Summary statistics -> histogram gradient boosting (scikit-learn).

    The fitted trees are kept as plain arrays (``value, feature_idx, num_threshold,
    missing_go_to_left, left, right, is_leaf`` per node) and evaluated with NumPy, so a saved
    model loads without unpickling scikit-learn objects.
    """

    kind = "gboost-summary"

    def __init__(self, *, learning_rate: float = 0.1, max_iter: int = 200, max_leaf_nodes: int = 31,
                 l2_regularization: float = 0.0, class_weight="balanced", early_stopping="auto",
                 random_state: int = 0, threshold: float = 0.5, threshold_metric: str | None = None) -> None:
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.l2_regularization = l2_regularization
        self.class_weight = class_weight
        self.early_stopping = early_stopping
        self.random_state = random_state
        self.threshold = threshold
        self.threshold_metric = threshold_metric

    def _fit(self, X, y) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier

        clf = HistGradientBoostingClassifier(
            learning_rate=self.learning_rate, max_iter=self.max_iter, max_leaf_nodes=self.max_leaf_nodes,
            l2_regularization=self.l2_regularization, class_weight=self.class_weight,
            early_stopping=self.early_stopping, random_state=self.random_state,
        )
        clf.fit(summary_statistics(X), y)
        trees = [predictors[0].nodes for predictors in clf._predictors]
        self.tree_offsets_ = np.cumsum([0] + [len(t) for t in trees]).astype(np.int64)
        nodes = np.concatenate(trees)
        self.nodes_ = {name: np.ascontiguousarray(nodes[name]) for name in _TREE_FIELDS}
        self.baseline_ = float(np.ravel(clf._baseline_prediction)[0])

    def _predict_positive(self, X) -> np.ndarray:
        Z = summary_statistics(X)
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

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {**{f"node_{k}": v for k, v in self.nodes_.items()}, "tree_offsets": self.tree_offsets_,
                "baseline": np.array([self.baseline_])}

    def _load_state_arrays(self, a) -> None:
        self.nodes_ = {k: a[f"node_{k}"] for k in _TREE_FIELDS}
        self.tree_offsets_ = a["tree_offsets"]
        self.baseline_ = float(a["baseline"][0])


BASELINES: dict[str, Callable[..., _Baseline]] = {
    ClimatologyClassifier.kind: ClimatologyClassifier,
    SummaryLogisticRegression.kind: SummaryLogisticRegression,
    SummaryGradientBoosting.kind: SummaryGradientBoosting,
}
"""Baselines by name; every comparison of models should include them."""


def make_baseline(name: str, **params) -> _Baseline:
    """A new (unfitted) baseline by registry name."""
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; choose one of {list(BASELINES)}.")
    return BASELINES[name](**params)


def load_baseline(path: str | PathLike[str]) -> _Baseline:
    """Any saved baseline (its kind is read from ``config.json``)."""
    return _Baseline.load(path)
