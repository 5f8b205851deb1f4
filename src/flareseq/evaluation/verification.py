"""How sure a score is: bootstrap intervals, and paired comparisons of two forecasters.

On real flare data the positives come from few active regions (a region-disjoint SMARP test
fold holds about a dozen flaring ones), and the windows of one region overlap and share their
label. Resampling single windows would treat hundreds of near-copies as independent evidence
and give intervals far too narrow. So the bootstrap here resamples *whole regions* when
region ids exist (the cluster bootstrap, Davison & Hinkley 1997, section 3.8; Field & Welsh
2007): a resample draws as many regions as there are, with replacement, and each drawn region
brings all its samples. Without region ids it resamples samples.

The decision threshold is held fixed (the one chosen on validation): the interval describes
this forecaster's score, not that of forecasters re-tuned on each resample. Intervals are
percentile intervals; resamples on which a score is undefined (e.g. no flaring region drawn,
so no TSS) are left out and counted.

A resample is a vector of multiplicities, one per region; every score is computed from
per-region counts (threshold scores, Brier) or from sample weights over one sort of the
probabilities (ROC-AUC, PR-AUC), which equals scoring the concatenated resample exactly,
ties included, at a fraction of the cost.

:func:`paired_bootstrap` applies the *same* resamples to two forecasts of the same samples,
so what differs between the two is the forecasters, not the luck of the draw.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from flareseq.errors import ConfigError, FlareseqError
from flareseq.evaluation import curves

INTERVAL_METRICS = ("tss", "hss2", "precision", "recall", "f1", "accuracy", "roc_auc", "pr_auc", "brier", "bss")
PAIRED_METRICS = ("tss", "hss2", "pr_auc")
# Resamples scored at once: the sorted-weights matrix is (chunk, n_samples) float64.
_CELLS_PER_CHUNK = 2_000_000


@dataclass(frozen=True)
class Interval:
    """A score and its bootstrap interval.

    Attributes
    ----------
    estimate : the score on the data as given.
    low, high : the percentile interval's bounds (NaN when no resample defines the score).
    n_undefined : resamples on which the score was undefined (left out of the interval).
    """

    estimate: float
    low: float
    high: float
    n_undefined: int = 0


@dataclass(frozen=True)
class PairedDifference:
    """The difference ``first - second`` of one score under a paired bootstrap.

    Attributes
    ----------
    first, second : the two scores on the data as given.
    difference : ``first - second``.
    low, high : percentile interval of the difference.
    p_first_better : share of the (defined) resamples in which ``first`` scored higher.
    n_undefined : resamples on which either score was undefined.
    """

    first: float
    second: float
    difference: float
    low: float
    high: float
    p_first_better: float
    n_undefined: int = 0

    @property
    def distinguishable(self) -> bool:
        """True when the interval of the difference excludes 0."""
        return bool(self.low > 0 or self.high < 0)

    def verdict(self) -> str:
        if np.isnan(self.low):
            return "undefined"
        if not self.distinguishable:
            return "not distinguishable"
        return "first better" if self.low > 0 else "second better"


# -- inputs ---------------------------------------------------------------------------------
def region_groups(meta: pd.DataFrame | None, n: int) -> np.ndarray | None:
    """The region of each sample from ``meta["region"]``, or None when there are no regions.

    A sample without a region becomes a group of its own (resampled like a sample).
    """
    if meta is None or "region" not in meta.columns or len(meta) != n:
        return None
    region = meta["region"].astype("string")
    if region.isna().all():
        return None
    filled = region.fillna(pd.Series([f"\0sample-{i}" for i in range(n)], index=region.index, dtype="string"))
    return filled.to_numpy(dtype=object)


def _check(y, p, threshold, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y)
    p = np.asarray(p, dtype=np.float64)
    if y.ndim != 1 or p.shape != y.shape:
        raise FlareseqError(f"labels and probabilities must be 1-D of one length, got {y.shape} and {p.shape}.")
    if y.size and not np.isin(y, (0, 1)).all():
        raise FlareseqError(f"labels must be 0 or 1, found {np.unique(y[~np.isin(y, (0, 1))])[:5].tolist()}; "
                            "drop unlabelled (-1) samples first.")
    if y.size and (not np.isfinite(p).all() or p.min() < 0 or p.max() > 1):
        raise FlareseqError("probabilities must lie in [0, 1] (no NaN).")
    t = np.broadcast_to(np.asarray(threshold, dtype=np.float64), y.shape)
    if groups is None:
        codes = np.arange(y.size)
    else:
        groups = np.asarray(groups, dtype=object)
        if groups.shape != y.shape:
            raise FlareseqError(f"groups must give one region per sample ({y.size}), got shape {groups.shape}.")
        codes = pd.factorize(pd.Series(groups, dtype="string"))[0]
        if (codes < 0).any():
            raise FlareseqError("groups holds missing regions; pass region_groups(meta, n) to give each its own.")
    return y.astype(bool), p, t, codes.astype(np.int64)


def _check_bootstrap(n_boot: int, level: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ConfigError(f"n_boot must be a positive integer, got {n_boot!r}.")
    if not 0 < level < 1:
        raise ConfigError(f"level must be a confidence level strictly between 0 and 1 (e.g. 0.95), got {level!r}.")


# -- scoring many resamples at once ---------------------------------------------------------
class _Scorer:
    """Scores of one forecast under region multiplicities ``M`` of shape ``(b, n_groups)``:
    the 2x2 counts per region at the fixed threshold, and the curve primitive weighted by
    each sample's region multiplicity for the ranked scores."""

    def __init__(self, y: np.ndarray, p: np.ndarray, t: np.ndarray, codes: np.ndarray, climatology):
        n_groups = int(codes.max()) + 1 if codes.size else 0
        yes = p >= t

        def per_group(values) -> np.ndarray:
            return np.bincount(codes, weights=values.astype(np.float64), minlength=n_groups)

        self.cells = np.stack([per_group(y & yes), per_group(~y & yes), per_group(y & ~yes), per_group(~y & ~yes)])
        self.squared_error = per_group((p - y) ** 2)
        self.clim_error = None if climatology is None else per_group((np.asarray(climatology, np.float64) - y) ** 2)
        self.size = per_group(np.ones(y.size))
        self.y, self.p, self.codes = y, p, codes

    def scores(self, M: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
        tp, fp, fn, tn = (M @ cell for cell in self.cells)
        out: dict[str, np.ndarray] = {}
        ranked = [m for m in names if m in ("roc_auc", "pr_auc")]
        if ranked:
            counts = curves.counts_by_threshold(self.y, self.p, weights=M[:, self.codes])
            if "roc_auc" in ranked:
                out["roc_auc"] = curves.roc_area(counts)
            if "pr_auc" in ranked:
                out["pr_auc"] = curves.average_precision_area(counts)
        for name in names:
            if name in out:
                continue
            if name in curves.TABLE_SCORES:
                out[name] = np.asarray(curves.TABLE_SCORES[name](tp, fp, fn, tn), dtype=np.float64)
            elif name == "brier":
                out[name] = curves.divide(M @ self.squared_error, M @ self.size)
            elif name == "bss":
                out[name] = (np.full(M.shape[0], np.nan) if self.clim_error is None
                             else curves.brier_skill(M @ self.squared_error, M @ self.clim_error))
            else:
                raise ConfigError(f"no bootstrap for metric {name!r}; choose from {list(INTERVAL_METRICS)}.")
        return out


def _multiplicities(n_groups: int, n_boot: int, rng: np.random.Generator, n_samples: int) -> Iterator[np.ndarray]:
    """Chunks of resamples: each row draws ``n_groups`` regions with replacement (counts)."""
    chunk = max(1, min(n_boot, _CELLS_PER_CHUNK // max(n_samples, 1)))
    done = 0
    while done < n_boot:
        size = min(chunk, n_boot - done)
        yield rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=size).astype(np.float64)
        done += size


def _interval(values: np.ndarray, level: float) -> tuple[float, float, int]:
    defined = values[np.isfinite(values)]
    if defined.size == 0:
        return float("nan"), float("nan"), int(values.size)
    alpha = (1 - level) / 2
    low, high = np.quantile(defined, [alpha, 1 - alpha])
    return float(low), float(high), int(values.size - defined.size)


# -- public API -----------------------------------------------------------------------------
def bootstrap_intervals(
    y_true,
    y_prob,
    *,
    threshold: float | np.ndarray = 0.5,
    groups: np.ndarray | None = None,
    climatology: float | None = None,
    metrics: Sequence[str] = INTERVAL_METRICS,
    n_boot: int = 1000,
    level: float = 0.95,
    random_state: int = 0,
) -> dict[str, Interval]:
    """Bootstrap percentile intervals of verification scores at a fixed threshold.

    Parameters
    ----------
    y_true : 0/1 labels ``(n,)``.
    y_prob : forecast probabilities ``(n,)``.
    threshold : the decision threshold (chosen on validation, held fixed); an array gives each
        sample its own (out-of-fold predictions pooled over a rotation, each at its fold's).
    groups : the region of each sample (see :func:`region_groups`); whole regions are
        resampled. None resamples samples.
    climatology : the training event rate, the reference of ``bss`` (NaN without it); an
        array gives each sample its own (pooled folds, each with its training rate).
    metrics : short names as in :func:`flareseq.evaluation.metrics.all_scores`.
    n_boot : number of resamples.
    level : confidence level of the intervals.
    random_state : seed of the resampling.

    Returns
    -------
    metric -> :class:`Interval`.
    """
    _check_bootstrap(n_boot, level)
    y, p, t, codes = _check(y_true, y_prob, threshold, groups)
    if y.size == 0:
        raise FlareseqError("no samples to bootstrap.")
    scorer = _Scorer(y, p, t, codes, climatology)
    n_groups = int(codes.max()) + 1
    estimate = scorer.scores(np.ones((1, n_groups)), metrics)
    draws = {m: [] for m in metrics}
    for M in _multiplicities(n_groups, n_boot, np.random.default_rng(random_state), y.size):
        for m, values in scorer.scores(M, metrics).items():
            draws[m].append(values)
    out = {}
    for m in metrics:
        low, high, n_undefined = _interval(np.concatenate(draws[m]), level)
        out[m] = Interval(float(estimate[m][0]), low, high, n_undefined)
    return out


def paired_bootstrap(
    y_true,
    p_first,
    p_second,
    *,
    threshold_first: float | np.ndarray,
    threshold_second: float | np.ndarray,
    groups: np.ndarray | None = None,
    climatology: float | None = None,
    metrics: Sequence[str] = PAIRED_METRICS,
    n_boot: int = 2000,
    level: float = 0.95,
    random_state: int = 0,
) -> dict[str, PairedDifference]:
    """The paired bootstrap of ``score(first) - score(second)`` on the same samples.

    Both forecasts are scored on the same resamples (same regions drawn), each at its own
    fixed threshold. ``p_first_better`` is the share of resamples (where both scores are
    defined) in which the first forecast scored strictly higher.

    Returns
    -------
    metric -> :class:`PairedDifference`.
    """
    _check_bootstrap(n_boot, level)
    y, p1, t1, codes = _check(y_true, p_first, threshold_first, groups)
    _, p2, t2, _ = _check(y_true, p_second, threshold_second, groups)
    if y.size == 0:
        raise FlareseqError("no samples to compare on.")
    first = _Scorer(y, p1, t1, codes, climatology)
    second = _Scorer(y, p2, t2, codes, climatology)
    n_groups = int(codes.max()) + 1
    ones = np.ones((1, n_groups))
    observed = first.scores(ones, metrics), second.scores(ones, metrics)
    diffs = {m: [] for m in metrics}
    for M in _multiplicities(n_groups, n_boot, np.random.default_rng(random_state), y.size):
        a, b = first.scores(M, metrics), second.scores(M, metrics)
        for m in metrics:
            diffs[m].append(a[m] - b[m])
    out = {}
    for m in metrics:
        values = np.concatenate(diffs[m])
        low, high, n_undefined = _interval(values, level)
        defined = values[np.isfinite(values)]
        share = float(np.mean(defined > 0)) if defined.size else float("nan")
        s1, s2 = float(observed[0][m][0]), float(observed[1][m][0])
        out[m] = PairedDifference(s1, s2, s1 - s2, low, high, share, n_undefined)
    return out


def align_predictions(first: pd.DataFrame, second: pd.DataFrame, *, names: tuple[str, str] = ("first", "second"),
                      ) -> pd.DataFrame:
    """Two runs' test predictions side by side, checked to be on the same samples.

    Each frame has ``id``, ``y``, ``probability`` and optionally ``threshold`` (per sample) and
    ``region`` (as ``predictions/test_predictions.csv`` of a run). Returns one frame with
    ``id, y, region, p_first, p_second, threshold_first, threshold_second``.

    Raises
    ------
    FlareseqError
        When the two were tested on different samples or disagree on a label.
    """
    for frame, name in zip((first, second), names):
        missing = [c for c in ("id", "y", "probability") if c not in frame.columns]
        if missing:
            raise FlareseqError(f"the predictions of {name} lack column(s) {missing}; they have {list(frame.columns)}.")
        if frame["id"].astype(str).duplicated().any():
            raise FlareseqError(f"the predictions of {name} repeat sample ids; a paired comparison needs one per sample.")
    a = first.assign(id=first["id"].astype(str)).set_index("id")
    b = second.assign(id=second["id"].astype(str)).set_index("id")
    only_a, only_b = a.index.difference(b.index), b.index.difference(a.index)
    if len(only_a) or len(only_b):
        raise FlareseqError(
            f"{names[0]} and {names[1]} were not tested on the same samples: {len(only_a)} id(s) only in {names[0]} "
            f"(e.g. {list(only_a[:3])}), {len(only_b)} only in {names[1]} (e.g. {list(only_b[:3])}). A paired "
            "comparison needs the same test set: the same data, split, rotation and sampling."
        )
    b = b.loc[a.index]
    if not np.array_equal(a["y"].to_numpy(), b["y"].to_numpy()):
        raise FlareseqError(f"{names[0]} and {names[1]} disagree on the labels of the same sample ids; "
                            "were they run on different data?")
    region = a["region"] if "region" in a.columns else (b["region"] if "region" in b.columns else None)
    return pd.DataFrame({
        "id": a.index, "y": a["y"].to_numpy().astype(int),
        "region": None if region is None else region.to_numpy(),
        "p_first": a["probability"].to_numpy(float), "p_second": b["probability"].to_numpy(float),
        "threshold_first": a["threshold"].to_numpy(float) if "threshold" in a.columns else np.nan,
        "threshold_second": b["threshold"].to_numpy(float) if "threshold" in b.columns else np.nan,
    })


def compare_predictions(first: pd.DataFrame, second: pd.DataFrame, *, threshold_first: float | None = None,
                        threshold_second: float | None = None, names: tuple[str, str] = ("first", "second"),
                        **options) -> dict[str, PairedDifference]:
    """:func:`paired_bootstrap` of two runs' prediction frames (see :func:`align_predictions`),
    resampling regions when the frames carry them. A frame's ``threshold`` column is used
    unless a threshold is given. ``options`` go to :func:`paired_bootstrap`."""
    both = align_predictions(first, second, names=names)
    thresholds = []
    for given, column, name in ((threshold_first, "threshold_first", names[0]),
                                (threshold_second, "threshold_second", names[1])):
        if given is None and both[column].isna().any():
            raise FlareseqError(f"the predictions of {name} carry no threshold column; pass its threshold.")
        thresholds.append(both[column].to_numpy() if given is None else given)
    groups = None
    if both["region"].notna().any():
        groups = region_groups(both[["region"]], len(both))
    return paired_bootstrap(both["y"].to_numpy(), both["p_first"].to_numpy(), both["p_second"].to_numpy(),
                            threshold_first=thresholds[0], threshold_second=thresholds[1], groups=groups, **options)


def interval_scores(intervals: dict[str, Interval], prefix: str = "test_") -> dict[str, float]:
    """``{prefix}{metric}_ci_low`` / ``_ci_high`` for logging (the estimates are logged apart)."""
    out = {}
    for metric, interval in intervals.items():
        out[f"{prefix}{metric}_ci_low"] = interval.low
        out[f"{prefix}{metric}_ci_high"] = interval.high
    return out


def paired_frame(results: dict[str, PairedDifference]) -> pd.DataFrame:
    """One row per metric: the scores, the difference, its interval and P(first better)."""
    return pd.DataFrame([{"metric": m, **asdict(r), "verdict": r.verdict()} for m, r in results.items()])


__all__ = ["Interval", "PairedDifference", "INTERVAL_METRICS", "PAIRED_METRICS", "region_groups",
           "bootstrap_intervals", "paired_bootstrap", "align_predictions", "compare_predictions", "interval_scores",
           "paired_frame"]
