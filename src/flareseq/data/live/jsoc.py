"""SHARP keyword time series from JSOC through SunPy's ``drms`` client: paged, retried, resumable.

A fetch is cut into pages of whole days (``page_hours``), one ``jsoc_info?op=rs_list``
query each, e.g. ``hmi.sharp_cea_720s[][2014.01.01_00:00:00_TAI/1440m@12m]`` (all HARPs, one
day, every 12 minutes). Each finished page is written at once, atomically, into
``OUT.partial/`` beside the table with a ``state.json`` naming the query; rerunning the same
command after an interruption (dropped connection, JSOC error, Ctrl-C) fetches only the
pages that are not there yet. When all pages are in, they become the table ``OUT`` (rows for
missing records added, see :func:`flareseq.data.live.sharp.fill_missing_slots`), its spec
file ``OUT.toml``, and the partial folder is removed.

Transient failures (connection refused or dropped, timeouts, truncated answers, HTTP 408/
429/5xx) are retried with exponential backoff; an answer of JSOC with ``status != 0`` is
not retried: it is JSOC's verdict on the query, reported with its message.

The server is JSOC unless ``server_url`` names another (a mirror, or the loopback test
server): drms is then given a ``drms.config.ServerConfig`` with that ``cgi_baseurl``.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import sys
import time
import urllib.error
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import pandas as pd

from flareseq.data.live.sharp import (
    PRIME_KEYWORDS,
    SHARP_PARAMETERS,
    SIDE_KEYWORDS,
    cadence_minutes,
    check_series,
    fill_missing_slots,
    floor_to_slot,
    jsoc_time,
    keyword_rows,
    read_rows,
    table_spec_text,
    write_rows,
)
from flareseq.errors import (
    ConfigError,
    DownloadError,
    FlareseqError,
    MissingDependencyError,
)

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
STATE_NAME = "state.json"
STATE_FORMAT = "flareseq-sharp-fetch"
JSOC_URL_ENV = "FLARESEQ_JSOC_URL"

Echo = Callable[[str], None]


class JSOCError(DownloadError):
    """JSOC (or the network on the way) did not deliver a page; the message says how to resume."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# -- the query -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SharpQuery:
    """What to fetch: a series, a time span ``[start, end)``, HARPs (all when empty), a
    cadence and the feature keywords (the side keywords of :data:`SIDE_KEYWORDS` always come too)."""

    start: datetime
    end: datetime
    series: str = "hmi.sharp_cea_720s"
    harps: tuple[int, ...] = ()
    cadence: str = "12m"
    features: tuple[str, ...] = SHARP_PARAMETERS
    page_hours: float = 24.0

    def __post_init__(self) -> None:
        check_series(self.series)
        minutes = cadence_minutes(self.cadence)
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, datetime):
                object.__setattr__(self, name, parse_time(value, name))
        if self.end <= self.start:
            raise ConfigError(f"--end ({self.end:%Y-%m-%dT%H:%M}) must be after --start ({self.start:%Y-%m-%dT%H:%M}).")
        object.__setattr__(self, "start", floor_to_slot(self.start, minutes))
        object.__setattr__(self, "harps", tuple(sorted({int(h) for h in self.harps})))
        if any(h <= 0 for h in self.harps):
            raise ConfigError(f"HARP numbers are positive integers, got {list(self.harps)}.")
        object.__setattr__(self, "features", tuple(self.features))
        if not self.features:
            raise ConfigError("no feature keywords asked for.")
        page_minutes = self.page_hours * 60
        if page_minutes <= 0 or page_minutes % minutes:
            raise ConfigError(f"page_hours={self.page_hours} must be a positive whole number of {self.cadence} steps.")

    @property
    def minutes(self) -> int:
        return cadence_minutes(self.cadence)

    @property
    def keywords(self) -> list[str]:
        """Every keyword asked of JSOC, each once."""
        return list(dict.fromkeys([*PRIME_KEYWORDS, *self.features, *SIDE_KEYWORDS]))

    def pages(self) -> list[tuple[datetime, datetime]]:
        """``[start, end)`` of each page; the last one ends at ``end`` (on the slot grid)."""
        step = timedelta(hours=self.page_hours)
        out, at = [], self.start
        while at < self.end:
            out.append((at, min(at + step, self.end)))
            at += step
        return out

    def record_set(self, page_start: datetime, page_end: datetime) -> str:
        """The DRMS record-set query of one page: ``series[harps][start/Nm@cadence]``."""
        minutes = int((page_end - page_start) / timedelta(minutes=1))
        # a page ending off the grid still includes its last slot before the end
        minutes = max(self.minutes, -(-minutes // self.minutes) * self.minutes)
        harps = ",".join(str(h) for h in self.harps)
        return f"{self.series}[{harps}][{jsoc_time(page_start)}/{minutes}m@{self.minutes}m]"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(start=self.start.isoformat(), end=self.end.isoformat(), harps=list(self.harps),
                 features=list(self.features))
        return d


def parse_time(value: object, name: str = "time") -> datetime:
    """A naive UTC datetime from ISO text (``2024-05-10``, ``2024-05-10T12:00``, a trailing Z)."""
    try:
        stamp = pd.Timestamp(str(value))
    except (ValueError, TypeError):
        raise ConfigError(f"--{name} must be a date or time such as 2024-05-10 or 2024-05-10T12:00, "
                          f"got {value!r}.") from None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.to_pydatetime()


# -- the client ----------------------------------------------------------------------------
def make_client(server_url: str | None = None):
    """A ``drms.Client`` for JSOC, or for the server at ``server_url`` (a ``cgi_baseurl``
    such as ``http://127.0.0.1:8080/cgi-bin/ajax/``; also read from ``FLARESEQ_JSOC_URL``)."""
    import os

    try:
        import drms
        from drms.config import ServerConfig
    except ImportError:
        raise MissingDependencyError("drms", "live", "fetching SHARP keywords from JSOC") from None
    server_url = server_url or os.environ.get(JSOC_URL_ENV)
    if not server_url:
        return drms.Client("jsoc")
    if not server_url.endswith("/"):
        server_url += "/"
    return drms.Client(ServerConfig(name="flareseq-jsoc", cgi_baseurl=server_url, cgi_jsoc_info="jsoc_info"))


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in RETRY_STATUSES
    return isinstance(exc, (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout,
                            http.client.HTTPException, json.JSONDecodeError, UnicodeDecodeError))


@dataclass
class Retrier:
    """Calls with retries: ``retries`` more attempts after the first, waiting
    ``backoff_s * 2**k`` (at most 60 s) between them."""

    retries: int = 4
    backoff_s: float = 2.0
    echo: Echo | None = _stderr
    n_retried: int = 0
    error: type[DownloadError] = JSOCError
    server_name: str = "JSOC"

    def call(self, function: Callable[[], Any], what: str, resume_hint: str) -> Any:
        try:
            from drms.exceptions import DrmsQueryError
        except ImportError:  # pragma: no cover - make_client reports it first
            DrmsQueryError = ()  # noqa: N806
        for attempt in range(self.retries + 1):
            try:
                return function()
            except DrmsQueryError as exc:
                raise self.error(f"{self.server_name} answered an error to {what}: {exc}. {resume_hint}") from None
            except urllib.error.HTTPError as exc:
                if not _is_transient(exc) or attempt == self.retries:
                    raise self.error(f"{what} failed: HTTP {exc.code} {exc.reason} from {exc.url} "
                                    f"(after {attempt + 1} attempt(s)). {resume_hint}") from None
                last = exc
            except Exception as exc:  # noqa: BLE001 - classified below
                if isinstance(exc, FlareseqError):
                    raise
                if not _is_transient(exc):
                    # an answer drms could not turn into a table: a server's fault, not a bug here
                    raise self.error(f"{what}: the answer of {self.server_name} could not be read "
                                     f"({type(exc).__name__}: {exc}). {resume_hint}") from None
                if attempt == self.retries:
                    raise self.error(f"{what} failed after {attempt + 1} attempt(s): {type(exc).__name__}: "
                                    f"{exc or 'connection closed'}. {resume_hint}") from None
                last = exc
            wait = min(60.0, self.backoff_s * 2**attempt)
            self.n_retried += 1
            if self.echo:
                self.echo(f"  {what}: {type(last).__name__}: {last or 'connection closed'}; "
                          f"retrying in {wait:.1f} s ({attempt + 1}/{self.retries})")
            time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover


def check_keywords(client, series: str, keywords: Sequence[str], retrier: Retrier) -> None:
    """Fail before any page is fetched when the series lacks a keyword: JSOC would answer
    ``Invalid KeyLink`` for it in every record, which must not pass as missing values."""
    available = retrier.call(lambda: client.keys(series), f"the keyword list of {series}",
                             "Check the series name (flareseq fetch sharp --series).")
    lower = {k.lower(): k for k in available}
    absent = [k for k in keywords if k.lower() not in lower]
    if absent:
        hints = {k: get_close_matches(k, available, n=1) for k in absent}
        said = ", ".join(f"{k}" + (f" (did you mean {h[0]}?)" if h else "") for k, h in hints.items())
        raise ConfigError(f"series {series} has no keyword(s) {said}; it has {len(available)} keywords, "
                          f"e.g. {sorted(available)[:12]}.")


def query_page(client, query: SharpQuery, page: tuple[datetime, datetime], retrier: Retrier, *,
               what: str, resume_hint: str) -> tuple[pd.DataFrame, int]:
    """The typed rows of one page, and the count of values that did not parse."""
    record_set = query.record_set(*page)

    def ask():
        return client.query(record_set, key=query.keywords, convert_numeric=False)

    frame = retrier.call(ask, f"{what} ({record_set})", resume_hint)
    rows, n_bad = keyword_rows(frame, query.features, where=f"JSOC answer to {record_set}")
    # records JSOC sends outside the page would be fetched twice across pages
    inside = (rows["T_REC"] >= pd.Timestamp(page[0])) & (rows["T_REC"] < pd.Timestamp(page[1]))
    return rows[inside.to_numpy()], n_bad


# -- the fetch -----------------------------------------------------------------------------
@dataclass
class FetchReport:
    """What a fetch did; :meth:`summary` is what ``flareseq fetch sharp`` prints."""

    table: Path
    spec: Path | None
    n_pages: int = 0
    n_fetched_pages: int = 0
    n_resumed_pages: int = 0
    n_records: int = 0
    n_missing_records: int = 0
    n_harps: int = 0
    n_unparseable_values: int = 0
    n_retries: int = 0
    seconds: float = 0.0
    harps: list[int] = field(default_factory=list)

    def summary(self) -> str:
        return (f"table {self.table}: {self.n_records} records of {self.n_harps} HARP(s), "
                f"{self.n_missing_records} missing record(s) kept as empty rows (RECORD_MISSING=1)\n"
                f"{self.n_pages} page(s): {self.n_fetched_pages} fetched, {self.n_resumed_pages} resumed from a "
                f"previous run; {self.n_retries} retry(ies); {self.n_unparseable_values} value(s) that were not "
                f"numbers kept as missing; {self.seconds:.1f} s"
                + (f"\nspec {self.spec} (flareseq ingest {self.table} --table-spec {self.spec} --out STORE)" if self.spec else ""))


def partial_dir(out: Path) -> Path:
    return out.with_name(f"{out.name}.partial")


def _open_partial(folder: Path, query: SharpQuery, restart: bool) -> None:
    state_path = folder / STATE_NAME
    wanted = {"format": STATE_FORMAT, "version": 1, "query": query.to_dict()}
    if folder.exists():
        if not state_path.is_file():
            raise ConfigError(f"{folder} exists but is not a partial fetch of flareseq (no {STATE_NAME}); "
                              "move it away.")
        state = json.loads(state_path.read_text())
        if restart or state != wanted:
            strangers = [p.name for p in folder.iterdir() if p.name != STATE_NAME and not p.name.startswith("page-")]
            if strangers:
                raise ConfigError(f"{folder} holds files flareseq did not write ({strangers[:3]}); move them away.")
            if not restart:
                old = state.get("query", {})
                differs = sorted(k for k in set(old) | set(wanted["query"]) if old.get(k) != wanted["query"].get(k))
                raise ConfigError(f"{folder} holds an interrupted fetch of another query (differs in {differs}); "
                                  "rerun that command to finish it, or pass --restart to discard it.")
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not state_path.is_file():
        temporary = state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(wanted, indent=1))
        temporary.replace(state_path)


def fetch_sharp(query: SharpQuery, out: str | Path, *, server_url: str | None = None, retries: int = 4,
                backoff_s: float = 2.0, progress: bool | None = None, restart: bool = False,
                overwrite: bool = False, echo: Echo | None = _stderr, client=None) -> FetchReport:
    """Fetch SHARP keywords into the table ``out`` (CSV, or Parquet for ``.parquet``) and
    write its table spec ``out + ".toml"``.

    Parameters
    ----------
    query : what to fetch (:class:`SharpQuery`).
    out : the table file; an existing one is replaced only with ``overwrite``.
    server_url : another JSOC-compatible server's ``cgi_baseurl`` (default JSOC, or
        ``$FLARESEQ_JSOC_URL``).
    retries, backoff_s : more attempts per request after a transient failure, and the first wait.
    progress : a progress bar (``None``: when stderr is a terminal; otherwise one line per page).
    restart : discard an interrupted fetch of another query at ``out + ".partial"``.
    echo : where page lines and retry notes go (``None``: nowhere).
    client : a ``drms.Client`` to use instead of :func:`make_client`'s.

    Raises
    ------
    JSOCError
        When a page cannot be had; the pages fetched so far stay for the next run.
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give the table's file name, e.g. {out / 'sharp.csv'}.")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists; pass --overwrite to replace it.")
    if not out.parent.is_dir():
        raise ConfigError(f"the folder of --out, {out.parent}, does not exist.")
    folder = partial_dir(out)
    _open_partial(folder, query, restart)
    client = client or make_client(server_url)
    retrier = Retrier(retries=retries, backoff_s=backoff_s, echo=echo)
    pages = query.pages()
    report = FetchReport(table=out, spec=None, n_pages=len(pages))
    hint = f"Pages fetched so far are kept in {folder}; run the same command again to resume."
    check_keywords(client, query.series, query.keywords, retrier)
    show_bar = sys.stderr.isatty() if progress is None else bool(progress)
    bar = tqdm(total=len(pages), desc="fetch sharp", unit="page", disable=not show_bar, leave=False)
    try:
        for number, page in enumerate(pages, start=1):
            page_file = folder / f"page-{number:05d}.csv"
            label = f"page {number}/{len(pages)} [{page[0]:%Y-%m-%dT%H:%M}, {page[1]:%Y-%m-%dT%H:%M})"
            if page_file.is_file():
                report.n_resumed_pages += 1
                line = f"{label}: already fetched"
            else:
                rows, n_bad = query_page(client, query, page, retrier, what=label, resume_hint=hint)
                write_rows(rows, page_file, query.features)
                report.n_fetched_pages += 1
                report.n_unparseable_values += n_bad
                line = f"{label}: {len(rows)} records of {rows['HARPNUM'].nunique()} HARP(s)"
            bar.update(1)
            if show_bar:
                bar.set_postfix_str(line.split(": ", 1)[1])
            elif echo:
                echo(f"fetch sharp: {line}")
    finally:
        bar.close()
        report.n_retries = retrier.n_retried
    frames = [read_rows(folder / f"page-{n:05d}.csv") for n in range(1, len(pages) + 1)]
    frames = [f for f in frames if len(f)]
    rows = pd.concat(frames, ignore_index=True) if frames else keyword_rows(pd.DataFrame(), query.features,
                                                                           where="")[0]
    rows = rows.drop_duplicates(subset=["HARPNUM", "T_REC"], keep="first")
    report.n_records = len(rows)
    rows, report.n_missing_records = fill_missing_slots(rows, query.minutes)
    write_rows(rows, out, query.features)
    spec = out.with_name(out.name + ".toml")
    spec.write_text(table_spec_text(out, query.features, query.minutes))
    report.spec = spec
    report.harps = sorted(int(h) for h in rows["HARPNUM"].unique()) if len(rows) else []
    report.n_harps = len(report.harps)
    shutil.rmtree(folder)
    report.seconds = time.perf_counter() - started
    return report


def fetch_recent_sharp(series: str, at: datetime, *, n_steps: int, cadence: str = "12m",
                       features: Sequence[str] = SHARP_PARAMETERS, lookback_hours: float = 6.0,
                       server_url: str | None = None, retries: int = 4, backoff_s: float = 2.0,
                       echo: Echo | None = _stderr, client=None) -> pd.DataFrame:
    """Every HARP's records from ``n_steps`` slots plus ``lookback_hours`` before ``at`` up
    to ``at`` (one query, no resume: it is small), typed as in the fetched tables. Used by
    forecasts for a given time: the newest data may lag the wall clock by hours."""
    minutes = cadence_minutes(cadence)
    end = floor_to_slot(at, minutes) + timedelta(minutes=minutes)  # includes the slot at `at`
    start = end - timedelta(minutes=minutes * n_steps) - timedelta(hours=lookback_hours)
    page_hours = (end - start) / timedelta(hours=1)
    query = SharpQuery(start=floor_to_slot(start, minutes), end=end, series=series, cadence=cadence,
                       features=tuple(features), page_hours=page_hours)
    client = client or make_client(server_url)
    retrier = Retrier(retries=retries, backoff_s=backoff_s, echo=echo)
    check_keywords(client, series, query.keywords, retrier)
    rows, n_bad = query_page(client, query, (query.start, query.end), retrier, what="the recent records",
                             resume_hint="Run the command again.")
    if n_bad and echo:
        echo(f"forecast: {n_bad} keyword value(s) from JSOC were not numbers; kept as missing")
    return rows.drop_duplicates(subset=["HARPNUM", "T_REC"]).reset_index(drop=True)
