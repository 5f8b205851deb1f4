"""The dataset container every reader returns and every model consumes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from flareseq.data.schema import META_COLUMNS, UNLABELLED
from flareseq.errors import FlareseqError


@dataclass(frozen=True, eq=False)
class FlareDataset:
    """Labelled (or unlabelled) multivariate time series, one sequence per sample.

    Attributes
    ----------
    X : float32 array ``(n_samples, n_timesteps, n_features)``; NaN marks a missing value.
    y : int8 array ``(n_samples,)`` with 1 for a flaring sample, 0 otherwise and
        ``UNLABELLED`` (-1) where the label is unknown; ``None`` when no sample has a label.
    ids : string array ``(n_samples,)``; the source's own sample ids (Kaggle ``id``, SWAN-SF
        file name), unique within a source.
    feature_names : the names of the ``n_features`` series, in column order.
    meta : DataFrame with ``n_samples`` rows and at least :data:`META_COLUMNS`: ``source``
        (file), ``fold`` (fold or partition number), ``region`` (HARP/TARP number),
        ``start``/``end`` (window), ``goes_class`` (largest class after the window).
    aux : per-step series kept beside the features but never used as features (SWAN-SF's
        location, quality and flare bookkeeping columns): name -> array ``(n_samples,
        n_timesteps)``.
    """

    X: np.ndarray
    y: np.ndarray | None
    ids: np.ndarray
    feature_names: tuple[str, ...]
    meta: pd.DataFrame
    aux: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        X = self.X
        if X.ndim != 3:
            raise FlareseqError(
                f"X must be 3-dimensional (n_samples, n_timesteps, n_features), got shape {X.shape}."
            )
        if X.dtype != np.float32:
            raise FlareseqError(f"X must be float32, got {X.dtype}; convert with X.astype(np.float32).")
        n = X.shape[0]
        if len(self.feature_names) != X.shape[2]:
            raise FlareseqError(
                f"{len(self.feature_names)} feature names for {X.shape[2]} features in X."
            )
        if self.y is not None:
            if self.y.shape != (n,):
                raise FlareseqError(f"y must have shape ({n},), got {self.y.shape}.")
            bad = ~np.isin(self.y, (0, 1, UNLABELLED))
            if bad.any():
                raise FlareseqError(
                    f"y must hold 0, 1 or {UNLABELLED} (unlabelled), found {np.unique(self.y[bad])[:5]}."
                )
        if self.ids.shape != (n,):
            raise FlareseqError(f"ids must have shape ({n},), got {self.ids.shape}.")
        if len(self.meta) != n:
            raise FlareseqError(f"meta must have {n} rows, got {len(self.meta)}.")
        missing = [c for c in META_COLUMNS if c not in self.meta.columns]
        if missing:
            raise FlareseqError(f"meta lacks the columns {missing}.")
        for name, values in self.aux.items():
            if values.shape[:2] != X.shape[:2]:
                raise FlareseqError(f"aux series {name!r} has shape {values.shape}, expected {X.shape[:2]}.")

    # -- sizes -------------------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_timesteps(self) -> int:
        return self.X.shape[1]

    @property
    def n_features(self) -> int:
        return self.X.shape[2]

    @property
    def n_positive(self) -> int:
        return 0 if self.y is None else int((self.y == 1).sum())

    @property
    def n_unlabelled(self) -> int:
        return self.n_samples if self.y is None else int((self.y == UNLABELLED).sum())

    @property
    def n_missing_values(self) -> int:
        return int(np.isnan(self.X).sum())

    @property
    def is_labelled(self) -> bool:
        """True when every sample has a label."""
        return self.y is not None and self.n_unlabelled == 0

    def __len__(self) -> int:
        return self.n_samples

    def __repr__(self) -> str:
        return (
            f"FlareDataset(n_samples={self.n_samples}, n_timesteps={self.n_timesteps}, "
            f"n_features={self.n_features}, n_positive={self.n_positive}, "
            f"n_unlabelled={self.n_unlabelled})"
        )

    # -- selection ---------------------------------------------------------------------
    def subset(self, index: np.ndarray | Sequence[int] | slice) -> FlareDataset:
        """The samples at ``index`` (integer positions, a boolean mask or a slice)."""
        if isinstance(index, slice):
            positions = np.arange(self.n_samples)[index]
        else:
            positions = np.asarray(index)
            if positions.dtype == bool:
                positions = np.flatnonzero(positions)
        return FlareDataset(
            X=self.X[positions],
            y=None if self.y is None else self.y[positions],
            ids=self.ids[positions],
            feature_names=self.feature_names,
            meta=self.meta.iloc[positions].reset_index(drop=True),
            aux={k: v[positions] for k, v in self.aux.items()},
        )

    def select_features(self, names: Sequence[str]) -> FlareDataset:
        """The same samples with only the named features, in the given order."""
        unknown = [n for n in names if n not in self.feature_names]
        if unknown:
            raise FlareseqError(
                f"unknown feature(s) {unknown}; this dataset has {list(self.feature_names)}."
            )
        columns = [self.feature_names.index(n) for n in names]
        return FlareDataset(
            X=np.ascontiguousarray(self.X[:, :, columns]),
            y=self.y,
            ids=self.ids,
            feature_names=tuple(names),
            meta=self.meta,
            aux=self.aux,
        )

    def with_X(self, X: np.ndarray) -> FlareDataset:
        """The same samples and labels with new values (same shape), e.g. after scaling."""
        return FlareDataset(X=X, y=self.y, ids=self.ids, feature_names=self.feature_names,
                            meta=self.meta, aux=self.aux)

    def labelled(self) -> FlareDataset:
        """The samples whose label is known."""
        if self.y is None:
            return self.subset(np.zeros(self.n_samples, dtype=bool))
        return self.subset(self.y != UNLABELLED)


def empty_meta(n: int) -> pd.DataFrame:
    """A metadata frame of ``n`` rows with every column unknown."""
    return pd.DataFrame(
        {
            "source": pd.Series([None] * n, dtype="string"),
            "fold": pd.Series([pd.NA] * n, dtype="Int64"),
            "region": pd.Series([None] * n, dtype="string"),
            "start": pd.Series([pd.NaT] * n, dtype="datetime64[ns]"),
            "end": pd.Series([pd.NaT] * n, dtype="datetime64[ns]"),
            "goes_class": pd.Series([None] * n, dtype="string"),
        }
    )


def concat_datasets(datasets: Sequence[FlareDataset]) -> FlareDataset:
    """Samples of several datasets, in order; their features and lengths must match."""
    if not datasets:
        raise FlareseqError("nothing to concatenate: no datasets given.")
    first = datasets[0]
    for other in datasets[1:]:
        if other.feature_names != first.feature_names or other.n_timesteps != first.n_timesteps:
            raise FlareseqError(
                "cannot concatenate datasets with different features or lengths: "
                f"{first.n_timesteps} steps of {list(first.feature_names)} vs "
                f"{other.n_timesteps} steps of {list(other.feature_names)}."
            )
    if all(d.y is None for d in datasets):
        y = None
    else:
        y = np.concatenate(
            [d.y if d.y is not None else np.full(d.n_samples, UNLABELLED, np.int8) for d in datasets]
        ).astype(np.int8)
    aux_names = set.intersection(*(set(d.aux) for d in datasets))
    return FlareDataset(
        X=np.concatenate([d.X for d in datasets]),
        y=y,
        ids=np.concatenate([d.ids for d in datasets]),
        feature_names=first.feature_names,
        meta=pd.concat([d.meta for d in datasets], ignore_index=True),
        aux={k: np.concatenate([d.aux[k] for d in datasets]) for k in sorted(aux_names)},
    )


def check_3d(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 3:
        raise FlareseqError(
            f"expected a 3-dimensional array (n_samples, n_timesteps, n_features), got shape {X.shape}."
        )
    return X
