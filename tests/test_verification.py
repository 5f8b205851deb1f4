"""Bootstrap intervals by region and paired comparisons (flareseq.evaluation.verification)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flareseq.errors import ConfigError, FlareseqError
from flareseq.evaluation import metrics
from flareseq.evaluation.verification import (
    INTERVAL_METRICS,
    _Scorer,
    align_predictions,
    bootstrap_intervals,
    compare_predictions,
    interval_scores,
    paired_bootstrap,
    region_groups,
)


def regional_forecasts(n_regions=30, per_region=40, seed=0, skill=1.0):
    """Regions whose windows share their label and most of their forecast (as overlapping
    windows of one active region do)."""
    rng = np.random.default_rng(seed)
    flaring = rng.random(n_regions) < 0.3
    flaring[:2] = True, False
    region = np.repeat([f"R{i}" for i in range(n_regions)], per_region)
    y = np.repeat(flaring, per_region).astype(int)
    level = rng.normal(0, 1, n_regions) + skill * flaring  # the region's own (shared) signal
    z = np.repeat(level, per_region) + rng.normal(0, 0.3, y.size)
    return y, 1 / (1 + np.exp(-z)), region


def test_estimates_are_the_scores_of_all_scores():
    y, p, region = regional_forecasts()
    got = bootstrap_intervals(y, p, threshold=0.55, groups=region, climatology=0.2, n_boot=50)
    expected = metrics.all_scores(y, p, threshold=0.55, climatology=0.2)
    for m in INTERVAL_METRICS:
        assert got[m].estimate == pytest.approx(expected[m], abs=1e-12), m
        assert got[m].low <= got[m].high


@pytest.mark.parametrize("seed", [1, 2])
def test_a_resample_scores_exactly_as_the_concatenated_samples(seed):
    # Multiplicities of regions weighted into one sort must equal scoring the drawn samples.
    y, p, region = regional_forecasts(n_regions=12, per_region=7, seed=seed)
    p = np.round(p, 1)  # many ties, so the tie handling of ROC-AUC and PR-AUC is exercised
    codes = pd.factorize(pd.Series(region))[0]
    counts = np.random.default_rng(seed).multinomial(12, np.full(12, 1 / 12))
    scorer = _Scorer(y.astype(bool), p, np.full(y.size, 0.5), codes, 0.25)
    got = scorer.scores(counts[None].astype(float), INTERVAL_METRICS)
    drawn = np.concatenate([np.flatnonzero(codes == g) for g in range(12) for _ in range(counts[g])])
    expected = metrics.all_scores(y[drawn], p[drawn], threshold=0.5, climatology=0.25)
    for m in INTERVAL_METRICS:
        np.testing.assert_allclose(got[m][0], expected[m], atol=1e-12, err_msg=m)


def test_region_resampling_is_wider_than_sample_resampling_on_correlated_windows():
    y, p, region = regional_forecasts(n_regions=30, per_region=40)
    by_region = bootstrap_intervals(y, p, threshold=0.5, groups=region, n_boot=400, metrics=["tss", "roc_auc"])
    by_sample = bootstrap_intervals(y, p, threshold=0.5, groups=None, n_boot=400, metrics=["tss", "roc_auc"])
    for m in ("tss", "roc_auc"):
        width_region = by_region[m].high - by_region[m].low
        width_sample = by_sample[m].high - by_sample[m].low
        # 40 near-copies per region are not 40 independent samples: the honest interval is wider.
        assert width_region > 2.5 * width_sample, m


def test_resamples_without_a_flaring_region_are_counted_as_undefined():
    y = np.r_[np.ones(5), np.zeros(45)].astype(int)
    p = np.linspace(0.9, 0.1, 50)
    region = np.repeat(["flaring", *[f"q{i}" for i in range(9)]], 5)
    out = bootstrap_intervals(y, p, groups=region, n_boot=300, metrics=["tss", "accuracy"])
    # P(no draw of the one flaring region among 10 draws) = 0.9^10, about 35 %.
    assert 60 < out["tss"].n_undefined < 160
    assert out["accuracy"].n_undefined == 0


def test_intervals_are_reproducible_and_per_sample_thresholds_match_a_scalar():
    y, p, region = regional_forecasts()
    a = bootstrap_intervals(y, p, threshold=0.5, groups=region, climatology=0.3, n_boot=100, random_state=3)
    b = bootstrap_intervals(y, p, threshold=np.full(y.size, 0.5), groups=region, climatology=0.3, n_boot=100,
                            random_state=3)
    assert a == b
    logged = interval_scores(a)
    assert logged["test_tss_ci_low"] == a["tss"].low and logged["test_brier_ci_high"] == a["brier"].high


def test_region_groups_from_meta():
    meta = pd.DataFrame({"region": pd.Series(["A", None, "A", "B"], dtype="string")})
    groups = region_groups(meta, 4)
    assert groups[0] == groups[2] and len(set(groups)) == 3  # the sample without a region stands alone
    assert region_groups(pd.DataFrame({"region": pd.Series([None] * 3, dtype="string")}), 3) is None
    assert region_groups(pd.DataFrame({"fold": [1, 2]}), 2) is None


def test_paired_identical_forecasts_are_not_distinguishable():
    y, p, region = regional_forecasts()
    out = paired_bootstrap(y, p, p, threshold_first=0.5, threshold_second=0.5, groups=region, n_boot=200)
    for result in out.values():
        assert result.difference == 0 and result.low == 0 and result.high == 0
        assert result.p_first_better == 0 and result.verdict() == "not distinguishable"


def test_paired_bootstrap_finds_a_clearly_better_forecast():
    y, p, region = regional_forecasts(n_regions=60, skill=3.0)
    noise = np.random.default_rng(1).random(y.size)
    out = paired_bootstrap(y, p, noise, threshold_first=0.8, threshold_second=0.5, groups=region, n_boot=300)
    for m in ("tss", "hss2", "pr_auc"):
        assert out[m].difference > 0.3 and out[m].distinguishable and out[m].verdict() == "first better"
        assert out[m].p_first_better > 0.99
    swapped = paired_bootstrap(y, noise, p, threshold_first=0.5, threshold_second=0.8, groups=region, n_boot=300)
    assert swapped["tss"].verdict() == "second better" and swapped["tss"].p_first_better < 0.01


def predictions(ids, y, p, threshold=0.5, region=None):
    frame = pd.DataFrame({"id": ids, "y": y, "probability": p, "threshold": threshold})
    return frame if region is None else frame.assign(region=region)


def test_align_and_compare_prediction_frames_in_any_order():
    y, p, region = regional_forecasts(n_regions=20)
    ids = np.arange(y.size)
    first = predictions(ids, y, p, 0.5, region)
    second = predictions(ids, y, np.clip(p + 0.1, 0, 1), 0.6, region).sample(frac=1, random_state=0)
    both = align_predictions(first, second)
    assert np.array_equal(both["p_second"], np.clip(p + 0.1, 0, 1))
    assert (both["threshold_second"] == 0.6).all()
    direct = paired_bootstrap(y, p, np.clip(p + 0.1, 0, 1), threshold_first=0.5, threshold_second=0.6,
                              groups=region, n_boot=100)
    assert compare_predictions(first, second, n_boot=100) == direct


@pytest.mark.parametrize(("change", "match"), [
    (lambda f: f.iloc[1:], r"not tested on the same samples: 1 id\(s\) only in first .* 0 only in second"),
    (lambda f: f.assign(y=1 - f["y"]), "disagree on the labels"),
    (lambda f: f.drop(columns="probability"), r"lack column\(s\) \['probability'\]"),
    (lambda f: pd.concat([f, f.iloc[:1]]), "repeat sample ids"),
])
def test_mismatched_prediction_frames_are_refused(change, match):
    first = predictions(np.arange(4), [0, 1, 0, 1], [0.1, 0.9, 0.4, 0.6])
    with pytest.raises(FlareseqError, match=match):
        align_predictions(first, change(first.copy()))


@pytest.mark.parametrize(("kwargs", "match", "error"), [
    ({"n_boot": 0}, "n_boot must be a positive integer", ConfigError),
    ({"level": 95}, "strictly between 0 and 1", ConfigError),
    ({"metrics": ["nope"]}, "no bootstrap for metric 'nope'", ConfigError),
    ({"y_true": [0, 2]}, "labels must be 0 or 1", FlareseqError),
    ({"groups": ["a"]}, "one region per sample", FlareseqError),
])
def test_bad_bootstrap_arguments(kwargs, match, error):
    args = {"y_true": [0, 1], "y_prob": [0.2, 0.7], **kwargs}
    with pytest.raises(error, match=match):
        bootstrap_intervals(args.pop("y_true"), args.pop("y_prob"), **args)
