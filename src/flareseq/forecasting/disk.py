"""Forecasts for every HARP on the disk at a given time, and for the whole disk.

The newest SHARP data rarely reach the wall clock (near-real-time series lag by hours), so a
forecast "at T" uses the newest slot with data at or before T (the *data time*) and, for
every HARP with records in the hours before it, the window of the model's length ending at
that slot: the same end for every region, so that the regional forecasts add up to one
full-disk forecast. Missing steps stay NaN and are treated as the model's training run
treated them; a HARP is forecast only when

- its newest record is at most ``max_age_hours`` older than the data time (else it has left
  the disk, or its data stopped), and
- at least ``min_observed`` of the window's steps have a record.

Every other HARP is listed with the reason, not dropped. The full-disk probability of a
flare of the model's class is ``1 - prod(1 - p_i)`` over the forecast regions: regions
forecast independently, as the Flare Scoreboard's full-disk forecasts assume; regions
without a forecast are outside it, and the output says how many.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from flareseq.data.dataset import FlareDataset, empty_meta
from flareseq.errors import ConfigError, FlareseqError

FORECAST = "forecast"


@dataclass
class RegionForecast:
    """One HARP's forecast, or the reason it has none (``status``)."""

    harp: int
    noaa: str
    last_record: str
    n_observed: int
    n_steps: int
    probability: float | None
    flare_expected: bool | None
    status: str
    latitude: float | None = None
    longitude: float | None = None


