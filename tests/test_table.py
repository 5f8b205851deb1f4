"""Keyword tables into windows, on small hand-made tables whose windows can be listed by hand."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from flareseq.data.tables.windows import (
    TableSpec,
    build_table_windows,
    read_table_windows,
)
from flareseq.errors import ConfigError, DataFormatError, FlareseqWarning, LeakageError

T0 = pd.Timestamp("2001-03-01T00:00:00")


def table(region_steps, *, value=None, label=None, cadence=10.0):
    """Rows for ``{region: [step, ...]}`` at ``T0 + step * cadence`` minutes; feature ``a`` is
    ``100 * region_index + step`` unless ``value`` gives it, ``b`` is ``-a``."""
    rows = []
    for r, (region, steps) in enumerate(region_steps.items()):
        for step in steps:
            a = 100 * r + step if value is None else value(region, step)
            rows.append({
                "harp": region, "time": (T0 + pd.Timedelta(minutes=step * cadence)).isoformat(sep=" "),
                "a": a, "b": -a, "label": (step % 3 == 0) if label is None else label(region, step),
            })
    return pd.DataFrame(rows)


def spec(**options):
    base = dict(region_columns=["harp"], time_column="time", features=["a", "b"], label_column="label",
                cadence_minutes=10, window=3)
    return TableSpec(**{**base, **options})


def windows(frame, tmp_path, name="t.csv", **options):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return build_table_windows(path, spec(**options), progress=False)


def test_consecutive_rows_make_one_window_per_row_after_the_first_n_minus_1(tmp_path):
    result = windows(table({7: range(6)}), tmp_path)
    data, report = result.dataset, result.report
    assert data.X.shape == (4, 3, 2) and data.X.dtype == np.float32
    assert data.X[:, :, 0].tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]]
    assert data.X[0, :, 1].tolist() == [0, -1, -2]
    assert data.y.tolist() == [0, 1, 0, 0]  # label of the last row: steps 2, 3, 4, 5
    assert data.ids[0] == "7@2001-03-01T00:20:00"
    assert data.meta["start"].iloc[0] == T0 and data.meta["end"].iloc[0] == T0 + pd.Timedelta(minutes=20)
    assert data.meta["region"].tolist() == ["7"] * 4 and data.meta["source"].iloc[0] == "t.csv"
    assert report.dropped["too_short"] == 2 and report.n_windows == 4


def test_rows_in_any_order_give_the_same_windows(tmp_path):
    frame = table({7: range(6), 3: range(4)})
    shuffled = frame.sample(frac=1.0, random_state=1)
    a = windows(frame, tmp_path, "a.csv").dataset
    b = windows(shuffled, tmp_path, "b.csv").dataset
    assert a.ids.tolist() == b.ids.tolist()
    np.testing.assert_array_equal(a.X, b.X)
    assert a.ids[0].startswith("3@")  # regions in key order


def test_several_region_columns_are_joined(tmp_path):
    frame = table({4780: range(4)}).assign(prefix="TARP")
    data = windows(frame, tmp_path, region_columns=["prefix", "harp"]).dataset
    assert data.ids.tolist() == ["TARP:4780@2001-03-01T00:20:00", "TARP:4780@2001-03-01T00:30:00"]


def test_a_gap_drops_the_windows_across_it(tmp_path):
    result = windows(table({1: [0, 1, 2, 4, 5, 6]}), tmp_path)  # step 3 is missing
    assert [i[-8:] for i in result.dataset.ids] == ["00:20:00", "01:00:00"]
    assert result.report.dropped["gap"] == 2 and result.report.dropped["too_short"] == 2


def test_allowed_missing_steps_are_interpolated_linearly(tmp_path):
    frame = table({1: [0, 1, 2, 4, 5, 6]}, value=lambda r, s: 10.0 * s)
    result = windows(frame, tmp_path, max_missing_steps=1)
    data = result.dataset
    assert [i[-8:] for i in data.ids] == ["00:20:00", "00:40:00", "00:50:00", "01:00:00"]
    assert data.X[:, :, 0].tolist() == [[0, 10, 20], [20, 30, 40], [30, 40, 50], [40, 50, 60]]
    # The window ending at 00:50 starts in the gap: its first step and start time are interpolated.
    assert data.meta["start"].iloc[2] == T0 + pd.Timedelta(minutes=30)
    assert data.meta["n_interpolated"].tolist() == [0, 1, 1, 0]
    assert (result.report.n_interpolated_windows, result.report.n_interpolated_steps) == (2, 2)


def test_a_gap_longer_than_allowed_still_drops(tmp_path):
    result = windows(table({1: [0, 1, 2, 5, 6, 7]}), tmp_path, max_missing_steps=1)  # two missing
    assert [i[-8:] for i in result.dataset.ids] == ["00:20:00", "01:10:00"]
    assert result.report.dropped["gap"] == 2


def test_jitter_within_tolerance_is_accepted_and_beyond_it_breaks_the_cadence(tmp_path):
    frame = table({1: range(5)})
    times = pd.to_datetime(frame["time"])
    # Steps of 10:25, 9:15, 10:20 and 10:00: the tolerance applies to each step.
    frame["time"] = (times + pd.to_timedelta([0, 25, -20, 0, 0], unit="s")).astype(str)
    assert windows(frame, tmp_path, cadence_tolerance_minutes=1).report.n_windows == 3
    result = windows(frame, tmp_path, cadence_tolerance_minutes=0.5)
    assert result.report.n_windows == 1 and result.report.dropped["irregular"] == 2


def test_nan_features_drop_the_windows_that_hold_them_or_are_kept(tmp_path):
    frame = table({1: range(6)})
    frame.loc[3, "a"] = np.nan
    dropped = windows(frame, tmp_path)
    assert [i[-8:] for i in dropped.dataset.ids] == ["00:20:00"]
    assert dropped.report.dropped["nan"] == 3
    kept = windows(frame, tmp_path, nan_policy="keep").dataset
    assert len(kept) == 4 and kept.n_missing_values == 3


def test_stride_keeps_every_kth_window_of_each_region(tmp_path):
    result = windows(table({1: range(8), 2: range(5)}), tmp_path, stride=2)
    assert [i.split("@")[0] + i[-6:-3] for i in result.dataset.ids] == ["1:20", "1:40", "1:00", "2:20", "2:40"]
    assert result.report.dropped["stride"] == 4


def test_unlabelled_rows_are_history_but_do_not_end_windows(tmp_path):
    frame = table({1: range(5)}).astype({"label": object})
    frame.loc[[2, 4], "label"] = None
    result = windows(frame, tmp_path)
    assert [i[-8:] for i in result.dataset.ids] == ["00:30:00"]
    assert result.report.n_unlabelled_rows == 2 and result.report.n_candidates == 3


def test_without_labels_every_row_ends_a_window_and_y_is_none(tmp_path):
    data = windows(table({1: range(5)}), tmp_path, label_column=None).dataset
    assert data.y is None and len(data) == 3


@pytest.mark.parametrize("values, expected", [(["True", "false", "1", "0"], [1, 0, 1, 0]), ([1.0, 0.0, 0.0, 1.0], [1, 0, 0, 1])])
def test_label_spellings(tmp_path, values, expected):
    frame = table({1: range(4)}).assign(label=values)
    assert windows(frame, tmp_path, window=1).dataset.y.tolist() == expected


def test_report_accounts_for_every_candidate(tmp_path):
    frame = table({1: [0, 1, 2, 4, 5, 6, 7, 20, 21, 22, 23], 2: range(9)})
    frame.loc[5, "b"] = np.nan
    report = windows(frame, tmp_path, stride=2).report
    assert report.n_candidates == report.n_windows + sum(report.dropped.values()) == len(frame)
    assert "windows built" in report.summary()


def test_folds_from_file_names_an_explicit_mapping_or_a_column(tmp_path):
    for fold, regions in ((0, {1: range(4)}), (1, {2: range(4)})):
        table(regions).to_csv(tmp_path / f"part_{fold}.csv", index=False)
    data = read_table_windows(str(tmp_path / "part_*.csv"), spec(), progress=False)
    assert data.meta["fold"].tolist() == [0, 0, 1, 1]
    mapped = read_table_windows({tmp_path / "part_0.csv": 5, tmp_path / "part_1.csv": 6}, spec(), progress=False)
    assert mapped.meta["fold"].tolist() == [5, 5, 6, 6]
    table({1: range(4)}).assign(partition=3).to_csv(tmp_path / "one.csv", index=False)
    column = read_table_windows(tmp_path / "one.csv", spec(fold_column="partition"), progress=False)
    assert column.meta["fold"].tolist() == [3, 3]


def test_a_region_in_two_folds_warns(tmp_path):
    table({1: range(4)}).to_csv(tmp_path / "part_0.csv", index=False)
    table({1: range(4, 8)}).to_csv(tmp_path / "part_1.csv", index=False)
    with pytest.warns(FlareseqWarning, match="more than one fold"):
        data = read_table_windows(str(tmp_path / "part_*.csv"), spec(), progress=False)
    assert len(data) == 6  # the region's rows still join into one series


def test_parquet_gives_the_same_windows_as_csv(tmp_path):
    frame = table({1: [0, 1, 2, 4, 5], 2: range(5)})
    frame.to_parquet(tmp_path / "t.parquet")
    a = windows(frame, tmp_path, max_missing_steps=1).dataset
    b = build_table_windows(tmp_path / "t.parquet", spec(max_missing_steps=1), progress=False).dataset
    np.testing.assert_array_equal(a.X, b.X)
    assert a.ids.tolist() == b.ids.tolist() and a.y.tolist() == b.y.tolist()


def test_catalogue_labelling_through_the_spec(tmp_path):
    frame = table({1: range(5)}).assign(noaa=11158).drop(columns="label")
    catalogue = tmp_path / "goes.csv"
    catalogue.write_text("start_time,goes_class,noaa_ar\n2001-03-01T00:45:00,M1.0,11158\n")
    data = windows(frame, tmp_path, label_column=None, catalogue=str(catalogue), noaa_column="noaa",
                   catalogue_match="noaa", horizon_hours=0.4).dataset
    # Windows end at 00:20, 00:30, 00:40; the flare at 00:45 is within 24 min of the last two.
    assert data.y.tolist() == [0, 1, 1]
    assert data.meta["goes_class"].tolist() == ["NF", "M1.0", "M1.0"]


# -- bad input -----------------------------------------------------------------------------
def _corrupt(frame, row, column, value):
    frame = frame.astype({column: object})
    frame.loc[row, column] = value
    return frame


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda f: f.drop(columns="a"), r"line 1: field 'a': expected a column named 'a'"),
        (lambda f: f.rename(columns={"time": "tme"}), r"field 'time'.*Did you mean 'tme'"),
        (lambda f: _corrupt(f, 2, "a", "1.2.3"), r"line 4: field 'a': expected a number.*'1.2.3'"),
        (lambda f: _corrupt(f, 1, "time", "soon"), r"line 3: field 'time': expected a time.*'soon'.*time_format"),
        (lambda f: _corrupt(f, 3, "label", "maybe"), r"line 5: field 'label': expected a label True/False.*'maybe'"),
        (lambda f: _corrupt(f, 0, "harp", None), r"line 2: field 'harp': expected a region identifier"),
        (lambda f: pd.concat([f, f.iloc[[2]]]), r"line 6: field 'time': expected one row per region and time.*line 4"),
        (lambda f: f.iloc[:0], r"expected at least one row, found a header without rows"),
    ],
)
def test_bad_tables_name_file_line_and_field(tmp_path, make, match):
    with pytest.raises(DataFormatError, match=match):
        windows(make(table({1: range(4)})), tmp_path)


def test_an_empty_file_is_an_error(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataFormatError, match="empty.csv, line 1: expected a header line"):
        read_table_windows(tmp_path / "empty.csv", spec(), progress=False)


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"window": 0}, ConfigError, r"window must be an integer >= 1, got 0"),
        ({"stride": 1.5}, ConfigError, r"stride must be an integer"),
        ({"max_missing_steps": 3}, ConfigError, r"max_missing_steps=3 must be below window=3"),
        ({"cadence_tolerance_minutes": 5}, ConfigError, r"below half the cadence \(5 min\), got 5"),
        ({"nan_policy": "zero"}, ConfigError, r"nan_policy must be one of \['drop', 'keep'\]"),
        ({"catalogue": "goes.csv"}, ConfigError, r"both label_column and catalogue"),
        ({"features": ["a", "FLARE_INDEX"]}, LeakageError, r"'FLARE_INDEX'"),
        ({"features": ["a", "label"]}, LeakageError, r"label column itself"),
        ({"features": "a"}, ConfigError, r"list of column names"),
        ({"fold_pattern": r"\d+"}, ConfigError, r"needs a group"),
        ({"catalogue_match": "noaa", "label_column": None, "catalogue": "g.csv"}, ConfigError, "needs noaa_column"),
        ({"label_column": None, "catalogue": "g.csv", "min_class": "Q1"}, ConfigError, "not a GOES class"),
    ],
)
def test_bad_specs_are_config_errors(options, error, match):
    with pytest.raises(error, match=match):
        spec(**options)


def test_spec_from_and_to_dict():
    options = dict(region_columns=["harp"], time_column="time", features=["a"], cadence_minutes=12)
    made = TableSpec.from_dict(options)
    assert TableSpec.from_dict(made.to_dict()) == made and made.to_dict()["features"] == ["a"]
    with pytest.raises(ConfigError, match=r"unknown table option\(s\) \['windw'\]; valid options are \['region_columns'"):
        TableSpec.from_dict({**options, "windw": 3})
    with pytest.raises(ConfigError, match=r"\['cadence_minutes'\] are required"):
        TableSpec.from_dict({k: v for k, v in options.items() if k != "cadence_minutes"})


def test_leaky_override_warns_and_reads(tmp_path):
    with pytest.warns(FlareseqWarning, match="not forecasting skill"):
        leaky = dataclasses.replace(spec(), features=("a", "label2"), leaky_features=("label2",),
                                    allow_leaky_features=True)
    frame = table({1: range(4)}).assign(label2=1.0)
    frame.to_csv(tmp_path / "t.csv", index=False)
    assert read_table_windows(tmp_path / "t.csv", leaky, progress=False).feature_names == ("a", "label2")


def test_compressed_tab_separated_tables_and_a_time_format(tmp_path):
    frame = table({1: range(4)})
    frame["time"] = pd.to_datetime(frame["time"]).dt.strftime("%Y.%m.%d_%H:%M:%S_TAI")  # JSOC style
    frame.to_csv(tmp_path / "t.tsv.gz", sep="\t", index=False)
    data = read_table_windows(tmp_path / "t.tsv.gz", spec(time_format="%Y.%m.%d_%H:%M:%S_TAI"), progress=False)
    assert data.ids.tolist() == ["1@2001-03-01T00:20:00", "1@2001-03-01T00:30:00"]
    with pytest.raises(DataFormatError, match=r"line 2: field 'time': expected a time in ISO 8601.*_TAI"):
        read_table_windows(tmp_path / "t.tsv.gz", spec(), progress=False)


def test_progress_bars_stay_silent_off_a_terminal(tmp_path, capsys):
    table({1: range(4)}).to_csv(tmp_path / "t.csv", index=False)
    assert len(read_table_windows(tmp_path / "t.csv", spec(), progress=True)) == 2
    assert capsys.readouterr().err == ""


def test_empty_text_options_mean_none_as_toml_has_no_null():
    made = spec(label_column="", fold_pattern="", catalogue="")
    assert made.label_column is None and made.fold_pattern is None and made.catalogue is None
