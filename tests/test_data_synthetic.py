"""Synthetic data: seeded, batch-independent, realistic scales, learnable from dynamics."""

from __future__ import annotations

import numpy as np
import pytest

from flareseq.data.schema import KAGGLE_PARAMETERS
from flareseq.data.synthetic import BLOCK_SIZE, synthetic_dataset


@pytest.fixture(scope="module")
def big():
    return synthetic_dataset(3000, seed=21)


def test_seeded_and_independent_of_size():
    a = synthetic_dataset(BLOCK_SIZE + 10, seed=1)
    b = synthetic_dataset(BLOCK_SIZE + 200, seed=1).subset(slice(0, BLOCK_SIZE + 10))
    assert np.array_equal(a.X, b.X, equal_nan=True) and np.array_equal(a.y, b.y)
    c = synthetic_dataset(50, seed=2)
    assert not np.array_equal(a.X[:50], c.X, equal_nan=True)


def test_class_balance_folds_and_missing_values(big):
    assert 0.13 < big.y.mean() < 0.19
    shares = big.meta["fold"].value_counts(normalize=True).sort_index()
    assert list(shares.index) == [1, 2, 3] and abs(shares[2] - 0.47) < 0.04
    missing_share = np.isnan(big.X).any(axis=(1, 2)).mean()
    assert 0.05 < missing_share < 0.35  # a few samples with gaps, most complete


def test_scales_signs_and_tails_look_like_sharp(big):
    X = big.X.astype(np.float64)
    median = dict(zip(KAGGLE_PARAMETERS, np.nanmedian(np.abs(X), axis=(0, 1))))
    assert 1e21 < median["USFLUX"] < 1e23 and 1e2 < median["TOTUSJH"] < 1e4 and 20 < median["MEANGAM"] < 80
    assert 1e-7 < median["XR_MAX"] < 1e-5
    j = KAGGLE_PARAMETERS.index("TOTFZ")
    assert (X[:, :, j][~np.isnan(X[:, :, j])] < 0).all()
    usflux = X[:, -1, KAGGLE_PARAMETERS.index("USFLUX")]
    usflux = usflux[~np.isnan(usflux)]
    assert np.percentile(usflux, 99) / np.median(usflux) > 5  # heavy right tail across regions


def _tss(y, p):
    tp = ((p == 1) & (y == 1)).sum()
    fn = ((p == 0) & (y == 1)).sum()
    fp = ((p == 1) & (y == 0)).sum()
    tn = ((p == 0) & (y == 0)).sum()
    return tp / (tp + fn) - fp / (fp + tn)


def test_label_depends_on_dynamics_not_only_the_last_step(big):
    from sklearn.linear_model import LogisticRegression

    L = np.nan_to_num(np.sign(big.X) * np.log1p(np.abs(big.X.astype(np.float64))))
    last = L[:, -1, :]
    slope = L[:, -6:].mean(axis=1) - L[:, :6].mean(axis=1)
    scores = {}
    for name, F in {"snapshot": last, "with dynamics": np.hstack([last, slope])}.items():
        F = (F - F[:2200].mean(0)) / (F[:2200].std(0) + 1e-9)
        model = LogisticRegression(max_iter=3000, class_weight="balanced").fit(F[:2200], big.y[:2200])
        scores[name] = _tss(big.y[2200:], model.predict(F[2200:]))
    assert scores["with dynamics"] > scores["snapshot"] + 0.08
    assert 0.55 < scores["with dynamics"] < 0.9  # learnable, but noisy: far from perfect
