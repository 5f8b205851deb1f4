"""``flareseq build-dataset``: windows, labels, exclusions and a time partition without leaks."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from live_server import SyntheticSun, start_server

from flareseq.cli import main
from flareseq.data.live.dataset import (
    EXCLUSIONS,
    DatasetOptions,
    build_dataset,
    build_dataset_from_files,
)
from flareseq.data.live.flares import fetch_flares
from flareseq.data.live.jsoc import SharpQuery, fetch_sharp
from flareseq.data.store import read_manifest, read_store
from flareseq.data.tables.catalogue import goes_class_flux
from flareseq.errors import ConfigError

START, DAYS = datetime(2024, 5, 1), 12


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    server, state = start_server(SyntheticSun(start=START, days=DAYS, n_regions=12, seed=2))
    folder = tmp_path_factory.mktemp("sources")
    fetch_sharp(SharpQuery(start=START, end=START + timedelta(days=DAYS)), folder / "sharp.csv",
                server_url=state.jsoc_url, backoff_s=0, echo=None)
    fetch_flares(START, START + timedelta(days=DAYS + 1), folder / "flares.csv", hek_url=state.hek_url, echo=None)
    yield state, folder
    server.shutdown()


def _build(folder, out, **options):
    report = build_dataset_from_files(folder / "sharp.csv", folder / "flares.csv", out,
                                      options=DatasetOptions(**options), progress=False)
    return report, read_store(out, aux=True)


def test_windows_labels_and_every_exclusion_accounted_for(sources, tmp_path):
    state, folder = sources
    report, data = _build(folder, tmp_path / "store")
    assert (data.n_timesteps, data.n_features) == (60, 24)
    assert report.n_samples == data.n_samples > 0 and report.n_positive == data.n_positive > 0
    assert report.n_windows_built == report.n_samples + sum(report.excluded[k] for k in EXCLUSIONS)
    # one window per hour per HARP: consecutive ends of a HARP are whole hours apart
    for _, meta in data.meta.groupby("region"):
        gaps = meta["end"].sort_values().diff().dropna()
        assert ((gaps % pd.Timedelta(hours=1)) == pd.Timedelta(0)).all()
    assert (data.meta["end"] - data.meta["start"] == pd.Timedelta(minutes=12 * 59)).all()
    # labels, recomputed by brute force from the served flares and the HARP's NOAA numbers
    noaa = {r.harp: {str(n) for n in r.noaa} for r in state.sun.regions}
    for i in np.random.default_rng(0).choice(data.n_samples, size=40, replace=False):
        harp, end = int(data.meta["region"][i]), data.meta["end"][i]
        positive = any(
            f["ar_noaanum"] and str(f["ar_noaanum"] if f["ar_noaanum"] > 10000 else f["ar_noaanum"] + 10000) in noaa[harp]
            and end < pd.Timestamp(f["event_starttime"]) <= end + pd.Timedelta(hours=24)
            and goes_class_flux(f["fl_goescls"]) >= 1e-5
            for f in state.sun.flares)
        assert data.y[i] == int(positive)
    # a HARP without a NOAA number cannot be labelled: excluded
    unnumbered = {str(r.harp) for r in state.sun.regions if not r.noaa}
    assert unnumbered and not set(data.meta["region"]) & unnumbered and report.excluded["no_noaa_region"] > 0
    # missing records stay missing (NaN), never interpolated; the side series say which
    absent = data.aux["RECORD_MISSING"] == 1
    assert absent.any() and np.isnan(data.X[absent]).all()
    assert set(data.aux) >= {"QUALITY", "LON_MIN", "LON_MAX", "NOAA_AR"}
    manifest = read_manifest(tmp_path / "store")
    assert manifest["sources"][0]["build_report"]["n_samples"] == data.n_samples


def test_folds_share_no_region_and_no_day(sources, tmp_path):
    _, folder = sources
    report, data = _build(folder, tmp_path / "store", partitions=3)
    assert sorted(data.meta["fold"].unique()) == [1, 2, 3]
    assert data.meta.groupby("region")["fold"].nunique().max() == 1
    days_of = {}
    for start, end, fold in zip(data.meta["start"], data.meta["end"], data.meta["fold"]):
        for day in pd.date_range(start.floor("D"), (end + pd.Timedelta(hours=24)).floor("D"), freq="D"):
            days_of.setdefault(day, set()).add(fold)
    assert all(len(f) == 1 for f in days_of.values())
    assert (report.shared_regions, report.shared_days) == (0, 0)
    assert report.excluded["partition_boundary"] > 0
    # folds are consecutive in time
    assert data.meta.groupby("fold")["end"].max().is_monotonic_increasing


def test_partition_dates_near_limb_and_missing_options(sources, tmp_path):
    _, folder = sources
    report, data = _build(folder, tmp_path / "a", partition_dates=("2024-05-07",), max_longitude=60,
                          unnumbered="negative")
    assert sorted(data.meta["fold"].unique()) == [1, 2]
    assert (data.meta.loc[data.meta["fold"] == 1, "end"] < pd.Timestamp("2024-05-07")).all()
    last = np.fmax(np.abs(data.aux["LON_MIN"][:, -1]), np.abs(data.aux["LON_MAX"][:, -1]))
    assert (last <= 60).all() and report.excluded["near_limb"] > 0
    assert report.excluded["no_noaa_region"] == 0  # labelled negative instead
    report, data = _build(folder, tmp_path / "b", missing="drop")
    assert not np.isnan(data.X).any() and report.table_drops["nan"] > 0
    with pytest.raises(ConfigError, match="whole number"):
        DatasetOptions(stride_hours=0.3)


def test_build_dataset_fetches_reuses_and_refuses_stale_sources(sources, tmp_path, capsys):
    state, _ = sources
    out = tmp_path / "store"
    args = ["build-dataset", "--start", "2024-05-01", "--end", "2024-05-09", "--out", str(out),
            "--jsoc-url", state.jsoc_url, "--hek-url", state.hek_url, "--no-progress", "--partitions", "2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "folds share 0 HARP(s) and 0 day(s)" in printed and (tmp_path / "store.sources" / "sharp.csv").is_file()
    assert main([*args, "--overwrite"]) == 0
    assert "using the keywords already fetched" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="fetched for another request"):
        build_dataset("2024-05-01", "2024-05-10", tmp_path / "other", work_dir=tmp_path / "store.sources",
                      server_url=state.jsoc_url, hek_url=state.hek_url, echo=None)
