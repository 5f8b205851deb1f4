"""The figures of ``flareseq summary``: sample and class counts, the proportion chance criterion."""

from __future__ import annotations

import math

import numpy as np


def class_counts(y: np.ndarray | None) -> dict[int, int]:
    """Samples per label among the labelled ones (``{0: n0, 1: n1}``)."""
    if y is None:
        return {0: 0, 1: 0}
    y = np.asarray(y)
    return {0: int((y == 0).sum()), 1: int((y == 1).sum())}


def proportion_chance_criterion(n_negative: int, n_positive: int) -> float:
    """PCC = sum of squared class shares (Morrison 1969; the study's baseline): the accuracy
    expected by guessing with the class proportions. NaN when nothing is labelled.

    This is the one definition; :func:`flareseq.evaluation.metrics.proportion_chance_criterion`
    applies it to labels. The study's bar, 1.25 x PCC, exceeds 1 when one class holds more
    than about 84.6 % of the samples, and then no accuracy can clear it.
    """
    total = n_negative + n_positive
    if total == 0:
        return float("nan")
    return float((n_negative / total) ** 2 + (n_positive / total) ** 2)


SUMMARY_KEYS = ("n_samples", "n_positive", "n_unlabelled", "n_timesteps", "n_features", "n_missing_values",
                "pcc", "pcc_125")


def summarize(dataset) -> dict:
    """The figures of ``flareseq summary``: exactly :data:`SUMMARY_KEYS` (``pcc`` is ``None``
    when no sample is labelled, so the figures stay valid JSON)."""
    counts = class_counts(dataset.y)
    return {
        "n_samples": dataset.n_samples,
        "n_positive": dataset.n_positive,
        "n_unlabelled": dataset.n_unlabelled,
        "n_timesteps": dataset.n_timesteps,
        "n_features": dataset.n_features,
        "n_missing_values": dataset.n_missing_values,
        **pcc_figures(counts[0], counts[1]),
    }


def pcc_figures(n_negative: int, n_positive: int) -> dict:
    """``{"pcc": ..., "pcc_125": ...}`` for a summary; ``None`` for both when nothing is labelled."""
    value = proportion_chance_criterion(n_negative, n_positive)
    return {"pcc": None, "pcc_125": None} if math.isnan(value) else {"pcc": value, "pcc_125": 1.25 * value}
