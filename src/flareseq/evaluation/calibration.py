"""Probability calibration, fitted on validation data: Platt scaling and isotonic regression.

Training with class weights (the study's {0: 1, 1: 5}, or "balanced") or with balanced
sampling tells the model that flares are several times commoner than they are, so its
probabilities are inflated: they rank and threshold well but are not forecasts. A calibrator
maps them back to observed frequencies. It is fitted on the *validation* part (never on test)
and saved as plain JSON with the forecaster, so ``flareseq predict`` and the MLflow model use it.

- :class:`PlattCalibrator` (Platt 1999): a logistic regression on the logit of the model's
  probability, with Platt's smoothed targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)`` so
  that a small validation part cannot push probabilities to exactly 0 or 1. Two numbers;
  strictly monotone, so it changes no ranking (ROC-AUC and PR-AUC are unchanged).
- :class:`IsotonicCalibrator` (Zadrozny & Elkan 2002): the monotone step function closest to
  the validation labels (scikit-learn's ``IsotonicRegression``), kept as its breakpoints and
  evaluated by linear interpolation between them, as scikit-learn does. More flexible, needs
  more validation events, and ties scores within a step.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from flareseq.errors import ConfigError, FlareseqError

CALIBRATION_METHODS = ("platt", "isotonic")
_EPS = 1e-7  # probabilities are clipped to [eps, 1 - eps] before the logit


def _inputs(y, p, *, need_labels: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1:
        raise FlareseqError(f"probabilities must be 1-D (n_samples,), got shape {p.shape}.")
    if p.size and (not np.isfinite(p).all() or p.min() < 0 or p.max() > 1):
        raise FlareseqError("probabilities must lie in [0, 1] (no NaN).")
    if not need_labels:
        return None, p
    y = np.asarray(y)
    if y.shape != p.shape:
        raise FlareseqError(f"labels {y.shape} and probabilities {p.shape} differ in shape.")
    if not np.isin(y, (0, 1)).all():
        raise FlareseqError("calibration labels must be 0 or 1; drop unlabelled (-1) samples first.")
    n_pos = int((y == 1).sum())
    if n_pos == 0 or n_pos == y.size:
        raise FlareseqError(
            f"calibration needs both flaring and quiet samples in the validation part; it has {n_pos} of {y.size} "
            "positive. Give the split a larger validation share (more regions), or set training.calibration = ''."
        )
    return y.astype(np.float64), p


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _EPS, 1 - _EPS)
    return np.log(q) - np.log1p(-q)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) without overflow for large |z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _log_loss(z: np.ndarray, target: np.ndarray) -> float:
    # -t log s(z) - (1 - t) log(1 - s(z)) = log(1 + e^z) - t z, evaluated stably.
    return float(np.sum(np.logaddexp(0.0, z) - target * z))


class PlattCalibrator:
    """``sigmoid(slope * logit(p) + intercept)``, fitted by Newton's method with a
    backtracking line search on the log loss (Lin, Lin & Weng 2007: plain Newton steps can
    diverge when the validation scores nearly separate the classes)."""

    method = "platt"

    def __init__(self, slope: float = 1.0, intercept: float = 0.0) -> None:
        self.slope = float(slope)
        self.intercept = float(intercept)

    def fit(self, y, p, *, max_iter: int = 100) -> PlattCalibrator:
        y, p = _inputs(y, p)
        n_pos = y.sum()
        n_neg = y.size - n_pos
        target = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
        X = np.column_stack([_logit(p), np.ones_like(p)])
        w = np.array([1.0, 0.0])  # start at the identity map
        loss = _log_loss(X @ w, target)
        for _ in range(max_iter):
            q = _sigmoid(X @ w)
            gradient = X.T @ (q - target)
            # A tiny ridge keeps the Hessian invertible when the scores barely vary.
            hessian = X.T @ (X * (q * (1 - q))[:, None]) + 1e-9 * np.eye(2)
            step = np.linalg.solve(hessian, gradient)
            decrease = float(gradient @ step)
            if decrease < 1e-12 * max(1.0, abs(loss)):
                break
            size = 1.0
            while size > 1e-10:  # backtrack until the loss falls enough (Armijo)
                trial = _log_loss(X @ (w - size * step), target)
                if trial <= loss - 1e-4 * size * decrease:
                    break
                size /= 2
            else:
                break
            w, loss = w - size * step, trial
        self.slope, self.intercept = float(w[0]), float(w[1])
        return self

    def transform(self, p) -> np.ndarray:
        _, p = _inputs(None, p, need_labels=False)
        return _sigmoid(self.slope * _logit(p) + self.intercept)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "slope": self.slope, "intercept": self.intercept}

    def __repr__(self) -> str:
        return f"PlattCalibrator(slope={self.slope:.4g}, intercept={self.intercept:.4g})"


class IsotonicCalibrator:
    """A non-decreasing map through breakpoints ``(x, y)``, linear between them, constant
    beyond them."""

    method = "isotonic"

    def __init__(self, x=(), y=()) -> None:
        self.x = np.asarray(x, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)

    def fit(self, y, p) -> IsotonicCalibrator:
        from sklearn.isotonic import IsotonicRegression

        y, p = _inputs(y, p)
        model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(p, y)
        self.x = np.asarray(model.X_thresholds_, dtype=np.float64)
        self.y = np.asarray(model.y_thresholds_, dtype=np.float64)
        return self

    def transform(self, p) -> np.ndarray:
        _, p = _inputs(None, p, need_labels=False)
        if self.x.size == 0:
            raise FlareseqError("this isotonic calibrator has not been fitted.")
        return np.interp(p, self.x, self.y)

    def to_dict(self) -> dict[str, Any]:
        # Python's float repr round-trips exactly, so a loaded calibrator gives identical output.
        return {"method": self.method, "x": self.x.tolist(), "y": self.y.tolist()}

    def __repr__(self) -> str:
        return f"IsotonicCalibrator({self.x.size} breakpoints)"


Calibrator = PlattCalibrator | IsotonicCalibrator


def fit_calibrator(method: str, y_val, p_val) -> Calibrator:
    """A calibrator of ``method`` ("platt" or "isotonic") fitted on validation labels and
    the model's validation probabilities (never test data)."""
    if method == "platt":
        return PlattCalibrator().fit(y_val, p_val)
    if method == "isotonic":
        return IsotonicCalibrator().fit(y_val, p_val)
    raise ConfigError(f"training.calibration must be '' (none) or one of {list(CALIBRATION_METHODS)}, got {method!r}.")


