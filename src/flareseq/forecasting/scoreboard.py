"""A forecast in the text submission format of the CCMC Flare Scoreboard.

What this follows: the full-disk submission example of the Flare Scoreboard planning group
("Real time forecasting methods validation with the Flare Scoreboard", J. Andries, A.
Devos, J. Guerra, S. Hong, M. Kuznetsova, L. Mays, S. Murray, G. Steward, M. Terkildsen;
CCMC, ccmc.gsfc.nasa.gov/challenges/flare.php): a file named
``Flare_Forecast_modelname_yyyymmdd_hhmm.txt`` whose header lines are ``Forecasting method:``,
``Issue Time:``, ``Prediction Window Start Time:``, ``Prediction Window End Time:``,
``Probability Bins:`` (``M+``), ``Input data:`` and ``Prediction window (hours):``, times as
``yyyy-mm-ddThh:mmZ``, then ``#Full Disk Forecast`` and a line of probabilities in decimal
format with four places (the uncertainty and calibration level columns are optional; a
flareseq model forecasts one bin, ``M+``, so its line holds ``M_prob`` only).

What this adds, not taken from a published example: a ``#Region Forecasts`` section, one
line per forecast region (``NOAA_number HARP Latitude Longitude M_prob``; ``-`` for a HARP
without a NOAA number), for scoreboards that take regional forecasts. Check the current
submission rules (the scoreboard also takes a JSON schema) before uploading.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from flareseq.forecasting.disk import DiskForecast

_TIME = "%Y-%m-%dT%H:%MZ"


def scoreboard_file_name(forecast: DiskForecast, method: str) -> str:
    """``Flare_Forecast_<method>_<yyyymmdd>_<hhmm>.txt`` of the issue time."""
    issued = datetime.fromisoformat(forecast.issue_time)
    return f"Flare_Forecast_{_safe(method)}_{issued:%Y%m%d_%H%M}.txt"


def scoreboard_text(forecast: DiskForecast, method: str, *, input_data: str = "") -> str:
    """The submission text of ``forecast`` (see the module's notes)."""
    issued = datetime.fromisoformat(forecast.issue_time)
    end = issued + timedelta(hours=forecast.horizon_hours)
    full = forecast.full_disk_probability
    lines = [
        f"#File name format: Flare_Forecast_modelname_yyyymmdd_hhmm.txt ({scoreboard_file_name(forecast, method)})",
        f"Forecasting method: {_safe(method)}",
        f"Issue Time: {issued:{_TIME}}",
        f"Prediction Window Start Time: {issued:{_TIME}}",
        f"Prediction Window End Time: {end:{_TIME}}",
        f"Probability Bins: {forecast.min_class}+",
        f"Input data: {input_data or 'SDO/HMI SHARP keywords ' + forecast.series}",
        f"Prediction window (hours): {forecast.horizon_hours:g}",
        "#Full Disk Forecast",
        f"#{forecast.min_class}_prob",
        "" if full is None else f"{full:.4f}",
        "#Region Forecasts",
        f"#NOAA_number HARP Latitude Longitude {forecast.min_class}_prob",
    ]
    for region in sorted(forecast.forecast_regions, key=lambda r: r.harp):
        noaa = region.noaa.split(";")[0] if region.noaa else "-"
        lat = "-" if region.latitude is None else f"{region.latitude:.1f}"
        lon = "-" if region.longitude is None else f"{region.longitude:.1f}"
        lines.append(f"{noaa} {region.harp} {lat} {lon} {region.probability:.4f}")
    return "\n".join(lines) + "\n"


def write_scoreboard(forecast: DiskForecast, destination: str | Path, method: str, *, input_data: str = "") -> Path:
    """Write the submission; ``destination`` is a folder (the file gets the scoreboard's
    name) or a file name."""
    destination = Path(destination)
    path = destination / scoreboard_file_name(forecast, method) if destination.is_dir() else destination
    path.write_text(scoreboard_text(forecast, method, input_data=input_data))
    return path


def _safe(method: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in method) or "flareseq"
