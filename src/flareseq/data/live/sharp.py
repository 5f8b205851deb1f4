"""The SHARP series, their keywords, and how JSOC writes keyword values.

SHARP (Space-weather HMI Active Region Patches, Bobra et al. 2014) series hold one record per
HMI active-region patch (``HARPNUM``) and 12-minute slot (``T_REC``). JSOC's ``jsoc_info``
answers every value as text: times as ``2014.01.01_00:12:00_TAI``, numbers in C notation,
a missing value as ``nan``, ``QUALITY`` in hexadecimal (``0x00000400``), ``NOAA_ARS`` as a
comma-joined list. This module turns those strings into typed columns and writes the
keyword table and its :class:`~flareseq.data.tables.spec.TableSpec` file.

Times: ``T_REC`` is a slot of the TAI time scale. flareseq keeps the slot's nominal time
(``2014-01-01T00:12:00``) and compares it with UTC flare times as if it were UTC, as
``drms.to_datetime`` and SWAN-SF do; the 37-s TAI-UTC offset is far below the 12-minute step.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from flareseq.data.live.series import (  # noqa: F401
    CADENCES,
    DEFAULT_NRT_SERIES,
    DEFAULT_SERIES,
    SERIES,
)
from flareseq.data.schema import KAGGLE_PARAMETERS
from flareseq.errors import ConfigError, DataFormatError

# The 24 SHARP keywords of the Kaggle BigData Cup layout (its 25th series, XR_MAX, is the
# GOES X-ray flux, not a SHARP keyword).
SHARP_PARAMETERS: tuple[str, ...] = tuple(p for p in KAGGLE_PARAMETERS if p != "XR_MAX")
# Kept beside the features, as SWAN-SF does: region numbers, the quality flag and location.
SIDE_KEYWORDS: tuple[str, ...] = ("NOAA_AR", "NOAA_NUM", "NOAA_ARS", "QUALITY", "CRVAL1", "CRLN_OBS",
                                  "LAT_MIN", "LON_MIN", "LAT_MAX", "LON_MAX")
PRIME_KEYWORDS = ("HARPNUM", "T_REC")
RECORD_MISSING = "RECORD_MISSING"  # 1 on a row added for a slot JSOC had no record for
LOCATION_KEYWORDS = ("CRVAL1", "CRLN_OBS", "LAT_MIN", "LON_MIN", "LAT_MAX", "LON_MAX")

_T_REC = re.compile(r"^\s*(\d{4})\.(\d{2})\.(\d{2})_(\d{2}):(\d{2})(?::(\d{2}(?:\.\d*)?))?(?:_TAI)?\s*$")
_MISSING_TEXT = {"", "nan", "-nan", "missing", "none", "null"}


def cadence_minutes(cadence: str) -> int:
    """Minutes of a cadence name (``"12m"``, ``"1h"``, ``"96m"``)."""
    if cadence not in CADENCES:
        raise ConfigError(f"cadence must be one of {list(CADENCES)}, got {cadence!r}.")
    return CADENCES[cadence]


def check_series(series: str) -> str:
    if series not in SERIES:
        raise ConfigError(f"series must be one of {list(SERIES)}, got {series!r}.")
    return series


def jsoc_time(moment: datetime) -> str:
    """A time in JSOC's TAI slot notation, ``2014.01.01_00:12:00_TAI``."""
    return moment.strftime("%Y.%m.%d_%H:%M:%S_TAI")


