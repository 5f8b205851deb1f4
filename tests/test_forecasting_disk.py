"""Forecasts for the HARPs on the disk: latest windows, statuses, full disk, output formats."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from flareseq.data.dataset import FlareDataset, empty_meta
from flareseq.errors import FlareseqError
from flareseq.experiments.run_models import load_forecaster
from flareseq.forecasting.disk import FORECAST, forecast_disk, latest_windows
from flareseq.forecasting.scoreboard import (
    scoreboard_file_name,
    scoreboard_text,
    write_scoreboard,
)

FEATURES = ("USFLUX", "R_VALUE")
T = 10
AT = datetime(2024, 5, 10, 12, 5)
DATA_TIME = datetime(2024, 5, 10, 12, 0)


@pytest.fixture(scope="module")
def forecaster(tmp_path_factory):
    """A small real model, saved and loaded the way `flareseq forecast` loads one."""
    from flareseq.training.estimator import make_baseline
    from flareseq.training.forecaster import Forecaster

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, T, 2)).astype(np.float32)
    y = (X[:, :, 0].mean(axis=1) > 0).astype(np.int8)
    data = FlareDataset(X=X, y=y, ids=np.arange(300).astype(str), feature_names=FEATURES, meta=empty_meta(300))
    model = Forecaster(classifier=make_baseline("logistic-summary").fit(data, X_val=data),
                       feature_names=FEATURES, n_timesteps=T, kind="baseline", name="logistic-summary")
    folder = model.save(tmp_path_factory.mktemp("model") / "m")
    return load_forecaster(folder)


def _rows() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []

    def add(harp, times, noaa):
        for t in times:
            rows.append({"HARPNUM": harp, "T_REC": pd.Timestamp(t), "USFLUX": rng.normal(), "R_VALUE": rng.normal(),
                         "NOAA_ARS": noaa, "LAT_MIN": -10.0, "LAT_MAX": -2.0, "LON_MIN": 20.0, "LON_MAX": 30.0,
                         "RECORD_MISSING": 0})

    step = timedelta(minutes=12)
    add(1, [DATA_TIME - k * step for k in range(T)], "13664")                  # complete
    add(2, [DATA_TIME - k * step for k in range(T) if k != 3], "13665;13666")  # one step missing: still forecast
    add(3, [DATA_TIME - timedelta(hours=3) - k * step for k in range(T)], "")  # stale
    add(4, [DATA_TIME - k * step for k in range(4)], "13667")                  # too few steps
    add(1, [AT + timedelta(minutes=7)], "13664")                                # after the forecast time: unused
    return pd.DataFrame(rows)


def test_latest_windows_and_statuses():
    data_time, windows, infos = latest_windows(_rows(), FEATURES, T, 12, AT, max_age_hours=1.0, min_observed=0.75)
    assert data_time == DATA_TIME
    status = {i.harp: i for i in infos}
    assert [status[h].status == FORECAST for h in (1, 2, 3, 4)] == [True, True, False, False]
    assert "newest record 3.0 h before the data time" in status[3].status
    assert "4 of 10 steps observed (needs 8)" in status[4].status
    assert (status[1].n_observed, status[2].n_observed) == (10, 9)
    assert list(windows.meta["region"]) == ["1", "2"] and windows.X.shape == (2, T, 2)
    assert np.isnan(windows.X[1, T - 1 - 3]).all() and not np.isnan(windows.X[0]).any()  # missing stays NaN
    assert (windows.meta["end"] == pd.Timestamp(DATA_TIME)).all()
    rows = _rows()
    expected = rows[(rows.HARPNUM == 1) & (rows.T_REC <= pd.Timestamp(DATA_TIME))].sort_values("T_REC")
    np.testing.assert_allclose(windows.X[0], expected[list(FEATURES)].to_numpy(np.float32))
    with pytest.raises(FlareseqError, match=r"feature\(s\) \['XR_MAX'\], which are not SHARP keywords"):
        latest_windows(_rows(), ("XR_MAX",), T, 12, AT)


def test_full_disk_probability_and_outputs(forecaster, tmp_path):
    result = forecast_disk(forecaster, _rows(), AT, series="hmi.sharp_cea_720s", model_name="m1")
    _, windows, _ = latest_windows(_rows(), FEATURES, T, 12, AT)
    p = forecaster.predict_proba(windows)
    got = {r.harp: r.probability for r in result.forecast_regions}
    np.testing.assert_allclose([got[1], got[2]], p)
    assert result.full_disk_probability == pytest.approx(1 - (1 - p[0]) * (1 - p[1]))
    assert {r.harp for r in result.regions if r.probability is None} == {3, 4}  # listed, not dropped
    table = result.table()
    assert "full disk: P(>=M within 24 h) = " in table and "2 region(s) with too little recent data" in table
    document = json.loads(result.write(tmp_path / "f.json").read_text())
    assert document["n_regions"] == 4 and document["n_forecast"] == 2
    assert document["full_disk_probability"] == pytest.approx(result.full_disk_probability)
    frame = pd.read_csv(result.write(tmp_path / "f.csv"), comment="#")
    assert len(frame) == 4 and frame["probability"].notna().sum() == 2
    text = scoreboard_text(result, "flareseq_m1")
    assert scoreboard_file_name(result, "flareseq m1") == "Flare_Forecast_flareseq_m1_20240510_1205.txt"
    lines = text.splitlines()
    assert lines[1:8] == ["Forecasting method: flareseq_m1", "Issue Time: 2024-05-10T12:05Z",
                          "Prediction Window Start Time: 2024-05-10T12:05Z",
                          "Prediction Window End Time: 2024-05-11T12:05Z", "Probability Bins: M+",
                          "Input data: SDO/HMI SHARP keywords hmi.sharp_cea_720s", "Prediction window (hours): 24"]
    assert lines[8:11] == ["#Full Disk Forecast", "#M_prob", f"{result.full_disk_probability:.4f}"]
    assert lines[13].startswith("13664 1 -6.0 25.0 ") and lines[14].startswith("13665 2 ")
    assert write_scoreboard(result, tmp_path, "flareseq_m1").name == scoreboard_file_name(result, "flareseq_m1")


def test_no_data_before_the_time_gives_an_empty_forecast(forecaster):
    result = forecast_disk(forecaster, _rows(), datetime(2024, 1, 1))
    assert result.regions == [] and result.full_disk_probability is None and result.data_time is None
    assert "full disk: P(>=M within 24 h) = n/a from 0 region(s)" in result.table()
