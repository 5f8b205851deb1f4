"""``flareseq fetch flares`` against a loopback HEK: paging, retries, the catalogue it writes."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pytest
from live_server import SyntheticSun, start_server

from flareseq.cli import main
from flareseq.data.live.flares import HEKError, catalogue_coverage_end, fetch_flares
from flareseq.data.tables.catalogue import read_catalogue
from flareseq.errors import ConfigError


@pytest.fixture
def live():
    server, state = start_server(SyntheticSun(start=datetime(2024, 5, 1), days=5, n_regions=5, seed=3))
    yield state
    server.shutdown()


def test_every_flare_of_the_span_in_the_catalogue_format(live, tmp_path):
    out = tmp_path / "flares.csv"
    report = fetch_flares("2024-05-01", "2024-05-06", out, hek_url=live.hek_url, chunk_days=2, result_limit=4,
                          backoff_s=0, echo=None)
    served = [f for f in live.sun.flares if "2024-05-01" <= f["event_starttime"] < "2024-05-06"]
    assert report.n_flares == len(served) and report.n_requests > 3  # several chunks, several pages each
    hek_pages = [s for s in live.seen if "/hek/her" in s]
    assert any("page=2" in s for s in hek_pages) and all("value0=SWPC" in s for s in hek_pages)
    table = pd.read_csv(out)
    assert list(table.columns) == ["start_time", "peak_time", "end_time", "goes_class", "noaa_ar", "frm_name"]
    assert sorted(table["goes_class"]) == sorted(f["fl_goescls"] for f in served)
    unattributed = sum(1 for f in served if not f["ar_noaanum"])
    assert report.n_unattributed == unattributed == int(table["noaa_ar"].isna().sum())
    # SWPC's four-digit region number (3660 for 13660) is completed
    assert report.n_renumbered == 1 and (table["noaa_ar"].dropna() > 10000).all()
    catalogue = read_catalogue(out)
    assert len(catalogue) == len(served) - unattributed and catalogue.n_unattributed == unattributed
    assert catalogue_coverage_end(out) == datetime(2024, 5, 6)
    assert json.loads((tmp_path / "flares.csv.json").read_text())["frm_name"] == "SWPC"


def test_a_busy_hek_is_retried_and_a_missing_one_is_reported(live, tmp_path):
    live.hek_statuses[:] = [503, 502]
    report = fetch_flares("2024-05-01", "2024-05-03", tmp_path / "a.csv", hek_url=live.hek_url, backoff_s=0,
                          echo=None)
    assert report.n_retries == 2 and report.n_flares > 0
    live.hek_statuses[:] = [404]
    with pytest.raises(HEKError, match=r"page 1 failed: HTTP 404"):
        fetch_flares("2024-05-01", "2024-05-03", tmp_path / "b.csv", hek_url=live.hek_url, backoff_s=0, echo=None)
    assert not (tmp_path / "b.csv").exists()


def test_cli_writes_and_refuses_to_overwrite(live, tmp_path, capsys):
    out = tmp_path / "flares.csv"
    args = ["fetch", "flares", "--start", "2024-05-01", "--end", "2024-05-02", "--out", str(out),
            "--hek-url", live.hek_url]
    assert main(args) == 0 and out.is_file()
    assert "catalogue" in capsys.readouterr().out
    assert main(args) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="must be after"):
        fetch_flares("2024-05-02", "2024-05-01", tmp_path / "c.csv", hek_url=live.hek_url)
