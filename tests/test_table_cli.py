"""Keyword tables from the command line: a TOML spec file, flags, and a store written from them."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest

from flareseq.cli.table_options import (
    add_table_arguments,
    ingest_tables,
    table_options_given,
    table_spec_from_args,
)
from flareseq.data.store import read_manifest, read_store
from flareseq.data.tables.spec import load_table_spec
from flareseq.errors import ConfigError, LeakageError

SPEC = """
[data]
format = "table"
paths = ["part_*.csv"]
region_columns = ["harp"]
time_column = "time"
features = ["a", "b"]
label_column = "label"
window = 3
cadence_minutes = 12
"""


def write_parts(folder):
    t0 = pd.Timestamp("2012-01-01")
    for fold in (0, 1):
        rows = [{"harp": 10 + fold, "time": t0 + pd.Timedelta(minutes=12 * s), "a": s, "b": 2 * s,
                 "label": s == 4} for s in range(6)]
        pd.DataFrame(rows).to_csv(folder / f"part_{fold}.csv", index=False)
    (folder / "spec.toml").write_text(SPEC)


def parser():
    p = argparse.ArgumentParser()
    p.add_argument("inputs", nargs="*")
    add_table_arguments(p)
    return p


def test_spec_file_paths_are_relative_to_it(tmp_path):
    write_parts(tmp_path)
    paths, spec = load_table_spec(tmp_path / "spec.toml")
    assert paths == [str(tmp_path / "part_*.csv")] and spec.window == 3 and spec.features == ("a", "b")


def test_flags_override_the_file_and_lists_are_comma_separated(tmp_path):
    write_parts(tmp_path)
    args = parser().parse_args(["--table-spec", str(tmp_path / "spec.toml"), "--window", "2", "--features", "b, a"])
    assert table_options_given(args)
    _, spec = table_spec_from_args(args)
    assert spec.window == 2 and spec.features == ("b", "a")
    assert not table_options_given(parser().parse_args([]))


def test_flags_alone_make_a_spec_and_the_leak_guard_applies():
    args = parser().parse_args(["--region-columns", "prefix,arpnum", "--time-column", "t_end", "--features",
                                "AREA,FLARE_INDEX", "--cadence-minutes", "96"])
    with pytest.raises(LeakageError, match="FLARE_INDEX"):
        table_spec_from_args(args)
    args = parser().parse_args(["--time-column", "t_end"])
    with pytest.raises(ConfigError, match=r"\['region_columns', 'features', 'cadence_minutes'\] are required"):
        table_spec_from_args(args)


def test_ingest_tables_writes_a_store_with_the_report(tmp_path):
    write_parts(tmp_path)
    args = parser().parse_args(["--table-spec", str(tmp_path / "spec.toml")])
    summary = ingest_tables([], args, tmp_path / "store", progress=False)
    assert "8 windows built (2 positive" in summary and "4 too short" in summary
    data = read_store(tmp_path / "store")
    assert len(data) == 8 and data.meta["fold"].tolist() == [0] * 4 + [1] * 4
    assert data.ids[0] == "10@2012-01-01T00:24:00"
    source = read_manifest(tmp_path / "store")["sources"][0]
    assert source["format"] == "table" and source["n_records"] == source["n_read"] + source["n_skipped"] == 12
    assert source["window_report"]["dropped"]["too_short"] == 4


def test_ingest_and_summary_count_windows_by_class(tmp_path, capsys):
    from flareseq.cli import main

    write_parts(tmp_path)
    # A third region flares at its second row: too short for a 3-step window, so this flaring
    # region keeps no positive window.
    t0 = pd.Timestamp("2012-01-01")
    pd.DataFrame([{"harp": 30, "time": t0 + pd.Timedelta(minutes=12 * s), "a": s, "b": s, "label": s == 1}
                  for s in range(4)]).to_csv(tmp_path / "part_2.csv", index=False)
    args = parser().parse_args(["--table-spec", str(tmp_path / "spec.toml")])
    text = ingest_tables([str(tmp_path / f"part_{k}.csv") for k in range(3)], args, tmp_path / "store",
                         progress=False)
    by_class = read_manifest(tmp_path / "store")["sources"][0]["window_report"]["by_class"]
    assert by_class["positive"] == {"n_candidates": 3, "n_windows": 2,
                                    "dropped": {"too_short": 1, "irregular": 0, "gap": 0, "nan": 0, "stride": 0}}
    assert by_class["negative"]["n_candidates"] == 13 and by_class["negative"]["n_windows"] == 8
    assert by_class["negative"]["dropped"]["too_short"] == 5
    assert (by_class["n_flaring_regions"], by_class["n_flaring_regions_kept"]) == (3, 2)
    assert "positive: 3 row ends -> 2 windows (66.7 % kept); dropped 1 too short" in text
    assert "flaring regions: 2 of 3 keep at least one positive window" in text
    assert main(["summary", str(tmp_path / "store"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "negative: 13 row ends -> 8 windows (61.5 % kept); dropped 5 too short" in out
    assert "flaring regions: 2 of 3" in out


@pytest.mark.parametrize(
    "text, match",
    [
        ("window = 3\n", r"spec.toml: table options \['region_columns'"),
        ("[data]\nformat = \"kaggle\"\n", r"format is 'kaggle'"),
        ("window = \n", "not valid TOML"),
    ],
)
def test_bad_spec_files(tmp_path, text, match):
    (tmp_path / "spec.toml").write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_table_spec(tmp_path / "spec.toml")


def test_flareseq_ingest_reads_tables_with_a_spec_file(tmp_path, capsys):
    from flareseq.cli import main

    write_parts(tmp_path)
    inputs = [str(tmp_path / "part_0.csv"), str(tmp_path / "part_1.csv")]
    code = main(["ingest", *inputs, "--table-spec", str(tmp_path / "spec.toml"), "--out", str(tmp_path / "store"),
                 "--no-progress"])
    assert code == 0
    assert "8 windows built (2 positive" in capsys.readouterr().out
    assert len(read_store(tmp_path / "store")) == 8


def test_flareseq_ingest_refuses_a_leaky_feature_without_traceback(tmp_path, capsys):
    from flareseq.cli import main

    write_parts(tmp_path)
    code = main(["ingest", str(tmp_path / "part_0.csv"), "--out", str(tmp_path / "store"), "--region-columns",
                 "harp", "--time-column", "time", "--features", "a,FLARE_INDEX", "--cadence-minutes", "12"])
    err = capsys.readouterr().err
    assert code == 2 and "flareseq ingest: error:" in err and "'FLARE_INDEX'" in err and "Traceback" not in err
    assert not (tmp_path / "store").exists()
