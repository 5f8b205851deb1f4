"""A stacked ensemble: logistic regression on the logits of fitted models, fit on validation.

Two forecasters that err differently (a sequence model and logistic regression on the last
step) can be combined into one that is better than either; the weights must come from data
neither was trained on, which is the validation part (Wolpert 1992, "Stacked
generalization"). The stack's inputs are the members' logits, ``log(p / (1 - p))``, so with a
single member it is Platt scaling of that member, and its output is a probability calibrated
on the validation part.

Fitting the stack and choosing its decision threshold on the same validation forecasts would
score the stack on what it was fitted to. :func:`cross_fitted_probabilities` gives
out-of-sample validation forecasts instead: the validation regions are split into groups,
and each group is forecast by a stack fitted on the others.
"""

from __future__ import annotations

import numpy as np

from flareseq.errors import FlareseqError

_EPS = 1e-7


def logits(P: np.ndarray) -> np.ndarray:
    """``log(p / (1 - p))`` of probabilities, clipped away from 0 and 1 (finite)."""
    P = np.clip(np.asarray(P, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(P) - np.log1p(-P)


class LogitStack:
    """``p = sigmoid(a . logit(P) + b)`` fitted by (lightly L2-penalised) logistic regression.

    Parameters
    ----------
    C : inverse L2 strength of scikit-learn's LogisticRegression (large: nearly unpenalised).
    """

    def __init__(self, C: float = 100.0) -> None:
        self.C = C

    def fit(self, P: np.ndarray, y: np.ndarray) -> LogitStack:
        """Fit on members' validation probabilities ``P (n, m)`` and labels ``y (n,)``."""
        from sklearn.linear_model import LogisticRegression

        P, y = np.asarray(P), np.asarray(y)
        if P.ndim != 2 or len(P) != len(y):
            raise FlareseqError(f"LogitStack.fit expects probabilities (n, members) and labels (n,), got {P.shape} "
                                f"and {y.shape}.")
        if len(np.unique(y)) < 2:
            raise FlareseqError("LogitStack.fit needs both classes in the validation labels; got only "
                                f"{np.unique(y).tolist()}.")
        model = LogisticRegression(C=self.C, max_iter=2000).fit(logits(P), y)
        self.coef_ = model.coef_.ravel().copy()
        self.intercept_ = float(model.intercept_[0])
        return self

    def predict_proba(self, P: np.ndarray) -> np.ndarray:
        """The stack's event probabilities for members' probabilities ``P (n, m)``."""
        if not hasattr(self, "coef_"):
            raise FlareseqError("this LogitStack is not fitted yet; call fit(P_val, y_val) first.")
        z = logits(P) @ self.coef_ + self.intercept_
        return 1.0 / (1.0 + np.exp(-z))


def cross_fitted_probabilities(P: np.ndarray, y: np.ndarray, groups: np.ndarray, *, n_splits: int = 5,
                               random_state: int = 0, C: float = 100.0) -> np.ndarray:
    """Out-of-sample stack forecasts of validation samples: the groups (regions) are dealt
    into ``n_splits`` parts and each part is forecast by a stack fitted on the rest. A part
    whose complement holds one class only gets the stack fitted on all samples."""
    P, y = np.asarray(P), np.asarray(y)
    _, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    part_of_group = np.random.default_rng(random_state).permutation(n_groups) % max(1, min(n_splits, n_groups))
    part = part_of_group[codes]
    out = np.empty(len(y), dtype=np.float64)
    full = None
    for k in np.unique(part):
        held = part == k
        if len(np.unique(y[~held])) == 2:
            out[held] = LogitStack(C).fit(P[~held], y[~held]).predict_proba(P[held])
        else:
            full = full or LogitStack(C).fit(P, y)
            out[held] = full.predict_proba(P[held])
    return out


__all__ = ["LogitStack", "cross_fitted_probabilities", "logits"]
