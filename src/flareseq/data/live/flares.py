"""A GOES flare list with NOAA region numbers, from the Heliophysics Event Knowledgebase.

NOAA's Space Weather Prediction Center reports every GOES X-ray flare with its class,
start, peak and end time and, when it can attribute it, the NOAA active region; the HEK
holds these reports as flare events of the feature-recognition method ``SWPC``
(``FRM_NAME = SWPC``), from 2010 to today. This module asks the HEK's JSON search API
(``her?cosec=2&cmd=search&type=column&event_type=FL``, as ``sunpy.net.hek`` does) month by
month and page by page (``page``, ``result_limit``; a page with ``overmax = true`` has a
successor), and writes the list in the catalogue format that ``--catalogue`` reads
(:func:`flareseq.data.tables.catalogue.read_catalogue`): ``start_time, peak_time, end_time,
goes_class, noaa_ar, frm_name``; flares without a region are written with an empty
``noaa_ar`` (the reader counts them as unattributed).

A sidecar ``CATALOGUE.json`` records the span the list covers: windows whose 24-hour
horizon runs past its end are left unlabelled rather than guessed negative.

Region numbers: SWPC writes four digits (``3664`` for AR 13664 since NOAA's numbering passed
10000 in June 2002); a number below 10000 on a flare after 2002-06-01 gets 10000 added, so
it matches SHARP's ``NOAA_ARS``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from flareseq.data.live.jsoc import Echo, Retrier, parse_time
from flareseq.data.tables.catalogue import goes_class_flux
from flareseq.errors import ConfigError, DataFormatError, DownloadError

HEK_URL = "https://www.lmsal.com/hek/her"
HEK_URL_ENV = "FLARESEQ_HEK_URL"
CATALOGUE_COLUMNS = ("start_time", "peak_time", "end_time", "goes_class", "noaa_ar", "frm_name")
NOAA_10000_FROM = datetime(2002, 6, 1)
MAX_PAGES = 10_000  # a server that always answers overmax=true must not loop forever


class HEKError(DownloadError):
    """The HEK (or the network on the way) did not deliver a page of the flare list."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class FlareListReport:
    """What :func:`fetch_flares` wrote; :meth:`summary` is what the command prints."""

    path: Path
    n_events: int = 0
    n_flares: int = 0
    n_unattributed: int = 0
    n_duplicates: int = 0
    n_without_class: int = 0
    n_outside: int = 0
    n_renumbered: int = 0
    n_requests: int = 0
    n_retries: int = 0

    def summary(self) -> str:
        return (f"catalogue {self.path}: {self.n_flares} flares ({self.n_unattributed} without a NOAA region, "
                f"kept with an empty noaa_ar) from {self.n_events} HEK events in {self.n_requests} request(s)\n"
                f"left out: {self.n_duplicates} duplicate(s), {self.n_without_class} without a GOES class, "
                f"{self.n_outside} starting outside the span; {self.n_renumbered} four-digit region number(s) "
                f"completed (+10000); {self.n_retries} retry(ies)")


def _hek_params(start: datetime, end: datetime, page: int, result_limit: int) -> dict[str, str]:
    return {
        "cosec": "2", "cmd": "search", "type": "column", "event_type": "FL",
        "event_starttime": start.strftime("%Y-%m-%dT%H:%M:%S"), "event_endtime": end.strftime("%Y-%m-%dT%H:%M:%S"),
        "event_coordsys": "helioprojective", "x1": "-5000", "x2": "5000", "y1": "-5000", "y2": "5000",
        "param0": "FRM_NAME", "op0": "=", "value0": "SWPC",
        "result_limit": str(result_limit), "page": str(page),
    }


