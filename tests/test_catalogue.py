"""Catalogue labelling on hand-made flare lists whose answers can be checked by hand.

The rule: a window of region R ending at t is positive when a flare of R of class >= C
starts at s with t < s <= t + H.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flareseq.data.dataset import FlareDataset, empty_meta
from flareseq.data.schema import UNLABELLED
from flareseq.data.tables.catalogue import (
    NO_FLARE,
    catalogue_labels,
    flux_to_goes_class,
    goes_class_flux,
    label_from_catalogue,
    read_catalogue,
)
from flareseq.errors import ConfigError, DataFormatError

END = pd.Timestamp("2011-02-14T12:00:00")


def catalogue(*flares):
    """Flares as (hours after END, class, region)."""
    return pd.DataFrame(
        {
            "start_time": [(END + pd.Timedelta(hours=h)).isoformat() for h, _, _ in flares],
            "goes_class": [c for _, c, _ in flares],
            "noaa_ar": [r for _, _, r in flares],
        }
    )


def label_one(flares, region="11158", **kwargs):
    labels = catalogue_labels([region], [END], catalogue(*flares), **kwargs)
    return int(labels.y[0]), labels.goes_class[0]


@pytest.mark.parametrize(
    "flares, expected",
    [
        ([], (0, NO_FLARE)),
        ([(0.0, "X2.2", "11158")], (0, NO_FLARE)),  # at the window end: a nowcast, not counted
        ([(1 / 3600, "M1.0", "11158")], (1, "M1.0")),  # one second later counts
        ([(24.0, "M1.0", "11158")], (1, "M1.0")),  # exactly at the horizon: included
        ([(24.0 + 1 / 60, "X9.0", "11158")], (0, NO_FLARE)),  # a minute past the horizon
        ([(5.0, "C9.9", "11158")], (0, "C9.9")),  # just below the threshold
        ([(5.0, "M1.0", "11158")], (1, "M1.0")),
        ([(5.0, "C10", "11158")], (1, "M1.0")),  # C10 is M1.0 by flux
        ([(3.0, "X1.5", "11158")], (1, "X1.5")),
        ([(3.0, "X28", "11158")], (1, "X28.0")),
        ([(3.0, "M5.0", "11159")], (0, NO_FLARE)),  # another region's flare
        ([(-2.0, "X1.0", "11158")], (0, NO_FLARE)),  # before the window end
        ([(2.0, "C3.1", "11158"), (6.0, "M2.4", "11158"), (9.0, "C7.0", "11158")], (1, "M2.4")),
        ([(2.0, "c3.1", "11158"), (4.0, "b5.0", "11158")], (0, "C3.1")),  # lower case classes
    ],
)
def test_m_class_within_24_hours(flares, expected):
    assert label_one(flares) == expected


@pytest.mark.parametrize(
    "min_class, horizon, expected",
    [("C", 24, 1), ("C5", 24, 0), ("M", 24, 0), ("C", 1, 0), ("C", 2, 1), ("B9.9", 48, 1)],
)
def test_class_and_horizon_are_configurable(min_class, horizon, expected):
    flares = [(2.0, "C3.0", "11158"), (30.0, "M1.0", "11158")]
    y, _ = label_one(flares, min_class=min_class, horizon_hours=horizon)
    assert y == expected


def test_windows_of_several_regions_and_multi_region_keys():
    cat = catalogue((3.0, "M1.0", "11158"), (4.0, "C2.0", "11159"), (5.0, "X1.0", "11160"))
    ends = [END, END, END, END + pd.Timedelta(hours=4), END]
    regions = ["11158", "11159", "11161;11160", "11158", None]
    labels = catalogue_labels(regions, ends, cat)
    assert labels.y.tolist() == [1, 0, 1, 0, UNLABELLED]
    assert labels.goes_class.tolist() == ["M1.0", "C2.0", "X1.0", NO_FLARE, None]
    assert (labels.n_positive, labels.n_negative, labels.n_no_region) == (2, 2, 1)


def test_windows_past_the_catalogue_end_are_unlabelled_not_negative():
    cat = catalogue((3.0, "C1.0", "11158"))
    ends = [END, END + pd.Timedelta(hours=30)]
    labels = catalogue_labels(["11158", "11158"], ends, cat, catalogue_end=END + pd.Timedelta(days=2))
    assert labels.y.tolist() == [0, UNLABELLED]
    assert labels.n_beyond_catalogue == 1


def test_mismatched_region_keys_are_an_error_not_all_negative():
    cat = catalogue((3.0, "M1.0", "11158"))
    with pytest.raises(ConfigError, match=r"no window region occurs.*TARP:4780.*11158"):
        catalogue_labels(["TARP:4780"], [END], cat)


def test_flares_without_region_are_counted_and_left_out():
    cat = read_catalogue(catalogue((3.0, "M1.0", "0"), (4.0, "M2.0", ""), (5.0, "C1.0", "11158")))
    assert len(cat) == 1 and cat.n_unattributed == 2


@pytest.mark.parametrize(
    "text, flux",
    [("A1.0", 1e-8), ("B5", 5e-7), ("C9.9", 9.9e-6), ("M1.5", 1.5e-5), ("X10", 1e-3), ("m", 1e-5), (" x2.0 ", 2e-4)],
)
def test_goes_class_flux(text, flux):
    assert goes_class_flux(text) == pytest.approx(flux)


@pytest.mark.parametrize("text", ["", "N1.0", "M", "M-1", "M0", "1.5M", "MX1"])
def test_bad_classes_are_refused(text):
    with pytest.raises(ConfigError, match="not a GOES class"):
        goes_class_flux(text, magnitude_required=True)


def test_flux_to_class_round_trips():
    for text in ("A2.0", "B9.9", "C1.0", "M1.5", "X28.0", "C1.25"):
        assert flux_to_goes_class(goes_class_flux(text)) == text


def test_catalogue_file_errors_name_the_line(tmp_path):
    path = tmp_path / "goes.csv"
    path.write_text("start_time,goes_class,noaa_ar\n2011-02-15T01:44:00,X2.2,11158\n2011-02-16T01:00:00,Q3,11158\n")
    with pytest.raises(DataFormatError, match=r"goes.csv, line 3: field 'goes_class'.*'Q3'"):
        read_catalogue(path)
    path.write_text("start_time,goes_class,noaa_ar\nyesterday,X2.2,11158\n")
    with pytest.raises(DataFormatError, match=r"line 2: field 'start_time'.*'yesterday'"):
        read_catalogue(path)
    path.write_text("when,goes_class,noaa_ar\n2011-02-15T01:44:00,X2.2,11158\n")
    with pytest.raises(DataFormatError, match=r"start time column.*found columns \['when'"):
        read_catalogue(path)
    assert len(read_catalogue(path, start_column="when")) == 1


def test_label_from_catalogue_sets_y_and_goes_class():
    meta = empty_meta(3)
    meta["region"] = pd.Series(["11158", "11158", "11159"], dtype="string")
    meta["end"] = pd.to_datetime([END, END + pd.Timedelta(hours=20), END])
    data = FlareDataset(X=np.zeros((3, 2, 1), np.float32), y=None, ids=np.array(["a", "b", "c"]),
                        feature_names=("f",), meta=meta)
    labelled = label_from_catalogue(data, catalogue((13.7, "X2.2", "11158")))
    assert labelled.y.tolist() == [1, 0, 0]
    assert labelled.meta["goes_class"].tolist() == ["X2.2", NO_FLARE, NO_FLARE]
    with pytest.raises(ConfigError, match="match_on='noaa' is not a metadata column"):
        label_from_catalogue(data, catalogue((13.7, "X2.2", "11158")), match_on="noaa")


@settings(max_examples=50, deadline=None)
@given(
    flares=st.lists(st.tuples(st.integers(-30, 60), st.sampled_from(["B5.0", "C9.9", "M1.0", "X2.0"]),
                              st.sampled_from(["1", "2", "3"])), max_size=12),
    windows=st.lists(st.tuples(st.integers(-10, 40), st.sampled_from(["1", "2", "3", "2;3", None])),
                     min_size=1, max_size=12),
    horizon=st.sampled_from([1, 6, 24]),
)
def test_labels_match_a_brute_force_search(flares, windows, horizon):
    cat = catalogue(*flares) if flares else pd.DataFrame({"start_time": [], "goes_class": [], "noaa_ar": []})
    ends = [END + pd.Timedelta(hours=h) for h, _ in windows]
    labels = catalogue_labels([r for _, r in windows], ends, cat, horizon_hours=horizon, min_class="M")
    for (h, region), y in zip(windows, labels.y):
        if region is None:
            assert y == UNLABELLED
            continue
        hit = any(r in region.split(";") and h < fh <= h + horizon and c[0] in "MX" for fh, c, r in flares)
        assert y == int(hit)
