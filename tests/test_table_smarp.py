"""The table reader on the real SMARP files (../shared/data/smarp; skipped when absent)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flareseq.data.tables.windows import TableSpec, build_table_windows
from flareseq.errors import FlareseqWarning, LeakageError
from flareseq.prep.splits import split_by_fold

pytestmark = pytest.mark.realdata

FEATURES = ["AREA", "USFLUX", "MEANGBZ", "R_VALUE"]


def smarp_spec(**options) -> TableSpec:
    base = dict(region_columns=("prefix", "arpnum"), time_column="t_end", features=FEATURES,
                label_column="label", window=16, cadence_minutes=96)
    return TableSpec(**{**base, **options})


@pytest.fixture(scope="module")
def smarp(shared_data):
    paths = sorted((shared_data / "smarp").glob("smarp_[0-9].csv"))
    if len(paths) != 5:
        pytest.skip(f"expected smarp_0..4.csv in {shared_data / 'smarp'}, found {len(paths)}")
    rows = pd.concat([pd.read_csv(p).assign(fold=i) for i, p in enumerate(paths)], ignore_index=True)
    return paths, rows, build_table_windows(paths, smarp_spec(), progress=False)


def test_about_73000_gap_free_24h_windows(smarp):
    paths, rows, result = smarp
    data, report = result.dataset, result.report
    assert 70_000 <= len(data) <= 76_000
    assert data.X.shape[1:] == (16, 4) and not np.isnan(data.X).any()
    assert report.n_rows == len(rows) and report.n_regions == rows["arpnum"].nunique()
    assert report.n_candidates == report.n_windows + sum(report.dropped.values())
    span = data.meta["end"] - data.meta["start"]
    assert (span == pd.Timedelta(minutes=15 * 96)).all()  # 16 consecutive 96-min steps
    assert len(set(data.ids)) == len(data)


def test_labels_and_values_are_those_of_the_windows_last_row(smarp):
    _, rows, result = smarp
    data = result.dataset
    rows = rows.assign(key=lambda r: r["prefix"] + ":" + r["arpnum"].astype(str) + "@"
                       + pd.to_datetime(r["t_end"]).dt.strftime("%Y-%m-%dT%H:%M:%S")).set_index("key")
    last = rows.loc[data.ids]
    assert np.array_equal(data.y, last["label"].to_numpy().astype(np.int8))
    np.testing.assert_allclose(data.X[:, -1, :], last[FEATURES].to_numpy(), rtol=1e-6)
    assert np.array_equal(data.meta["fold"].to_numpy(dtype=int), last["fold"].to_numpy())
    assert 0.005 < data.y.mean() < 0.05


def test_no_region_is_in_two_folds(smarp):
    data = smarp[2].dataset
    assert data.meta.groupby("region")["fold"].nunique().max() == 1
    split = split_by_fold(data, [4], validation_share=0.2, require_region_disjoint=True)
    assert split.region_disjoint and split.n_shared_regions == 0
    assert (data.y[split.validation] == 1).sum() > 0 and (data.y[split.test] == 1).sum() > 0


def test_the_leak_guard_fires_on_flare_index():
    with pytest.raises(LeakageError, match=r"\['FLARE_INDEX'\].*non-zero almost only for positive"):
        smarp_spec(features=[*FEATURES, "FLARE_INDEX"])


def test_flare_index_really_leaks_which_is_why_it_is_refused(smarp):
    paths = smarp[0]
    with pytest.warns(FlareseqWarning, match="not forecasting skill"):
        spec = smarp_spec(features=["FLARE_INDEX"], allow_leaky_features=True)
    data = build_table_windows(paths, spec, progress=False).dataset
    guess = data.X[:, -1, 0] > 0  # "forecast" a flare whenever the index is non-zero
    positive = data.y == 1
    tss = guess[positive].mean() - guess[~positive].mean()
    assert tss > 0.5  # far above what the magnetic keywords give: the answer is in the input


def test_window_counts_by_class_show_the_filter_keeps_fewer_flaring_rows(smarp):
    """The figures of docs/smarp.md: the gap-free 16-step filter keeps 58.5 % of quiet row ends
    but 27.1 % of flaring ones, and 73 of 188 flaring regions."""
    _, rows, result = smarp
    by_class = result.report.by_class
    positive, negative = by_class["positive"], by_class["negative"]
    assert positive["n_candidates"] == int(rows["label"].astype(str).str.lower().eq("true").sum()) == 4216
    assert positive["n_windows"] == result.dataset.n_positive == 1142
    assert negative["n_windows"] == len(result.dataset) - 1142 == 72094
    for part in (positive, negative):
        assert part["n_candidates"] == part["n_windows"] + sum(part["dropped"].values())
    assert positive["n_windows"] / positive["n_candidates"] < 0.5 * negative["n_windows"] / negative["n_candidates"]
    assert (by_class["n_flaring_regions"], by_class["n_flaring_regions_kept"]) == (188, 73)
    assert by_class["n_flaring_regions_kept"] == result.dataset.meta["region"][result.dataset.y == 1].nunique()


def test_gap_tolerant_windows_keep_more_flaring_rows_and_regions(smarp):
    paths = smarp[0]
    tolerant = build_table_windows(paths, smarp_spec(max_missing_steps=4), progress=False).report.by_class
    assert (tolerant["positive"]["n_windows"], tolerant["n_flaring_regions_kept"]) == (1550, 87)
