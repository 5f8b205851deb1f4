"""The one fitted preparation of a model's inputs: feature order, missing values, scaling.

A :class:`Preparation` is fitted on the training data only and saved with the model, so that
predicting on new data repeats exactly what fitting saw: the features are taken by name in
the training order, missing values are filled (linear interpolation in time within a sample,
then the training median of the feature), and the series are scaled (z-score with the
training mean and standard deviation, optionally after a signed log). A model never sees NaN.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from flareseq.data.dataset import FlareDataset, check_3d
from flareseq.errors import ConfigError, FlareseqError, NotFittedError
from flareseq.prep.missing import MissingValues
from flareseq.prep.scaling import Scaler
from flareseq.prep.streaming import FIT_BLOCK, PreparationStats

SCALERS = ("zscore", "signed-log", "none")
# rows checked for non-finite values at a time: a mask of a 1.2 GB array would cost 300 MB more
_CHECK_ROWS = 8192


class Preparation:
    """Feature order, missing-value fill and scaling, fitted on training data.

    Parameters
    ----------
    scaler : ``"zscore"`` (per feature, over all samples and steps of the training data),
        ``"signed-log"`` (``sign(x) log(1 + |x|)``, then z-score: for heavy-tailed SHARP
        totals), or ``"none"``.

    Attributes
    ----------
    feature_names_ : the training features, in order (``f0, f1, ...`` for plain arrays).
    n_timesteps_ : the training sequence length.
    missing_ : the fitted fill (:class:`~flareseq.prep.missing.MissingValues`).
    scaler_ : the fitted :class:`~flareseq.prep.scaling.Scaler`, or ``None``.
    """

    def __init__(self, scaler: str = "zscore") -> None:
        if scaler not in SCALERS:
            raise ConfigError(f"scaler must be one of {list(SCALERS)}, got {scaler!r}.")
        self.scaler = scaler

    def fit(self, X, feature_names: Sequence[str] | None = None) -> Preparation:
        """Fit on training samples: a :class:`FlareDataset` or an array ``(n, T, F)``.

        The array is read in blocks of :data:`~flareseq.prep.streaming.FIT_BLOCK` samples, as
        :meth:`fit_blocks` reads a store: both give the same statistics, and neither holds a
        filled or scaled copy of the whole training set.
        """
        X, names = _values(X, feature_names)
        blocks = (X[start : start + FIT_BLOCK] for start in range(0, len(X), FIT_BLOCK))
        return self.fit_blocks(blocks, n_samples=len(X), feature_names=names, n_timesteps=X.shape[1])

    def fit_blocks(self, blocks: Iterable[np.ndarray], *, n_samples: int, feature_names: Sequence[str],
                   n_timesteps: int) -> Preparation:
        """Fit in one pass over the training samples given as consecutive float32 blocks
        ``(b, T, F)`` (e.g. read from a store), ``n_samples`` in all, in bounded memory.

        Cut into blocks of :data:`~flareseq.prep.streaming.FIT_BLOCK` samples (the last may
        be shorter) they give exactly the floats of :meth:`fit` on the whole array.
        """
        names = tuple(feature_names)
        stats = PreparationStats(names, n_timesteps, n_samples, signed_log=self.scaler == "signed-log")
        for block in blocks:
            block = check_values(block)
            check_no_infinity(block, names, first_sample=stats.n_added)
            stats.add(block)
        self.missing_, self.scaler_ = stats.result(scale=self.scaler != "none")
        self.feature_names_ = names
        self.n_timesteps_ = int(n_timesteps)
        return self

    def transform(self, X, *, name: str = "X") -> np.ndarray:
        """The model's input: float32 ``(n, T, F)``, features in training order, no NaN.

        A :class:`FlareDataset` is matched by feature name (extra features are ignored, a
        missing one is an error); a plain array must have the training features in order.
        """
        if not hasattr(self, "feature_names_"):
            raise NotFittedError("this Preparation is not fitted yet; call fit(training data) first.")
        if isinstance(X, FlareDataset):
            absent = [f for f in self.feature_names_ if f not in X.feature_names]
            if absent:
                raise FlareseqError(f"{name} lacks feature(s) {absent} that the model was trained on; it has "
                                    f"{list(X.feature_names)}.")
            if tuple(X.feature_names) != self.feature_names_:
                X = X.select_features(list(self.feature_names_))
            X = X.X
        X = check_values(X, name=name)
        if X.shape[2] != len(self.feature_names_):
            raise FlareseqError(f"{name} has {X.shape[2]} features, but the model was fitted on "
                                f"{len(self.feature_names_)}; pass the same features in the same order as in fit.")
        if X.shape[1] != self.n_timesteps_:
            raise FlareseqError(f"{name} has sequences of {X.shape[1]} steps, but the model was trained on "
                                f"{self.n_timesteps_}.")
        check_no_infinity(X, self.feature_names_, name=name)
        out = self.missing_.transform(X)
        if self.scaler_ is not None:
            out = self.scaler_.transform(out)
        return np.ascontiguousarray(out, dtype=np.float32)

    def fit_transform(self, X, feature_names: Sequence[str] | None = None) -> np.ndarray:
        return self.fit(X, feature_names).transform(X)

    # -- persistence ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        if not hasattr(self, "feature_names_"):
            raise NotFittedError("this Preparation is not fitted yet; nothing to save.")
        return {"scaler": self.scaler, "feature_names": list(self.feature_names_), "n_timesteps": self.n_timesteps_,
                "missing": self.missing_.to_dict(),
                "scaling": None if self.scaler_ is None else self.scaler_.to_dict()}

    @classmethod
    def from_dict(cls, state: dict) -> Preparation:
        prep = cls(state["scaler"])
        prep.feature_names_ = tuple(state["feature_names"])
        prep.n_timesteps_ = int(state["n_timesteps"])
        prep.missing_ = MissingValues.from_dict(state["missing"])
        prep.scaler_ = None if state["scaling"] is None else Scaler.from_dict(state["scaling"])
        if len(prep.missing_.feature_names_) != len(prep.feature_names_):
            raise FlareseqError("the saved preparation's fill and features disagree; the model folder is damaged.")
        return prep


def _values(X, feature_names) -> tuple[np.ndarray, tuple[str, ...]]:
    if isinstance(X, FlareDataset):
        return check_values(X.X), tuple(X.feature_names)
    X = check_values(X)
    names = tuple(feature_names) if feature_names is not None else tuple(f"f{i}" for i in range(X.shape[2]))
    if len(names) != X.shape[2]:
        raise FlareseqError(f"{len(names)} feature names for {X.shape[2]} features.")
    return X, names


def check_values(X, *, name: str = "X") -> np.ndarray:
    """``X`` as a numeric 3-D float array (NaN allowed: it marks a missing value)."""
    X = np.asarray(X)
    if X.ndim != 3:
        hint = " Reshape a single sample with X[None]." if X.ndim == 2 else ""
        raise FlareseqError(
            f"{name} must be 3-dimensional (n_samples, n_timesteps, n_features), got shape {X.shape}.{hint}")
    if not np.issubdtype(X.dtype, np.number):
        raise FlareseqError(f"{name} must be numeric, got dtype {X.dtype}.")
    return check_3d(X.astype(np.float32, copy=False))


def check_no_infinity(X: np.ndarray, feature_names: Sequence[str], *, name: str = "X", first_sample: int = 0) -> None:
    """Raise, naming the first position, when ``X`` holds infinite values (NaN is allowed: it
    marks a missing value); ``first_sample``: the number of ``X[0]`` in the whole data."""
    n_bad_values = n_bad_samples = 0
    first = None
    for start in range(0, len(X), _CHECK_ROWS):
        bad = np.isinf(X[start:start + _CHECK_ROWS])
        if bad.any():
            n_bad_values += int(bad.sum())
            n_bad_samples += int(bad.any(axis=(1, 2)).sum())
            if first is None:
                s, t, f = np.argwhere(bad)[0]
                first = (start + s, t, f)
    if first is not None:
        s, t, f = first
        raise FlareseqError(
            f"{name} holds {n_bad_values} infinite value(s) in {n_bad_samples} sample(s), the first at sample "
            f"{first_sample + s}, "
            f"step {t}, feature {feature_names[f]} (found {X[s, t, f]}); expected finite values or NaN for a missing "
            "value (filled as in training). Replace the infinities with NaN, or drop those samples.")


__all__ = ["Preparation", "SCALERS", "check_values", "check_no_infinity"]
