"""Seeded sampling of samples and folds (the study sampled 0.3 / 0.1 / 0.05 of folds 1 / 2 / 3)."""

from __future__ import annotations

import numpy as np

from flareseq.data.schema import UNLABELLED
from flareseq.errors import ConfigError

# The study's sampling (SPEC section 2): split name -> (fold, fraction).
STUDY_SAMPLING: dict[str, tuple[int, float]] = {"train": (1, 0.3), "validation": (2, 0.1), "test": (3, 0.05)}


def sample_fraction(dataset, fraction: float, *, stratify: bool = False, random_state: int = 0):
    """A seeded random ``fraction`` of a dataset's samples, in their original order.

    With ``stratify`` each label (0, 1, unlabelled) keeps its share: ``round(fraction * n)``
    samples are drawn from each class separately.
    """
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"a sampling fraction must be in (0, 1], got {fraction}.")
    n = dataset.n_samples
    rng = np.random.default_rng(random_state)
    if fraction == 1.0:
        return dataset
    if stratify and dataset.y is not None:
        chosen = []
        for label in (0, 1, UNLABELLED):
            members = np.flatnonzero(dataset.y == label)
            k = int(round(fraction * members.size))
            chosen.append(rng.choice(members, size=k, replace=False))
        index = np.sort(np.concatenate(chosen))
    else:
        index = np.sort(rng.choice(n, size=int(round(fraction * n)), replace=False))
    return dataset.subset(index)


def sample_folds(dataset, sampling: dict[str, tuple[int, float]] | None = None, *, stratify: bool = False,
                 random_state: int = 0) -> dict:
    """Split by fold and sample each split: ``{name: (fold, fraction)}``, by default the
    study's 0.3 of fold 1 (train), 0.1 of fold 2 (validation) and 0.05 of fold 3 (test).

    Each split gets its own seeded stream (``random_state`` plus the split's position), so
    changing one fraction does not change the other splits' samples.
    """
    sampling = STUDY_SAMPLING if sampling is None else sampling
    folds = dataset.meta["fold"]
    out = {}
    for k, (name, (fold, fraction)) in enumerate(sampling.items()):
        mask = (folds == fold).fillna(False).to_numpy(bool)
        if not mask.any():
            present = sorted(int(f) for f in folds.dropna().unique())
            raise ConfigError(f"split {name!r} asks for fold {fold}, but the data has folds {present}.")
        out[name] = sample_fraction(dataset.subset(mask), fraction, stratify=stratify,
                                    random_state=random_state + k)
    return out
