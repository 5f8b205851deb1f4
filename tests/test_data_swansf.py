"""SWAN-SF reader: names, quirks of the real files, archives, and the cross-format check."""

from __future__ import annotations

import tarfile
import zipfile

import numpy as np
import pandas as pd
import pytest

from flareseq.data import load_dataset
from flareseq.data.kaggle import read_kaggle
from flareseq.data.schema import KAGGLE_PARAMETERS
from flareseq.data.swansf import (
    format_sample_name,
    parse_sample_name,
    read_swansf,
    write_swansf,
)
from flareseq.data.synthetic import synthetic_dataset


def test_name_parsing_and_formatting_agree():
    name = "lab[M]1.5@7571_id[3686]_st[2014-02-04T03:00:00]_et[2014-02-04T14:48:00].csv"
    parsed = parse_sample_name(name)
    assert (parsed.goes_class, parsed.label, parsed.region) == ("M1.5", 1, "3686")
    assert parsed.start == pd.Timestamp("2014-02-04T03:00") and parsed.end == pd.Timestamp("2014-02-04T14:48")
    assert format_sample_name("M1.5", "3686", parsed.start, parsed.end, event=7571) == name
    nf = parse_sample_name("lab[NF]_id[3272]_st[2013-10-11T15:36:00]_et[2013-10-12T03:24:00].csv")
    assert (nf.goes_class, nf.label) == ("NF", 0)
    assert parse_sample_name("lab[X]2.1@1_id[1]_st[2014-01-01T00:00:00]_et[2014-01-01T11:48:00].csv").label == 1


def test_synthetic_files_round_trip_with_partitions(tmp_path):
    made = synthetic_dataset(30, seed=3)
    write_swansf(made, tmp_path)
    read = read_swansf(tmp_path)
    # files are read in path order: match them back by window start
    order = np.argsort(made.meta["start"].to_numpy())
    back = {(r, s): i for i, (r, s) in enumerate(zip(read.meta["region"], read.meta["start"]))}
    for i in order:
        j = back[(made.meta["region"][i], made.meta["start"][i])]
        assert np.array_equal(read.X[j], made.X[i], equal_nan=True) and read.y[j] == made.y[i]
        assert read.meta["fold"][j] == made.meta["fold"][i]  # partition<N> folder -> fold N
        assert read.meta["goes_class"][j] == made.meta["goes_class"][i]


def test_real_samples_quirks(swan_samples):
    dataset = read_swansf(swan_samples / "mvts")
    assert dataset.n_samples == 12 and dataset.n_positive == 4
    assert dataset.feature_names == KAGGLE_PARAMETERS and "USFLUX" not in dataset.aux
    # one time step is entirely empty: all 24 SHARP values missing, XR_MAX present
    empty = np.isnan(dataset.X[:, :, :24]).all(axis=2)
    assert empty.sum() == 1 and not np.isnan(dataset.X[empty][:, 24]).any()
    noaa = dataset.aux["NOAA_AR"]
    assert any(";" in v for v in noaa.ravel() if v)  # ;-joined lists kept as text
    assert dataset.aux["QUALITY"].dtype == np.float64 and dataset.aux["MFLARE_label"].dtype == object
    assert all(v is None or v.startswith("M") for v in dataset.aux["MFLARE_label"].ravel())  # 'None' -> None
    assert set(dataset.meta["goes_class"]) >= {"NF", "M1.5", "B8.3"}


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_archives_read_like_the_folder(swan_samples, tmp_path, kind):
    folder = swan_samples / "mvts"
    target = tmp_path / f"partition3.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(target, "w") as archive:
            for f in sorted(folder.iterdir()):
                archive.write(f, f"partition3/{f.name}")
    else:
        with tarfile.open(target, "w:gz") as archive:
            for f in sorted(folder.iterdir()):
                archive.add(f, f"partition3/{f.name}")
    from_folder = read_swansf(folder)
    from_archive = load_dataset(target)
    index = {k: i for i, k in enumerate(from_archive.ids)}
    order = [index[k] for k in from_folder.ids]
    assert np.array_equal(from_archive.X[order], from_folder.X, equal_nan=True)
    assert (from_archive.meta["fold"] == 3).all()  # partition from the archive path


def test_cross_format_real_samples_are_identical(swan_samples):
    """mvts/ and bigdatacup_layout.jsonl hold the same 12 samples (manifest.csv pairs them):
    identical X, NaN in the same places, identical labels."""
    root = swan_samples
    swan = read_swansf(root / "mvts")
    kaggle = read_kaggle(root / "bigdatacup_layout.jsonl")
    manifest = pd.read_csv(root / "manifest.csv")
    assert len(manifest) == swan.n_samples == kaggle.n_samples == 12
    by_file = {k: i for i, k in enumerate(swan.ids)}
    by_id = {k: i for i, k in enumerate(kaggle.ids)}
    for row in manifest.itertuples():
        i, j = by_file[row.file], by_id[str(row.id)]
        assert np.array_equal(np.isnan(swan.X[i]), np.isnan(kaggle.X[j]))
        assert np.array_equal(swan.X[i], kaggle.X[j], equal_nan=True)
        assert swan.y[i] == kaggle.y[j] == row.classNum
        assert int(np.isnan(swan.X[i]).sum()) == row.nan_values_in_25_params
        assert swan.meta["goes_class"][i] == row.goes_class and swan.meta["region"][i] == str(row.HARPNUM)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402


@settings(max_examples=15, deadline=None)
@given(arrays(np.float32, (2, 60, 25), elements=st.floats(width=32, allow_infinity=False)))
def test_any_float32_values_survive_a_swan_sf_round_trip(tmp_path_factory, X):
    made = synthetic_dataset(2, seed=0).with_X(X)
    folder = tmp_path_factory.mktemp("rt")
    write_swansf(made, folder)
    read = read_swansf(folder)
    order = np.argsort(read.meta["start"].to_numpy())
    assert np.array_equal(read.X[order], X, equal_nan=True)
