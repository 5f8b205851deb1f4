"""Per-feature scaling fitted on training data only: z-score, optionally after a signed log."""

from __future__ import annotations

import json
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np

from flareseq.data.dataset import check_3d
from flareseq.errors import ConfigError, FlareseqError, NotFittedError


def signed_log(x: np.ndarray) -> np.ndarray:
    """``sign(x) * log1p(|x|)``: compresses heavy tails (SHARP totals span ~20 decades) while
    keeping the sign and staying defined at zero."""
    return np.sign(x) * np.log1p(np.abs(x))


class Scaler:
    """Per-feature z-score, optionally after a signed log, fitted on training data only.

    Parameters
    ----------
    signed_log : ``False`` (none), ``True`` (every feature) or the names of the features to
        transform with :func:`signed_log` before standardising.
    with_std : divide by the standard deviation (``False`` only centres).

    The statistics are taken over all samples and time steps of the training split,
    ignoring NaN; a constant feature gets a scale of 1 so it maps to zero, not to NaN.
    """

    def __init__(self, *, signed_log: bool | Sequence[str] = False, with_std: bool = True) -> None:
        self.signed_log = signed_log if isinstance(signed_log, bool) else tuple(signed_log)
        self.with_std = with_std

    # -- fitting -----------------------------------------------------------------------
    def fit(self, X: np.ndarray, feature_names: Sequence[str] | None = None) -> Scaler:
        X = check_3d(X)
        names = tuple(feature_names) if feature_names is not None else tuple(
            f"f{i}" for i in range(X.shape[2])
        )
        if len(names) != X.shape[2]:
            raise FlareseqError(f"{len(names)} feature names for {X.shape[2]} features.")
        self.feature_names_ = names
        self.log_mask_ = self._log_mask(names)
        flat = self._log(X).reshape(-1, X.shape[2]).astype(np.float64)
        with np.errstate(all="ignore"):
            mean = np.nanmean(flat, axis=0)
            std = np.nanstd(flat, axis=0)
        if np.isnan(mean).any():
            empty = [n for n, m in zip(names, mean) if np.isnan(m)]
            raise FlareseqError(
                f"cannot fit the scaler: feature(s) {empty} have no finite value in the training data."
            )
        self.mean_ = mean
        self.scale_ = np.where(std > 0, std, 1.0) if self.with_std else np.ones_like(std)
        return self

    @classmethod
    def from_moments(cls, feature_names: Sequence[str], mean: np.ndarray, std: np.ndarray, *,
                     signed_log: bool | Sequence[str] = False) -> Scaler:
        """A fitted scaler from per-feature means and (population) standard deviations taken
        elsewhere, e.g. block by block (:mod:`flareseq.prep.streaming`)."""
        scaler = cls(signed_log=signed_log)
        scaler.feature_names_ = tuple(feature_names)
        scaler.log_mask_ = scaler._log_mask(scaler.feature_names_)
        scaler.mean_ = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        scaler.scale_ = np.where(std > 0, std, 1.0)
        return scaler

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scaled float32 copy of ``X`` ``(n, T, F)``; NaN stays NaN."""
        self._check_fitted()
        X = check_3d(X)
        if X.shape[2] != len(self.mean_):
            raise FlareseqError(
                f"X has {X.shape[2]} features, but the scaler was fitted on {len(self.mean_)} "
                f"({list(self.feature_names_)})."
            )
        out = self._log(X).astype(np.float32, copy=True)
        out -= self.mean_.astype(np.float32)
        out /= self.scale_.astype(np.float32)
        return out

    def fit_transform(self, X: np.ndarray, feature_names: Sequence[str] | None = None) -> np.ndarray:
        return self.fit(X, feature_names).transform(X)

    # -- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict:
        self._check_fitted()
        return {
            "kind": "zscore",
            "signed_log": self.signed_log if isinstance(self.signed_log, bool) else list(self.signed_log),
            "with_std": self.with_std,
            "feature_names": list(self.feature_names_),
            "log_mask": [bool(v) for v in self.log_mask_],
            "mean": [float(v) for v in self.mean_],
            "scale": [float(v) for v in self.scale_],
        }

    @classmethod
    def from_dict(cls, state: dict) -> Scaler:
        if state.get("kind") != "zscore":
            raise ConfigError(f"unknown scaler kind {state.get('kind')!r}; expected 'zscore'.")
        scaler = cls(signed_log=state["signed_log"], with_std=state["with_std"])
        scaler.feature_names_ = tuple(state["feature_names"])
        scaler.log_mask_ = np.asarray(state["log_mask"], dtype=bool)
        scaler.mean_ = np.asarray(state["mean"], dtype=np.float64)
        scaler.scale_ = np.asarray(state["scale"], dtype=np.float64)
        return scaler

    def save(self, path: str | PathLike[str]) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | PathLike[str]) -> Scaler:
        return cls.from_dict(json.loads(Path(path).read_text()))

    # -- helpers -----------------------------------------------------------------------
    def _log_mask(self, names: tuple[str, ...]) -> np.ndarray:
        if isinstance(self.signed_log, bool):
            return np.full(len(names), self.signed_log)
        unknown = [n for n in self.signed_log if n not in names]
        if unknown:
            raise ConfigError(f"signed_log names unknown feature(s) {unknown}; features are {list(names)}.")
        return np.array([n in self.signed_log for n in names])

    def _log(self, X: np.ndarray) -> np.ndarray:
        if not self.log_mask_.any():
            return X
        out = X.astype(np.float64, copy=True)
        out[:, :, self.log_mask_] = signed_log(out[:, :, self.log_mask_])
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "mean_"):
            raise NotFittedError("this Scaler is not fitted yet; call fit(X_train) first.")
