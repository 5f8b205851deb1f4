"""``flareseq fetch sharp`` against a loopback JSOC: pages, retries, resume, JSOC errors, the table."""

from __future__ import annotations

from datetime import datetime, timedelta

import drms  # noqa: F401  (a test dependency: the JSOC client under test)
import numpy as np
import pandas as pd
import pytest
from live_server import SyntheticSun, start_server

from flareseq.cli import main
from flareseq.data.live.jsoc import JSOCError, SharpQuery, fetch_sharp, partial_dir
from flareseq.data.live.sharp import (
    normalise_noaa_list,
    parse_numbers,
    parse_quality,
    parse_t_rec,
)
from flareseq.errors import ConfigError, DataFormatError

START, DAYS = datetime(2024, 5, 1), 4


@pytest.fixture
def live():
    server, state = start_server(SyntheticSun(start=START, days=DAYS, n_regions=5, seed=3))
    yield state
    server.shutdown()


def _query(**kw) -> SharpQuery:
    return SharpQuery(start=START, end=START + timedelta(days=DAYS), **kw)


def _fetch(state, out, **kw):
    return fetch_sharp(kw.pop("query", _query()), out, server_url=state.jsoc_url, backoff_s=0, echo=None, **kw)


def test_fetch_writes_every_record_and_marks_the_missing_ones(live, tmp_path):
    report = _fetch(live, tmp_path / "sharp.csv")
    table = pd.read_csv(tmp_path / "sharp.csv", dtype={"NOAA_ARS": str}, keep_default_na=False, na_values=[""])
    served = sum(len(r) for r in live.sun.records.values())
    real = table[table["RECORD_MISSING"] == 0]
    assert report.n_records == served == len(real)
    assert report.n_pages == DAYS and len(live.rs_list_requests()) == DAYS  # one query per day
    # every slot between a HARP's first and last record is a row; the absent ones are empty
    for harp, group in table.groupby("HARPNUM"):
        times = pd.to_datetime(group["T_REC"])
        assert (times.diff().dropna() == pd.Timedelta(minutes=12)).all()
        served_times = set(live.sun.records[harp])
        missing = group[group["RECORD_MISSING"] == 1]
        assert not set(pd.to_datetime(missing["T_REC"])) & served_times
        assert missing["USFLUX"].isna().all()
    assert report.n_missing_records == int((table["RECORD_MISSING"] == 1).sum()) > 0
    # values as JSOC wrote them: a nan stays missing, QUALITY hex -> int, NOAA_ARS joined by ';'
    harp, moment = 11000, min(live.sun.records[11000])
    record = live.sun.records[harp][moment]
    row = real[(real["HARPNUM"] == harp) & (pd.to_datetime(real["T_REC"]) == moment)].iloc[0]
    assert row["USFLUX"] == pytest.approx(float(record["USFLUX"]), rel=1e-6)
    assert row["QUALITY"] == int(record["QUALITY"], 16)
    assert row["NOAA_ARS"] == record["NOAA_ARS"].replace(",", ";")
    n_nan = sum(v == "nan" for r in live.sun.records.values() for rec in r.values() for v in rec.values())
    assert int(real[list(_query().features)].isna().sum().sum()) == n_nan
    assert not partial_dir(tmp_path / "sharp.csv").exists()


def test_harp_selection_and_cadence_go_into_the_record_set(live, tmp_path):
    _fetch(live, tmp_path / "two.csv", query=_query(harps=(11001, 11000), cadence="1h"))
    assert all("[11000,11001][" in r and "@60m" in r for r in live.rs_list_requests())
    table = pd.read_csv(tmp_path / "two.csv")
    assert set(table["HARPNUM"]) <= {11000, 11001}
    assert (pd.to_datetime(table["T_REC"]).dt.minute == 0).all()


def test_the_spec_file_reads_the_table_through_ingest(live, tmp_path):
    _fetch(live, tmp_path / "sharp.csv")
    code = main(["ingest", str(tmp_path / "sharp.csv"), "--table-spec", str(tmp_path / "sharp.csv.toml"),
                 "--out", str(tmp_path / "store"), "--no-progress"])
    assert code == 0
    from flareseq.data.store import read_store

    store = read_store(tmp_path / "store")
    assert store.n_timesteps == 60 and store.n_features == 24 and store.n_samples > 0
    assert np.isnan(store.X).any()  # missing records stay missing: nothing was interpolated


def test_a_dropped_connection_is_retried(live, tmp_path):
    clean = _fetch(live, tmp_path / "clean.csv")
    live.drops["2024.05.02"] = 1  # the answer for the second day is cut in half once
    report = _fetch(live, tmp_path / "sharp.csv", retries=2)
    assert report.n_retries == 1
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "sharp.csv"), pd.read_csv(tmp_path / "clean.csv"))
    assert clean.n_records == report.n_records