def floor_to_slot(moment: datetime, minutes: int) -> datetime:
    """The last slot of a ``minutes`` grid anchored at midnight at or before ``moment``."""
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + timedelta(minutes=minutes * ((moment - midnight) // timedelta(minutes=minutes)))


def parse_t_rec(values: Sequence[object], *, where: str) -> np.ndarray:
    """``T_REC`` strings -> datetime64[ns]; anything else is a :class:`DataFormatError`."""
    out = np.empty(len(values), dtype="datetime64[ns]")
    for i, text in enumerate(values):
        match = _T_REC.match(str(text))
        if not match:
            raise DataFormatError(where, field="T_REC", expected="a JSOC time such as 2014.01.01_00:12:00_TAI",
                                  found=f"{text!r} (record {i + 1})")
        year, month, day, hour, minute, second = match.groups()
        seconds = float(second or 0)
        out[i] = np.datetime64(datetime(int(year), int(month), int(day), int(hour), int(minute))) + np.timedelta64(
            int(round(seconds * 1e9)), "ns")
    return out


def parse_numbers(values: Sequence[object]) -> tuple[np.ndarray, int]:
    """Keyword text -> float64, and how many values were neither a number nor a missing mark
    (those become NaN too, and are counted so that nothing is lost silently)."""
    series = pd.Series(values, dtype=object)
    numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, copy=True)
    text = series.astype(str).str.strip().str.lower()
    unparseable = np.isnan(numbers) & ~text.isin(_MISSING_TEXT).to_numpy()
    numbers[~np.isfinite(numbers)] = np.nan
    return numbers, int(unparseable.sum())


def parse_quality(values: Sequence[object]) -> pd.Series:
    """``QUALITY`` (hexadecimal ``0x...`` or decimal text) -> nullable integers."""
    out = []
    for value in values:
        text = str(value).strip().lower()
        try:
            out.append(int(text, 16) if text.startswith("0x") else int(float(text)))
        except ValueError:
            out.append(pd.NA)
    return pd.Series(out, dtype="Int64")


def normalise_noaa_list(value: object) -> str:
    """``NOAA_ARS`` ``"11158,11160"`` -> ``"11158;11160"`` (``;`` keeps the CSV field plain);
    ``0``, empty or missing -> ``""``."""
    numbers = []
    for token in re.split(r"[;,\s]+", str(value)):
        try:
            number = int(float(token))
        except ValueError:
            continue
        if number > 0:
            numbers.append(str(number))
    return ";".join(numbers)


def keyword_rows(frame: pd.DataFrame, features: Sequence[str], *, where: str) -> tuple[pd.DataFrame, int]:
    """A ``drms`` keyword frame (text values) -> typed table rows; and the count of values
    that did not parse (set to NaN)."""
    needed = [*PRIME_KEYWORDS, *features, *SIDE_KEYWORDS]
    absent = [k for k in needed if k not in frame.columns]
    if absent and len(frame):
        raise DataFormatError(where, field=absent[0], expected=f"the keywords {needed}",
                              found=f"a response without {absent}")
    out = pd.DataFrame({"HARPNUM": pd.Series(dtype="int64")}) if not len(frame) else pd.DataFrame()
    if not len(frame):
        for name in (*features, *SIDE_KEYWORDS):
            out[name] = pd.Series(dtype="float64")
        out["T_REC"] = pd.Series(dtype="datetime64[ns]")
        out[RECORD_MISSING] = pd.Series(dtype="int8")
        return out, 0
    harp, bad_harp = parse_numbers(frame["HARPNUM"].to_numpy())
    if bad_harp or np.isnan(harp).any() or (harp % 1 != 0).any():
        i = int(np.flatnonzero(np.isnan(harp) | (np.nan_to_num(harp) % 1 != 0))[0])
        raise DataFormatError(where, field="HARPNUM", expected="an integer HARP number",
                              found=f"{frame['HARPNUM'].iloc[i]!r} (record {i + 1})")
    out["HARPNUM"] = harp.astype(np.int64)
    out["T_REC"] = parse_t_rec(frame["T_REC"].to_numpy(), where=where)
    n_bad = 0
    for name in (*features, "NOAA_AR", "NOAA_NUM", *LOCATION_KEYWORDS):
        out[name], bad = parse_numbers(frame[name].to_numpy())
        n_bad += bad
    out["NOAA_ARS"] = [normalise_noaa_list(v) for v in frame["NOAA_ARS"].to_numpy()]
    out["QUALITY"] = parse_quality(frame["QUALITY"].to_numpy())
    out[RECORD_MISSING] = np.zeros(len(out), dtype=np.int8)
    return out, n_bad


def fill_missing_slots(rows: pd.DataFrame, minutes: int) -> tuple[pd.DataFrame, int]:
    """Rows sorted by HARP and time, with a row (``RECORD_MISSING = 1``, no values) for every
    slot between a HARP's first and last record that JSOC had no record for: missing records
    stay visible as missing, never interpolated. Returns the rows and the count added."""
    if rows.empty:
        return rows, 0
    rows = rows.sort_values(["HARPNUM", "T_REC"], kind="stable").reset_index(drop=True)
    step = np.timedelta64(minutes, "m")
    parts, added = [], 0
    for harp, group in rows.groupby("HARPNUM", sort=True):
        times = group["T_REC"].to_numpy(dtype="datetime64[ns]")
        grid = np.arange(times[0], times[-1] + step, step)
        absent = grid[~np.isin(grid, times)]
        if absent.size:
            filler = pd.DataFrame({"HARPNUM": np.full(absent.size, harp, dtype=np.int64), "T_REC": absent,
                                   RECORD_MISSING: np.ones(absent.size, dtype=np.int8)})
            filler["NOAA_ARS"] = ""
            group = pd.concat([group, filler], ignore_index=True).sort_values("T_REC", kind="stable")
            added += absent.size
        parts.append(group)
    out = pd.concat(parts, ignore_index=True)
    out["QUALITY"] = out["QUALITY"].astype("Int64")
    out[RECORD_MISSING] = out[RECORD_MISSING].astype(np.int8)
    return out.reset_index(drop=True), added


def table_columns(features: Sequence[str]) -> list[str]:
    """The column order of a fetched keyword table."""
    return ["HARPNUM", "T_REC", *features, *SIDE_KEYWORDS, RECORD_MISSING]


def write_rows(rows: pd.DataFrame, path: Path, features: Sequence[str]) -> None:
    """Write table rows (CSV, or Parquet for ``.parquet``) atomically: a temporary file
    beside ``path`` renamed into place, so a file under the final name is always complete."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame = rows.reindex(columns=table_columns(features))
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            frame.to_parquet(temporary, index=False)
        else:
            text = frame.copy()
            text["T_REC"] = pd.to_datetime(text["T_REC"]).dt.strftime("%Y-%m-%dT%H:%M:%S")
            text.to_csv(temporary, index=False, float_format="%.9g")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read_rows(path: Path) -> pd.DataFrame:
    """Rows written by :func:`write_rows`, typed as :func:`keyword_rows` returns them."""
    path = Path(path)
    if path.suffix.lower() in {".parquet", ".pq"}:
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path, dtype={"NOAA_ARS": str}, keep_default_na=False, na_values=[""])
        frame["NOAA_ARS"] = frame["NOAA_ARS"].fillna("")
    frame["T_REC"] = pd.to_datetime(frame["T_REC"])
    frame["QUALITY"] = frame["QUALITY"].astype("Int64")
    return frame


def window_steps(minutes: int, hours: float = 12.0) -> int:
    """Steps of ``minutes`` in an observation window of ``hours`` (60 at 12 minutes)."""
    return max(1, int(math.floor(hours * 60 / minutes + 1e-9)))


def table_spec_text(table: Path, features: Sequence[str], minutes: int) -> str:
    """The TOML spec with which ``flareseq ingest --table-spec`` reads a fetched table."""
    names = ", ".join(f'"{f}"' for f in features)
    return f"""# Written by `flareseq fetch sharp`: how `flareseq ingest --table-spec` reads {table.name}.
# flareseq ingest {table.name} --table-spec {table.name}.toml --out STORE
# Labels: add a GOES flare list (flareseq fetch flares) with
#   --catalogue flares.csv --catalogue-match noaa
[data]
format = "table"
paths = ["{table.name}"]
region_columns = ["HARPNUM"]
time_column = "T_REC"
features = [{names}]
cadence_minutes = {minutes}
window = {window_steps(minutes)}
noaa_column = "NOAA_ARS"
# Missing records are rows with empty values (RECORD_MISSING = 1): keep them as NaN in the
# windows (never interpolated); "drop" leaves out every window that holds one.
nan_policy = "keep"
max_missing_steps = 0
# no fold from the file name (a year in it is not a fold)
fold_pattern = ""
"""
