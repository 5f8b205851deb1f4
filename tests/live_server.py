"""A loopback JSOC + HEK for the tests of ``flareseq.data.live`` (no internet needed).

A real HTTP server on 127.0.0.1 that answers what ``drms`` asks of JSOC's ``jsoc_info`` CGI
(``op=series_struct`` and ``op=rs_list``) and what the HEK search API is asked for flares,
in the shapes those services document and ``drms``/``sunpy.net.hek`` parse:

- ``jsoc_info?op=series_struct&ds=SERIES`` -> ``{"primekeys": [...], "keywords": [{"name",
  "type", "recscope", "defval", "units", "note", "linkinfo"}, ...], "segments": [], "links":
  [], ..., "status": 0}``;
- ``jsoc_info?op=rs_list&ds=SERIES[HARPS][START/Nm@Mm]&key=K1,K2`` -> ``{"keywords":
  [{"name": K, "values": [text, ...]}, ...], "count": n, "runtime": s, "status": 0}``, every
  value as text the way JSOC writes it (``2024.05.01_00:12:00_TAI``, ``nan``, ``0x00000000``,
  ``"13664,13668"``); an unknown keyword answers ``Invalid KeyLink`` values, an error
  ``{"status": 1, "error": "..."}``;
- ``her?cosec=2&cmd=search&type=column&event_type=FL&...&page=P&result_limit=L`` ->
  ``{"result": [{"event_starttime", "event_peaktime", "event_endtime", "fl_goescls",
  "ar_noaanum", "frm_name", ...}], "overmax": bool}``.

The Sun it serves is synthetic but shaped like the real one: HARPs that cross the disk at
the solar rotation rate (13.2 degrees/day), SHARP-like magnitudes that grow with a region's
activity, M- and X-class flares drawn more often from active regions, records missing now
and then, ``nan`` values and non-zero quality flags. Tests can make it drop connections in
the middle of an answer or answer JSOC errors for chosen pages.

Run it alone for a demonstration: ``python tests/live_server.py --port 8765``.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np

SHARP_PARAMETERS = (
    "TOTUSJH", "TOTBSQ", "TOTPOT", "TOTUSJZ", "ABSNJZH", "SAVNCPP", "USFLUX", "TOTFZ",
    "MEANPOT", "EPSZ", "MEANSHR", "SHRGT45", "MEANGAM", "MEANGBT", "MEANGBZ", "MEANGBH",
    "MEANJZH", "TOTFY", "MEANJZD", "MEANALP", "TOTFX", "EPSY", "EPSX", "R_VALUE",
)
# Typical quiet magnitudes of each keyword (orders of magnitude of the real SHARP values).
SCALES = dict(zip(SHARP_PARAMETERS, (
    500, 5e9, 5e22, 1e13, 50, 5e12, 1e22, -1e22, 5e3, -0.1, 30, 20, 30, 150, 100, 80,
    0.01, 1e22, 0.2, 0.01, 1e22, 0.1, 0.1, 2.0,
)))
SIDE = ("NOAA_AR", "NOAA_NUM", "NOAA_ARS", "QUALITY", "CRVAL1", "CRLN_OBS", "LAT_MIN", "LON_MIN", "LAT_MAX",
        "LON_MAX")
SERIES = ("hmi.sharp_cea_720s", "hmi.sharp_720s", "hmi.sharp_cea_720s_nrt", "hmi.sharp_720s_nrt")
ROTATION_DEG_PER_DAY = 13.2
_RS = re.compile(r"^(?P<series>[\w.]+)\[(?P<harps>[^\]]*)\]\[(?P<start>[^/\]]+)/(?P<dur>\d+)m@(?P<step>\d+)m\]$")


def jsoc_time(moment: datetime) -> str:
    return moment.strftime("%Y.%m.%d_%H:%M:%S_TAI")


@dataclass
class Region:
    harp: int
    noaa: tuple[int, ...]
    first: datetime
    last: datetime
    longitude0: float  # Stonyhurst longitude at `first`
    latitude: float
    peak: datetime  # when its activity is highest
    strength: float  # 0 (quiet) .. 1 (very active)


@dataclass
class SyntheticSun:
    """Regions, their 12-minute records (as JSOC text) and flares over ``[start, start + days)``."""

    start: datetime = datetime(2024, 5, 1)
    days: int = 6
    n_regions: int = 8
    seed: int = 17
    regions: list[Region] = field(default_factory=list)
    records: dict[int, dict[datetime, dict[str, str]]] = field(default_factory=dict)
    flares: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        end = self.start + timedelta(days=self.days)
        for k in range(self.n_regions):
            # regions appear at the east limb or already on the disk, cross it, leave at the west limb
            lon0 = float(rng.uniform(-75, 40))
            first = self.start + timedelta(hours=float(rng.uniform(0, 24 * self.days * 0.75)))
            # until it decays (2-6 days) or rotates past the west limb
            lifetime = min((80 - lon0) / ROTATION_DEG_PER_DAY, float(rng.uniform(2, 6)))
            last = min(end, first + timedelta(days=lifetime))
            noaa = () if k == self.n_regions - 1 else (13660 + k,) if k % 3 else (13660 + k, 13690 + k)
            strength = float([0.95, 0.8, 0.2, 0.6, 0.1, 0.9, 0.3, 0.05][k % 8])
            peak = first + (last - first) * float(rng.uniform(0.3, 0.8))
            self.regions.append(Region(11000 + k, noaa, first.replace(minute=0, second=0, microsecond=0), last,
                                       lon0, float(rng.uniform(-25, 25)), peak, strength))
        for region in self.regions:
            self.records[region.harp] = self._region_records(region, rng)
            self.flares.extend(self._region_flares(region, rng))
        # a flare without a region, and a C flare with an SWPC-style four-digit number
        self.flares.append(_flare(self.start + timedelta(hours=30), "M1.2", None))
        if self.regions[0].noaa:
            self.flares.append(_flare(self.regions[0].first + timedelta(hours=3), "C3.4", self.regions[0].noaa[0] - 10000))
        self.flares.sort(key=lambda f: f["event_starttime"])

    def activity(self, region: Region, moment: datetime) -> float:
        hours = (moment - region.peak) / timedelta(hours=1)
        return region.strength * float(np.exp(-0.5 * (hours / 30.0) ** 2))

    def _region_records(self, region: Region, rng) -> dict[datetime, dict[str, str]]:
        out = {}
        moment = region.first
        noise = {p: 1.0 for p in SHARP_PARAMETERS}
        while moment < region.last:
            if rng.random() < 0.02:  # no record for this slot (as in real data gaps)
                moment += timedelta(minutes=12)
                continue
            a = self.activity(region, moment)
            days = (moment - region.first) / timedelta(days=1)
            lon = region.longitude0 + ROTATION_DEG_PER_DAY * days
            values = {}
            for p in SHARP_PARAMETERS:
                noise[p] = 0.9 * noise[p] + 0.1 * float(rng.lognormal(0, 0.2))
                value = SCALES[p] * (0.2 + 4.0 * a) * noise[p]
                values[p] = "nan" if rng.random() < 0.003 else f"{value:.6g}"
            crln_obs = 100.0 - ROTATION_DEG_PER_DAY * days
            values.update({
                "HARPNUM": str(region.harp), "T_REC": jsoc_time(moment),
                "NOAA_AR": str(region.noaa[0] if region.noaa else 0), "NOAA_NUM": str(len(region.noaa)),
                "NOAA_ARS": ",".join(str(n) for n in region.noaa) if region.noaa else "",
                "QUALITY": "0x00000400" if rng.random() < 0.01 else "0x00000000",
                "CRVAL1": f"{crln_obs + lon:.4f}", "CRLN_OBS": f"{crln_obs:.4f}",
                "LAT_MIN": f"{region.latitude - 4:.4f}", "LAT_MAX": f"{region.latitude + 4:.4f}",
                "LON_MIN": f"{lon - 5:.4f}", "LON_MAX": f"{lon + 5:.4f}",
            })
            out[moment] = values
            moment += timedelta(minutes=12)
        return out

    def _region_flares(self, region: Region, rng) -> list[dict]:
        flares = []
        moment = region.first
        while moment < region.last:
            a = self.activity(region, moment)
            if region.noaa and rng.random() < 0.06 * a**2:  # per hour
                letter = "X" if rng.random() < 0.15 else "M"
                flares.append(_flare(moment + timedelta(minutes=int(rng.integers(0, 60))),
                                     f"{letter}{rng.uniform(1, 5):.1f}", region.noaa[-1]))
            elif rng.random() < 0.02 + 0.1 * a:
                flares.append(_flare(moment + timedelta(minutes=int(rng.integers(0, 60))),
                                     f"C{rng.uniform(1, 9.9):.1f}", region.noaa[0] if region.noaa else None))
            moment += timedelta(hours=1)
        return flares


def _flare(start: datetime, goes_class: str, noaa: int | None) -> dict:
    return {"event_starttime": start.strftime("%Y-%m-%dT%H:%M:%S"),
            "event_peaktime": (start + timedelta(minutes=9)).strftime("%Y-%m-%dT%H:%M:%S"),
            "event_endtime": (start + timedelta(minutes=25)).strftime("%Y-%m-%dT%H:%M:%S"),
            "fl_goescls": goes_class, "ar_noaanum": noaa if noaa is not None else 0, "frm_name": "SWPC",
            "obs_observatory": "GOES", "event_type": "FL"}


@dataclass
class LiveServer:
    """What the handler serves and how it misbehaves; tests change it between requests."""

    sun: SyntheticSun
    url: str = ""
    drops: dict[str, int] = field(default_factory=dict)  # substring of an rs_list ds -> answers to cut short
    errors: dict[str, int] = field(default_factory=dict)  # substring of an rs_list ds -> JSOC error answers
    garbled: dict[str, int] = field(default_factory=dict)  # substring of an rs_list ds -> ragged keyword lists
    hek_statuses: list[int] = field(default_factory=list)  # HTTP statuses for the next HEK requests
    seen: list[str] = field(default_factory=list)  # every request's path and query

    @property
    def jsoc_url(self) -> str:
        return f"{self.url}/cgi-bin/ajax/"

    @property
    def hek_url(self) -> str:
        return f"{self.url}/hek/her"

    def rs_list_requests(self) -> list[str]:
        """The record sets (``ds``) of the rs_list requests seen, decoded."""
        return [parse_qs(urlsplit(s).query)["ds"][0] for s in self.seen if "op=rs_list" in s]


class _Handler(BaseHTTPRequestHandler):
    server_version = "flareseq-live-test/1"

    def log_message(self, *args) -> None:
        pass

    def _send(self, document: object, *, cut: bool = False, status: int = 200) -> None:
        body = json.dumps(document).encode("latin1" if "cgi-bin" in self.path else "utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cut:  # the connection drops in the middle of the answer
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def do_GET(self) -> None:
        state: LiveServer = self.server.state
        state.seen.append(self.path)
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if parts.path.endswith("/jsoc_info"):
            op = query.get("op")
            if op == "series_struct":
                return self._send(_series_struct(query.get("ds", "")))
            if op == "rs_list":
                ds = query.get("ds", "")
                for key in list(state.drops):
                    if key in ds and state.drops[key] > 0:
                        state.drops[key] -= 1
                        return self._send(_rs_list(state.sun, ds, query.get("key", "")), cut=True)
                for key in list(state.garbled):
                    if key in ds and state.garbled[key] > 0:
                        state.garbled[key] -= 1
                        return self._send({"keywords": [{"name": "HARPNUM", "values": ["11000", "11001"]},
                                                        {"name": "T_REC", "values": ["2024.05.01_00:00:00_TAI"]}],
                                           "count": 2, "runtime": 0.01, "status": 0})
                for key in list(state.errors):
                    if key in ds and state.errors[key] > 0:
                        state.errors[key] -= 1
                        return self._send({"status": 1, "error": f"DRMS query failed: cannot open record set {ds}"})
                return self._send(_rs_list(state.sun, ds, query.get("key", "")))
            return self._send({"status": 1, "error": f"unknown op {op!r}"})
        if parts.path.endswith("/hek/her"):
            if state.hek_statuses:
                status = state.hek_statuses.pop(0)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            return self._send(_hek_search(state.sun, query))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return None


def _series_struct(ds: str) -> dict:
    name = ds.split("[")[0].lower()
    if name not in SERIES:
        return {"status": 1, "error": f"series {name} does not exist"}
    keywords = [{"name": "HARPNUM", "type": "int", "recscope": "variable", "defval": "-2147483648",
                 "units": "none", "note": "HARP ID", "linkinfo": "none"},
                {"name": "T_REC", "type": "time", "recscope": "ts_eq", "defval": "-4712.01.01_11:59:28_TAI",
                 "units": "TAI", "note": "[T_REC] Slot time", "linkinfo": "none"}]
    for keyword in (*SHARP_PARAMETERS, *SIDE):
        kind = "string" if keyword == "NOAA_ARS" else "int" if keyword in ("NOAA_AR", "NOAA_NUM", "QUALITY") else "float"
        keywords.append({"name": keyword, "type": kind, "recscope": "variable", "defval": "nan", "units": "",
                         "note": keyword, "linkinfo": "none"})
    return {"primekeys": ["HARPNUM", "T_REC"], "dbindex": ["HARPNUM", "T_REC"], "keywords": keywords,
            "links": [], "segments": [], "note": "SHARP (loopback test server)", "retention": 10000,
            "unitsize": 32, "archive": 1, "tapegroup": 1, "status": 0}


def _rs_list(sun: SyntheticSun, ds: str, keys: str) -> dict:
    match = _RS.match(ds)
    if not match or match["series"].lower() not in SERIES:
        return {"status": 1, "error": f"bad record set {ds}"}
    start = datetime.strptime(match["start"], "%Y.%m.%d_%H:%M:%S_TAI")
    end = start + timedelta(minutes=int(match["dur"]))
    step = timedelta(minutes=int(match["step"]))
    harps = [int(h) for h in match["harps"].split(",") if h.strip()]
    names = [k for k in keys.split(",") if k]
    columns: dict[str, list[str]] = {k: [] for k in names}
    for harp in sorted(sun.records):
        if harps and harp not in harps:
            continue
        for moment, record in sorted(sun.records[harp].items()):
            if start <= moment < end and (moment - start) % step == timedelta(0):
                for k in names:
                    columns[k].append(record.get(k, "Invalid KeyLink"))
    count = len(next(iter(columns.values()))) if columns else 0
    return {"keywords": [{"name": k, "values": v} for k, v in columns.items()], "count": count,
            "runtime": 0.01, "status": 0}


def _hek_search(sun: SyntheticSun, query: dict) -> dict:
    start = datetime.fromisoformat(query["event_starttime"])
    end = datetime.fromisoformat(query["event_endtime"])
    page, limit = int(query.get("page", 1)), int(query.get("result_limit", 100))
    hits = [f for f in sun.flares if f["event_starttime"] <= end.isoformat() and f["event_endtime"] >= start.isoformat()]
    chunk = hits[(page - 1) * limit: page * limit]
    return {"result": chunk, "overmax": page * limit < len(hits)}


def start_server(sun: SyntheticSun | None = None, port: int = 0) -> tuple[ThreadingHTTPServer, LiveServer]:
    state = LiveServer(sun or SyntheticSun())
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    server.daemon_threads = True
    server.state = state
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state


if __name__ == "__main__":  # pragma: no cover - a demonstration server
    import argparse

    parser = argparse.ArgumentParser(description="Serve the synthetic Sun as JSOC (drms) and HEK answers.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--start", default="2024-05-01")
    parser.add_argument("--days", type=int, default=6)
    parser.add_argument("--regions", type=int, default=8)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    server, state = start_server(SyntheticSun(start=datetime.fromisoformat(args.start), days=args.days,
                                              n_regions=args.regions, seed=args.seed), port=args.port)
    print(f"JSOC: {state.jsoc_url}\nHEK:  {state.hek_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()