def _get_json(url: str, timeout_s: float) -> dict:
    request = urllib.request.Request(url, headers={"User-Agent": "flareseq (+python-urllib)"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        body = response.read(64 << 20)  # a page of the list is kilobytes; bound what a bad server sends
    document = json.loads(body.decode("utf-8"))
    if not isinstance(document, dict) or not isinstance(document.get("result"), list):
        raise DataFormatError(url, expected='a HEK answer {"result": [...], "overmax": ...}',
                              found=f"{str(document)[:120]!r}")
    return document


def fetch_flares(start: object, end: object, out: str | Path, *, hek_url: str | None = None,
                 chunk_days: int = 30, result_limit: int = 500, retries: int = 4, backoff_s: float = 2.0,
                 timeout_s: float = 60.0, overwrite: bool = False, echo: Echo | None = _stderr) -> FlareListReport:
    """Fetch SWPC's GOES flares starting in ``[start, end)`` from the HEK into ``out`` (CSV).

    Parameters
    ----------
    start, end : the span (ISO text or datetime, UTC).
    out : the catalogue file; an existing one is replaced only with ``overwrite``.
    hek_url : the HEK search endpoint (default :data:`HEK_URL` or ``$FLARESEQ_HEK_URL``).
    chunk_days : days per query (each query is then paged).
    result_limit : events per page.
    retries, backoff_s, timeout_s : retries of a transient failure, the first wait, the
        socket timeout.
    """
    start, end = parse_time(start, "start"), parse_time(end, "end")
    if end <= start:
        raise ConfigError(f"--end ({end:%Y-%m-%dT%H:%M}) must be after --start ({start:%Y-%m-%dT%H:%M}).")
    if chunk_days < 1 or result_limit < 1:
        raise ConfigError("chunk_days and result_limit must be at least 1.")
    out = Path(out)
    if out.is_dir() or (out.exists() and not overwrite):
        raise ConfigError(f"{out} exists; pass --overwrite to replace it." if out.is_file()
                          else f"--out {out} is a folder; give the catalogue's file name, e.g. {out / 'flares.csv'}.")
    if not out.parent.is_dir():
        raise ConfigError(f"the folder of --out, {out.parent}, does not exist.")
    base = hek_url or os.environ.get(HEK_URL_ENV) or HEK_URL
    retrier = Retrier(retries=retries, backoff_s=backoff_s, echo=echo, error=HEKError, server_name="the HEK")
    report = FlareListReport(path=out)
    events: list[dict] = []
    at = start
    while at < end:
        chunk_end = min(at + timedelta(days=chunk_days), end)
        for page in range(1, MAX_PAGES + 1):
            url = f"{base}?{urllib.parse.urlencode(_hek_params(at, chunk_end, page, result_limit))}"
            what = f"flare list [{at:%Y-%m-%d}, {chunk_end:%Y-%m-%d}) page {page}"
            document = retrier.call(lambda url=url: _get_json(url, timeout_s), what, "Run the command again.")
            report.n_requests += 1
            events.extend(document["result"])
            if echo:
                echo(f"fetch flares: {what}: {len(document['result'])} event(s)")
            if not document.get("overmax"):
                break
        else:
            raise HEKError(f"the HEK kept announcing more pages after {MAX_PAGES} for [{at}, {chunk_end}).")
        at = chunk_end
    report.n_retries = retrier.n_retried
    frame = _events_to_catalogue(events, start, end, report, where=base)
    _write_catalogue(frame, out, {"source": "HEK", "url": base, "frm_name": "SWPC", "start": start.isoformat(),
                                  "end": end.isoformat(), "n_flares": len(frame),
                                  "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return report


def _events_to_catalogue(events: list[dict], start: datetime, end: datetime, report: FlareListReport, *,
                         where: str) -> pd.DataFrame:
    report.n_events = len(events)
    rows = []
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            raise DataFormatError(where, field="result", expected="flare events as JSON objects",
                                  found=f"{str(event)[:60]!r} (event {i + 1})")
        times = {}
        for key in ("event_starttime", "event_peaktime", "event_endtime"):
            text = event.get(key)
            stamp = pd.to_datetime(text, errors="coerce") if text else pd.NaT
            if key == "event_starttime" and pd.isna(stamp):
                raise DataFormatError(where, field=key, expected="a start time such as 2024-05-10T06:27:00",
                                      found=f"{text!r} (event {i + 1})")
            times[key] = stamp
        goes_class = str(event.get("fl_goescls") or "").strip().upper()
        try:
            goes_class_flux(goes_class, magnitude_required=True)
        except ConfigError:
            report.n_without_class += 1
            continue
        if not (pd.Timestamp(start) <= times["event_starttime"] < pd.Timestamp(end)):
            report.n_outside += 1
            continue
        region = _region_number(event.get("ar_noaanum"), times["event_starttime"], report)
        rows.append({"start_time": times["event_starttime"], "peak_time": times["event_peaktime"],
                     "end_time": times["event_endtime"], "goes_class": goes_class,
                     "noaa_ar": region, "frm_name": str(event.get("frm_name") or "SWPC")})
    frame = pd.DataFrame(rows, columns=list(CATALOGUE_COLUMNS))
    before = len(frame)
    frame = frame.drop_duplicates(subset=["start_time", "goes_class", "noaa_ar"]).sort_values("start_time")
    report.n_duplicates = before - len(frame)
    report.n_flares = len(frame)
    report.n_unattributed = int(frame["noaa_ar"].isna().sum())
    return frame.reset_index(drop=True)


def _region_number(value: object, when: pd.Timestamp, report: FlareListReport) -> int | None:
    try:
        number = int(float(value))
    except (TypeError, ValueError):
        return None
    if number <= 0:
        return None
    if number < 10000 and when >= pd.Timestamp(NOAA_10000_FROM):
        report.n_renumbered += 1
        number += 10000
    return number


def _write_catalogue(frame: pd.DataFrame, out: Path, coverage: dict) -> None:
    text = frame.copy()
    for column in ("start_time", "peak_time", "end_time"):
        text[column] = pd.to_datetime(text[column]).dt.strftime("%Y-%m-%dT%H:%M:%S")
    text["noaa_ar"] = text["noaa_ar"].astype("Int64")
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        text.to_csv(temporary, index=False)
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
    coverage_path(out).write_text(json.dumps(coverage, indent=1))


def coverage_path(catalogue: str | Path) -> Path:
    """The sidecar file that records the span a fetched flare list covers."""
    return Path(f"{catalogue}.json")


def catalogue_coverage_end(catalogue: str | Path) -> datetime | None:
    """The end of the span a fetched flare list covers (``None`` when it has no sidecar)."""
    path = coverage_path(catalogue)
    if not path.is_file():
        return None
    try:
        return parse_time(json.loads(path.read_text())["end"], "end")
    except (ValueError, KeyError, ConfigError):
        raise DataFormatError(path, expected='a JSON object with "end" (written by flareseq fetch flares)',
                              found="something else") from None