@dataclass
class DiskForecast:
    """Per-region forecasts and the full-disk probability at one time."""

    issue_time: str
    data_time: str | None
    horizon_hours: float
    min_class: str
    model: str
    series: str
    threshold: float
    regions: list[RegionForecast] = field(default_factory=list)

    @property
    def forecast_regions(self) -> list[RegionForecast]:
        return [r for r in self.regions if r.status == FORECAST]

    @property
    def full_disk_probability(self) -> float | None:
        """``1 - prod(1 - p_i)`` over the forecast regions (``None`` when there are none)."""
        p = [r.probability for r in self.forecast_regions]
        return None if not p else float(1 - np.prod([1 - x for x in p]))

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.regions],
                            columns=[f.name for f in RegionForecast.__dataclass_fields__.values()])

    def to_dict(self) -> dict:
        return {"issue_time": self.issue_time, "data_time": self.data_time, "horizon_hours": self.horizon_hours,
                "min_class": self.min_class, "model": self.model, "series": self.series, "threshold": self.threshold,
                "full_disk_probability": self.full_disk_probability, "n_regions": len(self.regions),
                "n_forecast": len(self.forecast_regions),
                "regions": [asdict(r) for r in self.regions]}

    def table(self) -> str:
        """The printed table: one line per HARP, then the full-disk line."""
        head = f"{'HARP':>6}  {'NOAA':<12} {'last record':<19} {'steps':>7}  {'P(>=' + self.min_class + ')':>8}  {'flare?':<6}  status"
        lines = [f"forecast at {self.issue_time} (data time {self.data_time or 'none'}, series {self.series}, "
                 f"model {self.model}): >={self.min_class} flare within {self.horizon_hours:g} h", head]
        for r in sorted(self.regions, key=lambda r: (r.status != FORECAST, -(r.probability or 0), r.harp)):
            p = "" if r.probability is None else f"{r.probability:.3f}"
            yes = "" if r.flare_expected is None else ("yes" if r.flare_expected else "no")
            lines.append(f"{r.harp:>6}  {r.noaa or '-':<12} {r.last_record:<19} {r.n_observed:>3}/{r.n_steps:<3}  "
                         f"{p:>8}  {yes:<6}  {r.status}")
        full = self.full_disk_probability
        n_out = len(self.regions) - len(self.forecast_regions)
        lines.append(f"full disk: P(>={self.min_class} within {self.horizon_hours:g} h) = "
                     f"{'n/a' if full is None else f'{full:.3f}'} from {len(self.forecast_regions)} region(s); "
                     f"{n_out} region(s) with too little recent data are not in it; threshold {self.threshold:.3f}")
        return "\n".join(lines)

    def write(self, path: str | Path) -> Path:
        """Write as JSON (``.json``) or CSV (any other suffix; the full-disk line in a
        ``# `` comment at the top)."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
            return path
        header = (f"# issue_time={self.issue_time} data_time={self.data_time} horizon_hours={self.horizon_hours:g} "
                  f"min_class={self.min_class} model={self.model} series={self.series} threshold={self.threshold:.6g} "
                  f"full_disk_probability={self.full_disk_probability}\n")
        with path.open("w") as handle:
            handle.write(header)
            self.to_frame().to_csv(handle, index=False)
        return path


def latest_windows(rows: pd.DataFrame, features: tuple[str, ...], n_steps: int, minutes: int, at: datetime, *,
                   max_age_hours: float = 1.0, min_observed: float = 0.75) -> tuple[datetime | None, FlareDataset,
                                                                                     list[RegionForecast]]:
    """Each HARP's window ending at the data time, and the HARPs without one.

    Returns the data time, the windows of the HARPs to forecast (``meta["region"]`` the HARP),
    and a :class:`RegionForecast` per HARP (to forecast: ``status == "forecast"``, no probability yet).
    """
    if not 0 < min_observed <= 1:
        raise ConfigError(f"min_observed must be in (0, 1], got {min_observed}.")
    missing = [f for f in features if f not in rows.columns]
    if missing:
        raise FlareseqError(f"the model uses feature(s) {missing}, which are not SHARP keywords in the data; "
                            "forecast with a model trained on SHARP keywords (e.g. a flareseq build-dataset store).")
    at64 = np.datetime64(at, "ns")
    real = rows[(rows["T_REC"].to_numpy("datetime64[ns]") <= at64)]
    if "RECORD_MISSING" in real.columns:
        real = real[real["RECORD_MISSING"].fillna(0).to_numpy() == 0]
    if real.empty:
        return None, _empty(features, n_steps), []
    data_time = real["T_REC"].max().to_pydatetime()
    step = np.timedelta64(minutes, "m")
    slots = np.datetime64(data_time, "ns") - np.arange(n_steps)[::-1] * step
    X, infos, keep = [], [], []
    for harp, group in real.groupby("HARPNUM", sort=True):
        group = group.sort_values("T_REC")
        last = group.iloc[-1]
        lookup = pd.Series(np.arange(len(group)), index=group["T_REC"].to_numpy("datetime64[ns]"))
        position = lookup.reindex(slots).to_numpy()
        values = np.full((n_steps, len(features)), np.nan, dtype=np.float32)
        present = ~np.isnan(position)
        values[present] = group[list(features)].to_numpy(np.float32)[position[present].astype(int)]
        n_observed = int(present.sum())
        age = (data_time - last["T_REC"].to_pydatetime()) / timedelta(hours=1)
        if age > max_age_hours:
            status = f"too little recent data: newest record {age:.1f} h before the data time"
        elif n_observed < math.ceil(min_observed * n_steps):
            status = f"too little recent data: {n_observed} of {n_steps} steps observed (needs {math.ceil(min_observed * n_steps)})"
        else:
            status = FORECAST
        lat = _centre(last, "LAT_MIN", "LAT_MAX")
        lon = _centre(last, "LON_MIN", "LON_MAX")
        info = RegionForecast(harp=int(harp), noaa=str(last.get("NOAA_ARS", "") or ""), n_steps=n_steps,
                              last_record=last["T_REC"].strftime("%Y-%m-%dT%H:%M:%S"), n_observed=n_observed,
                              probability=None, flare_expected=None, status=status, latitude=lat, longitude=lon)
        infos.append(info)
        if status == FORECAST:
            X.append(values)
            keep.append(info)
    dataset = _empty(features, n_steps) if not X else _windows(np.stack(X), features, keep, slots)
    return data_time, dataset, infos


def _centre(row: pd.Series, low: str, high: str) -> float | None:
    if low not in row or high not in row:
        return None
    value = (float(row[low]) + float(row[high])) / 2
    return None if math.isnan(value) else round(value, 2)


def _empty(features, n_steps) -> FlareDataset:
    return FlareDataset(X=np.zeros((0, n_steps, len(features)), np.float32), y=None, ids=np.array([], dtype=str),
                        feature_names=tuple(features), meta=empty_meta(0))


def _windows(X, features, infos, slots) -> FlareDataset:
    meta = empty_meta(len(infos))
    meta["region"] = pd.Series([str(i.harp) for i in infos], dtype="string")
    meta["start"] = pd.Series([slots[0]] * len(infos), dtype="datetime64[ns]")
    meta["end"] = pd.Series([slots[-1]] * len(infos), dtype="datetime64[ns]")
    meta["source"] = pd.Series(["jsoc"] * len(infos), dtype="string")
    ids = np.array([f"{i.harp}@{np.datetime_as_string(slots[-1], unit='s')}" for i in infos])
    return FlareDataset(X=X, y=None, ids=ids, feature_names=tuple(features), meta=meta)


def forecast_disk(forecaster, rows: pd.DataFrame, at: datetime, *, minutes: int = 12, max_age_hours: float = 1.0,
                  min_observed: float = 0.75, horizon_hours: float = 24.0, min_class: str = "M",
                  series: str = "", model_name: str = "") -> DiskForecast:
    """Forecast every HARP in ``rows`` (SHARP keyword rows) at ``at`` with ``forecaster``
    (a :class:`~flareseq.training.forecaster.Forecaster`)."""
    data_time, windows, infos = latest_windows(rows, tuple(forecaster.feature_names), forecaster.n_timesteps, minutes,
                                               at, max_age_hours=max_age_hours, min_observed=min_observed)
    result = DiskForecast(issue_time=at.strftime("%Y-%m-%dT%H:%M:%S"),
                          data_time=None if data_time is None else data_time.strftime("%Y-%m-%dT%H:%M:%S"),
                          horizon_hours=horizon_hours, min_class=min_class, model=model_name or forecaster.name,
                          series=series, threshold=float(forecaster.threshold), regions=infos)
    if windows.n_samples:
        probabilities, labels = forecaster.predict(windows)
        by_harp = {int(h): (float(p), bool(y)) for h, p, y in zip(windows.meta["region"], probabilities, labels)}
        for info in infos:
            if info.harp in by_harp:
                info.probability, info.flare_expected = by_harp[info.harp]
    return result


def forecast_at(forecaster, at: datetime, *, series: str, server_url: str | None = None, minutes: int = 12,
                lookback_hours: float = 6.0, max_age_hours: float = 1.0, min_observed: float = 0.75,
                horizon_hours: float = 24.0, min_class: str = "M", model_name: str = "", retries: int = 4,
                backoff_s: float = 2.0, echo=None) -> DiskForecast:
    """Fetch every HARP's records of the hours before ``at`` from JSOC (or ``server_url``)
    and forecast them (:func:`forecast_disk`)."""
    from flareseq.data.live.jsoc import fetch_recent_sharp

    cadence = {12: "12m", 60: "1h", 96: "96m"}.get(minutes)
    if cadence is None:
        raise ConfigError(f"cadence of {minutes} minutes is not one JSOC is asked for (12, 60 or 96).")
    rows = fetch_recent_sharp(series, at, n_steps=forecaster.n_timesteps, cadence=cadence,
                              features=tuple(forecaster.feature_names), lookback_hours=lookback_hours,
                              server_url=server_url, retries=retries, backoff_s=backoff_s, echo=echo)
    return forecast_disk(forecaster, rows, at, minutes=minutes, max_age_hours=max_age_hours, min_observed=min_observed,
                         horizon_hours=horizon_hours, min_class=min_class, series=series, model_name=model_name)