def test_an_interrupted_fetch_resumes_where_it_stopped(live, tmp_path):
    _fetch(live, tmp_path / "clean.csv")
    live.seen.clear()
    live.drops["2024.05.03"] = 10  # the third day keeps failing: more than the retries
    out = tmp_path / "sharp.csv"
    with pytest.raises(JSOCError, match=r"run the same command again to resume") as info:
        _fetch(live, out, retries=2)
    assert "page 3/4" in str(info.value) and "after 3 attempt(s)" in str(info.value)
    assert not out.exists()
    assert sorted(p.name for p in partial_dir(out).glob("page-*")) == ["page-00001.csv", "page-00002.csv"]
    live.drops.clear()
    live.seen.clear()
    report = _fetch(live, out)
    assert (report.n_resumed_pages, report.n_fetched_pages) == (2, 2)
    asked = live.rs_list_requests()
    assert len(asked) == 2 and not any("2024.05.01" in a or "2024.05.02" in a for a in asked)
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(tmp_path / "clean.csv"))


def test_a_jsoc_error_answer_stops_with_its_message_and_a_rerun_resumes(live, tmp_path, capsys):
    live.errors["2024.05.02"] = 1
    out = tmp_path / "sharp.csv"
    code = main(["fetch", "sharp", "--start", "2024-05-01", "--end", "2024-05-05", "--out", str(out),
                 "--jsoc-url", live.jsoc_url, "--backoff", "0", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    message = err.strip().splitlines()[-1]
    assert message.startswith("flareseq fetch: error: JSOC answered an error to page 2/4")
    assert "DRMS query failed: cannot open record set" in message and "[status=1]" in message
    assert "run the same command again to resume" in message
    assert sum("2024.05.02" in r for r in live.rs_list_requests()) == 1  # an answer is not retried
    code = main(["fetch", "sharp", "--start", "2024-05-01", "--end", "2024-05-05", "--out", str(out),
                 "--jsoc-url", live.jsoc_url, "--backoff", "0", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0 and "1 resumed from a previous run" in captured.out
    assert "page 1/4 [2024-05-01T00:00, 2024-05-02T00:00): already fetched" in captured.err


def test_an_unreadable_answer_is_a_clear_error(live, tmp_path):
    live.garbled["2024.05.01"] = 1  # keyword lists of different lengths
    with pytest.raises(JSOCError, match=r"page 1/4 .*the answer of JSOC could not be read \(ValueError"):
        _fetch(live, tmp_path / "sharp.csv")
    assert sum("2024.05.01" in r for r in live.rs_list_requests()) == 1  # not retried: it is not the network


def test_another_query_over_a_partial_fetch_is_refused_until_restart(live, tmp_path):
    live.drops["2024.05.02"] = 10
    out = tmp_path / "sharp.csv"
    with pytest.raises(JSOCError):
        _fetch(live, out, retries=0)
    live.drops.clear()
    with pytest.raises(ConfigError, match=r"another query \(differs in \['cadence'\]\).*--restart"):
        _fetch(live, out, query=_query(cadence="1h"))
    report = _fetch(live, out, query=_query(cadence="1h"), restart=True)
    assert report.n_resumed_pages == 0 and report.n_fetched_pages == DAYS


def test_an_unknown_keyword_is_refused_before_any_page(live, tmp_path):
    with pytest.raises(ConfigError, match=r"has no keyword\(s\) USFLUXX \(did you mean USFLUX\?\)"):
        _fetch(live, tmp_path / "x.csv", query=_query(features=("USFLUXX",)))
    assert live.rs_list_requests() == []


@pytest.mark.parametrize("bad, match", [
    (dict(start="2024-05-02", end="2024-05-01"), "must be after"),
    (dict(start="yesterday-ish", end="2024-05-01"), "must be a date or time"),
    (dict(start="2024-05-01", end="2024-05-02", series="hmi.sharp_45s"), "series must be one of"),
    (dict(start="2024-05-01", end="2024-05-02", cadence="5m"), "cadence must be one of"),
    (dict(start="2024-05-01", end="2024-05-02", page_hours=5), "whole number of 96m steps"),
])
def test_bad_queries(bad, match):
    if "page_hours" in bad:
        bad["cadence"] = "96m"
    with pytest.raises(ConfigError, match=match):
        SharpQuery(**bad)


def test_jsoc_text_values():
    assert parse_t_rec(["2024.05.01_00:12:00_TAI"], where="x")[0] == np.datetime64("2024-05-01T00:12:00")
    with pytest.raises(DataFormatError, match=r"field 'T_REC': expected a JSOC time.*'yesterday' \(record 1\)"):
        parse_t_rec(["yesterday"], where="answer")
    numbers, n_bad = parse_numbers(["1.5e3", "nan", "", "Invalid KeyLink", "inf"])
    assert numbers[0] == 1500 and np.isnan(numbers[1:]).all() and n_bad == 1
    assert list(parse_quality(["0x00000400", "0", "junk"]).astype(object)) == [1024, 0, pd.NA]
    assert normalise_noaa_list("13664,13668") == "13664;13668" and normalise_noaa_list("0") == ""
