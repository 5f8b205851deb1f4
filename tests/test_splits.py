"""Splits that do not leak: by fold, by region groups, by time; random only when asked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flareseq.data.dataset import FlareDataset, empty_meta
from flareseq.errors import ConfigError, FlareseqWarning, LeakageError
from flareseq.prep.splits import (
    carve_validation,
    check_region_disjoint,
    group_kfold,
    random_split,
    rotate_folds,
    split_by_fold,
    split_by_region,
    split_by_time,
    split_from_config,
)


def make_data(n_regions=40, per_region=10, n_folds=4, positive_regions=(1, 5, 9, 13, 17, 21, 25, 29), seed=0):
    """Regions of ``per_region`` windows each; region r is in fold r % n_folds; windows end
    hourly from a start that grows with r; positive regions have their last 3 windows positive."""
    rng = np.random.default_rng(seed)
    region = np.repeat(np.arange(n_regions), per_region)
    step = np.tile(np.arange(per_region), n_regions)
    meta = empty_meta(len(region))
    meta["region"] = pd.Series([f"HARP:{r}" for r in region], dtype="string")
    meta["fold"] = pd.Series(region % n_folds, dtype="Int64")
    meta["end"] = pd.Timestamp("2010-01-01") + pd.to_timedelta(region * 24 + step, unit="h")
    y = (np.isin(region, positive_regions) & (step >= per_region - 3)).astype(np.int8)
    X = rng.normal(size=(len(region), 2, 1)).astype(np.float32)
    return FlareDataset(X=X, y=y, ids=np.array([f"s{i}" for i in range(len(region))]), feature_names=("f",), meta=meta)


def regions_of(data, index):
    return set(data.meta["region"].iloc[index])


def assert_partition(split, n):
    together = np.concatenate([split.train, split.validation, split.test])
    assert len(together) == len(set(together.tolist())) == n - split.n_unused


def test_split_by_fold_with_validation_folds():
    data = make_data()
    split = split_by_fold(data, [3], validation_folds=[2])
    assert set(data.meta["fold"].iloc[split.test]) == {3} and set(data.meta["fold"].iloc[split.validation]) == {2}
    assert set(data.meta["fold"].iloc[split.train]) == {0, 1}
    assert split.region_disjoint and split.method == "fold" and not split.leaky
    assert_partition(split, len(data))


def test_validation_carved_from_training_regions_has_positives_and_the_target_share():
    data = make_data()
    split = split_by_fold(data, [0], validation_share=0.25, random_state=3)
    assert set(data.meta["fold"].iloc[split.validation]) <= {1, 2, 3}
    assert not regions_of(data, split.train) & regions_of(data, split.validation)
    assert (data.y[split.validation] == 1).sum() > 0 and (data.y[split.train] == 1).sum() > 0
    share = len(split.validation) / (len(split.train) + len(split.validation))
    assert 0.15 <= share <= 0.35
    assert split.summary(data.y)["n_validation_positive"] > 0


def test_carving_is_seeded():
    data = make_data()
    a = carve_validation(data, np.arange(len(data)), share=0.2, random_state=1)
    b = carve_validation(data, np.arange(len(data)), share=0.2, random_state=1)
    c = carve_validation(data, np.arange(len(data)), share=0.2, random_state=2)
    assert np.array_equal(a[1], b[1]) and not np.array_equal(a[1], c[1])


def test_fold_split_that_shares_a_region_is_reported_or_refused():
    data = make_data()
    meta = data.meta.copy()
    meta.loc[0, "fold"] = 3  # one window of region 0 (fold 0) moved to fold 3
    split = split_by_fold(meta, [3])
    assert not split.region_disjoint and split.n_shared_regions == 1
    with pytest.raises(LeakageError, match=r"1 region\(s\).*HARP:0"):
        split_by_fold(meta, [3], require_region_disjoint=True)


def test_rotate_folds_tests_each_fold_once():
    data = make_data()
    splits = rotate_folds(data, validation_share=0.2)
    assert [sorted(set(data.meta["fold"].iloc[s.test])) for s in splits] == [[0], [1], [2], [3]]
    assert all(s.region_disjoint for s in splits)


def test_group_kfold_is_region_disjoint_and_covers_every_sample_once():
    data = make_data()
    splits = group_kfold(data, n_splits=4, validation_share=0.2, random_state=0)
    tested = np.sort(np.concatenate([s.test for s in splits]))
    assert np.array_equal(tested, np.arange(len(data)))
    for s in splits:
        parts = [regions_of(data, p) for p in (s.train, s.validation, s.test)]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert (data.y[s.test] == 1).sum() > 0  # stratified: positives in every test fold
        assert_partition(s, len(data))


def test_split_by_region():
    data = make_data()
    split = split_by_region(data, test_share=0.25, validation_share=0.2, random_state=4)
    assert split.region_disjoint
    assert 0.15 <= len(split.test) / len(data) <= 0.35
    assert all((data.y[p] == 1).sum() > 0 for p in (split.train, split.validation, split.test))


def test_split_by_time_with_embargo():
    data = make_data()
    ends = data.meta["end"]
    split = split_by_time(data, "2010-01-31", validation_start="2010-01-21", embargo_hours=12)
    assert ends.iloc[split.train].max() < pd.Timestamp("2010-01-20T12:00")
    assert ends.iloc[split.validation].min() >= pd.Timestamp("2010-01-21")
    assert ends.iloc[split.validation].max() < pd.Timestamp("2010-01-30T12:00")
    assert ends.iloc[split.test].min() >= pd.Timestamp("2010-01-31")
    assert split.n_unused == ((ends >= "2010-01-20T12:00") & (ends < "2010-01-21")).sum() + \
        ((ends >= "2010-01-30T12:00") & (ends < "2010-01-31")).sum()
    assert_partition(split, len(data))


def test_random_split_needs_the_flag_and_is_marked_leaky():
    data = make_data()
    with pytest.raises(LeakageError, match="optimistic.*allow_leaky_split=True"):
        random_split(data)
    with pytest.warns(FlareseqWarning, match="marked leaky"):
        split = random_split(data, test_share=0.2, allow_leaky_split=True)
    assert split.leaky and split.method == "random" and len(split.test) == 80
    assert split.n_shared_regions > 0 and not split.region_disjoint


def test_check_region_disjoint_names_the_regions():
    data = make_data()
    with pytest.raises(LeakageError, match=r"HARP:0"):
        check_region_disjoint(data, np.arange(0, 5), np.arange(5, 20))
    check_region_disjoint(data, np.arange(0, 10), np.arange(10, 20))


def test_split_from_config():
    data = make_data()
    split = split_from_config(data, {"method": "fold", "test_folds": [3], "validation_share": 0.2})
    assert set(data.meta["fold"].iloc[split.test]) == {3}
    regions = split_from_config(data, {"method": "regions", "test_share": 0.25, "random_state": 1})
    assert regions.method == "region" and regions.region_disjoint
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['test_fold'\].*valid options are \['test_folds'"):
        split_from_config(data, {"method": "fold", "test_fold": 3})
    with pytest.raises(ConfigError, match=r"must be one of \['fold', 'region', 'time', 'random'\]"):
        split_from_config(data, {"method": "kfold"})


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda d: split_by_fold(d, [7]), r"test_folds \[7\] are not in the data; its folds are \[0, 1, 2, 3\]"),
        (lambda d: split_by_fold(d, [1], validation_folds=[1]), r"fold\(s\) \[1\] are given to two parts"),
        (lambda d: split_by_fold(d, [1], validation_folds=[2], validation_share=0.2), "not both"),
        (lambda d: split_by_fold(d, "1"), "list of integer folds"),
        (lambda d: carve_validation(d, np.arange(len(d)), share=1.5), r"strictly between 0 and 1, got 1.5"),
        (lambda d: carve_validation(d, np.arange(10), share=0.2), r"from 1 region\(s\)"),
        (lambda d: group_kfold(d, n_splits=100), r"from 2 to the number of regions \(40\)"),
        (lambda d: split_by_time(d, "not a date"), "must be a date"),
        (lambda d: split_by_time(d, "2010-01-10", validation_start="2010-01-20"), "is after test_start"),
    ],
)
def test_bad_split_requests(call, match):
    with pytest.raises(ConfigError, match=match):
        call(make_data())


def test_region_splits_refuse_samples_without_region():
    data = make_data()
    meta = data.meta.copy()
    meta.loc[[3, 4], "region"] = None
    with pytest.raises(ConfigError, match="2 of 400 samples have no region"):
        split_by_region(meta, y=data.y)
