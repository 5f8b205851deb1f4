"""The whole path on the loopback JSOC + HEK, through the command line: fetch -> build-dataset
-> train a small model -> forecast at a time inside the served period (table, file, scoreboard)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from live_server import SyntheticSun, start_server

from flareseq.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def test_fetch_build_train_forecast(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    server, state = start_server(SyntheticSun(start=datetime(2024, 5, 1), days=12, n_regions=12, seed=8))
    try:
        net = ["--jsoc-url", state.jsoc_url, "--backoff", "0", "--no-progress"]
        assert main(["fetch", "sharp", "--start", "2024-05-01", "--end", "2024-05-13", "--out", "sharp.csv", *net]) == 0
        assert main(["fetch", "flares", "--start", "2024-05-01", "--end", "2024-05-14", "--out", "flares.csv",
                     "--hek-url", state.hek_url, "--backoff", "0"]) == 0
        assert main(["build-dataset", "--table", "sharp.csv", "--catalogue", "flares.csv", "--out", "store",
                     "--no-progress"]) == 0
        built = capsys.readouterr().out
        assert "folds share 0 HARP(s) and 0 day(s)" in built
        assert main(["train", "--data", "store", "--name", "live-lstm", "--no-progress",
                     "--set", "training.epochs=2", "--set", "tracking.output_dir=runs", "--set", "tracking.plots=false",
                     "--set", "verification.n_bootstrap=0", "--set", "training.n_threads=1"]) == 0
        capsys.readouterr()
        assert main(["forecast", "--model", "live-lstm", "--output-dir", "runs", "--at", "2024-05-10T12:00",
                     *net, "--out", "forecast.json", "--scoreboard", "."]) == 0
    finally:
        server.shutdown()
    printed = capsys.readouterr().out
    assert printed.startswith("forecast at 2024-05-10T12:00:00 (data time 2024-05-10T12:00:00")
    document = json.loads((tmp_path / "forecast.json").read_text())
    at, span = datetime(2024, 5, 10, 12), timedelta(hours=12 + 6)  # the window and the look-back
    recent = {h for h, records in state.sun.records.items() if any(at - span <= t <= at for t in records)}
    listed = {r["harp"]: r["status"] for r in document["regions"]}
    assert set(listed) == recent  # every HARP with recent records is listed, forecast or not
    gone = {h for h in recent if max(t for t in state.sun.records[h] if t <= at) < at - timedelta(hours=1)}
    assert gone and all(listed[h].startswith("too little recent data") for h in gone)
    forecast = [r for r in document["regions"] if r["status"] == "forecast"]
    assert forecast and all(0 <= r["probability"] <= 1 for r in forecast)
    product = 1.0
    for r in forecast:
        product *= 1 - r["probability"]
    assert document["full_disk_probability"] == pytest.approx(1 - product)
    assert f"full disk: P(>=M within 24 h) = {document['full_disk_probability']:.3f}" in printed
    board = tmp_path / "Flare_Forecast_flareseq_live-lstm_20240510_1200.txt"
    assert f"{document['full_disk_probability']:.4f}" in board.read_text().splitlines()