def calibrator_from_dict(state: Mapping[str, Any], *, where: str = "calibration") -> Calibrator:
    """The calibrator :meth:`to_dict` described."""
    method = state.get("method")
    try:
        if method == "platt":
            return PlattCalibrator(state["slope"], state["intercept"])
        if method == "isotonic":
            calibrator = IsotonicCalibrator(state["x"], state["y"])
            if calibrator.x.shape != calibrator.y.shape or calibrator.x.size == 0:
                raise FlareseqError(f"{where}: isotonic breakpoints x and y must be non-empty lists of one length.")
            return calibrator
    except KeyError as exc:
        raise FlareseqError(f"{where}: a {method} calibrator needs the field {exc.args[0]!r}.") from None
    raise FlareseqError(f"{where}: unknown calibration method {method!r}; expected one of {list(CALIBRATION_METHODS)}.")


def save_calibrator(calibrator: Calibrator, path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(calibrator.to_dict(), handle)


def load_calibrator(path) -> Calibrator:
    with open(path, encoding="utf-8") as handle:
        return calibrator_from_dict(json.load(handle), where=str(path))


__all__ = ["CALIBRATION_METHODS", "PlattCalibrator", "IsotonicCalibrator", "Calibrator", "fit_calibrator",
           "calibrator_from_dict", "save_calibrator", "load_calibrator"]
