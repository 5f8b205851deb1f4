"""The figures of ``flareseq summary``: sample and class counts, the proportion chance criterion."""

from __future__ import annotations

import numpy as np


def class_counts(y: np.ndarray | None) -> dict[int, int]:
    """Samples per label among the labelled ones (``{0: n0, 1: n1}``)."""
    if y is None:
        return {0: 0, 1: 0}
    y = np.asarray(y)
    return {0: int((y == 0).sum()), 1: int((y == 1).sum())}


def pcc(y: np.ndarray | None) -> float | None:
    """Proportion chance criterion: the sum of squared class shares among labelled samples
    (Morrison 1969; the study's baseline). ``None`` when no sample is labelled."""
    counts = class_counts(y)
    total = counts[0] + counts[1]
    if total == 0:
        return None
    return float((counts[0] / total) ** 2 + (counts[1] / total) ** 2)


def pcc_125(y: np.ndarray | None) -> float | None:
    """1.25 x :func:`pcc`: the bar a classifier's accuracy must clear (the study's rule)."""
    value = pcc(y)
    return None if value is None else 1.25 * value


SUMMARY_KEYS = ("n_samples", "n_positive", "n_unlabelled", "n_timesteps", "n_features", "n_missing_values",
                "pcc", "pcc_125")


def summarize(dataset) -> dict:
    """The figures of ``flareseq summary``: exactly :data:`SUMMARY_KEYS`."""
    y = dataset.y
    return {
        "n_samples": dataset.n_samples,
        "n_positive": dataset.n_positive,
        "n_unlabelled": dataset.n_unlabelled,
        "n_timesteps": dataset.n_timesteps,
        "n_features": dataset.n_features,
        "n_missing_values": dataset.n_missing_values,
        "pcc": pcc(y),
        "pcc_125": pcc_125(y),
    }
