"""A forecasting data set in the Kaggle/SWAN-SF sample layout, for any period.

From a fetched SHARP keyword table and a GOES flare list (:mod:`.jsoc`, :mod:`.flares`):

1. **Windows** (SWAN-SF's "observation window"): the last 60 records of a HARP at the
   12-minute cadence (12 hours), ending at a record, one every ``stride_hours`` (1 h) per
   HARP, through the keyword-table reader (:mod:`flareseq.data.tables.windows`). Missing
   records stay missing (NaN), never interpolated; ``missing="drop"`` leaves out windows that
   hold any.
2. **Labels**: 1 when a flare of class >= ``min_class`` (M1.0) attributed to one of the
   HARP's NOAA regions (``NOAA_ARS`` at the window's last record) starts after the window
   end and at most 24 hours later (:func:`~flareseq.data.tables.catalogue.catalogue_labels`).
3. **Exclusions** (each counted in the report, see :class:`DatasetReport`): windows whose
   24-hour horizon runs past the end of the flare list (their label is unknown); windows of
   HARPs without a NOAA number (no flare can be attributed to them, so a negative label
   would be a guess; ``unnumbered="negative"`` keeps them as negatives); with
   ``max_longitude``, near-limb windows whose last record lies more than that many degrees
   from the central meridian (``max(|LON_MIN|, |LON_MAX|)``, Stonyhurst longitude), where
   projection effects distort SHARP keywords; and the windows the partition leaves out (4).
4. **Partition by time**: ``partitions`` consecutive blocks of whole UTC days (or blocks cut
   at ``partition_dates``), numbered folds 1, 2, ... in time order. A window belongs to a
   block only if its observation *and* its 24-hour label horizon lie inside that block's days;
   a HARP that spans blocks keeps only its windows in the block that holds most of them. So
   two folds never share a day (of data or of flares) nor a region. With three blocks the
   store trains, validates and tests forward in time under the default split of
   ``flareseq train`` (folds 1 / 2 / 3).

The windows keep, per step, SWAN-SF's side series (never features): ``QUALITY``,
``RECORD_MISSING``, ``NOAA_AR`` and the location keywords.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from flareseq.data.dataset import FlareDataset
from flareseq.data.live.flares import catalogue_coverage_end, fetch_flares
from flareseq.data.live.jsoc import Echo, SharpQuery, _stderr, fetch_sharp, parse_time
from flareseq.data.live.sharp import (
    LOCATION_KEYWORDS,
    RECORD_MISSING,
    SHARP_PARAMETERS,
    read_rows,
)
from flareseq.data.schema import UNLABELLED
from flareseq.data.tables.catalogue import catalogue_labels, read_catalogue
from flareseq.data.tables.spec import TableSpec
from flareseq.data.tables.windows import build_table_windows
from flareseq.errors import ConfigError

AUX_KEYWORDS = ("QUALITY", RECORD_MISSING, "NOAA_AR", *LOCATION_KEYWORDS)
EXCLUSIONS = ("beyond_flare_list", "no_noaa_region", "near_limb", "partition_boundary", "region_in_other_fold")


@dataclass(frozen=True)
class DatasetOptions:
    """How windows are cut, labelled, excluded and partitioned (see the module's notes)."""

    steps: int = 60
    cadence_minutes: int = 12
    stride_hours: float = 1.0
    min_class: str = "M"
    horizon_hours: float = 24.0
    missing: str = "keep"
    unnumbered: str = "exclude"
    max_longitude: float | None = None
    partitions: int = 3
    partition_dates: tuple[str, ...] = ()
    features: tuple[str, ...] = SHARP_PARAMETERS

    def __post_init__(self) -> None:
        if self.missing not in ("keep", "drop"):
            raise ConfigError(f"missing must be 'keep' or 'drop', got {self.missing!r}.")
        if self.unnumbered not in ("exclude", "negative"):
            raise ConfigError(f"unnumbered must be 'exclude' or 'negative', got {self.unnumbered!r}.")
        stride = self.stride_hours * 60 / self.cadence_minutes
        if stride < 1 or abs(stride - round(stride)) > 1e-9:
            raise ConfigError(f"stride_hours={self.stride_hours} must be a whole number (>= 1) of "
                              f"{self.cadence_minutes}-minute steps.")
        if self.max_longitude is not None and not 0 < self.max_longitude <= 90:
            raise ConfigError(f"max_longitude must be in (0, 90] degrees, got {self.max_longitude}.")
        if not self.partition_dates and self.partitions < 1:
            raise ConfigError(f"partitions must be at least 1, got {self.partitions}.")
        if self.steps < 2:
            raise ConfigError(f"steps must be at least 2, got {self.steps}.")

    @property
    def stride_steps(self) -> int:
        return int(round(self.stride_hours * 60 / self.cadence_minutes))


@dataclass
class DatasetReport:
    """Counts that account for every candidate window, and the folds."""

    store: Path
    n_windows_built: int = 0
    table_drops: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    n_samples: int = 0
    n_positive: int = 0
    folds: list[dict] = field(default_factory=list)
    shared_regions: int = 0
    shared_days: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["store"] = str(self.store)
        return d

    def summary(self) -> str:
        drops = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in self.table_drops.items() if n) or "none"
        excl = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in self.excluded.items() if n) or "none"
        lines = [f"store {self.store}: {self.n_samples} windows ({self.n_positive} positive)",
                 f"windows cut: {self.n_windows_built} (not cut: {drops}); excluded: {excl}"]
        for fold in self.folds:
            lines.append(f"  fold {fold['fold']}: [{fold['start']}, {fold['end']}) {fold['n_samples']} windows, "
                         f"{fold['n_positive']} positive, {fold['n_regions']} HARP(s)")
        lines.append(f"folds share {self.shared_regions} HARP(s) and {self.shared_days} day(s)")
        return "\n".join(lines)


def build_dataset_from_files(table: str | Path, catalogue: str | Path, out: str | Path, *,
                             options: DatasetOptions = DatasetOptions(), catalogue_end: object | None = None,
                             overwrite: bool = False, progress: bool | None = None) -> DatasetReport:
    """Windows, labels, exclusions and folds (module notes) from a fetched keyword table and a
    flare list, written as a store at ``out``.

    Parameters
    ----------
    table : a table written by ``flareseq fetch sharp`` (or any with its columns).
    catalogue : a flare list :func:`~flareseq.data.tables.catalogue.read_catalogue` reads.
    catalogue_end : when the flare list's coverage ends; default its ``.json`` sidecar (from
        ``flareseq fetch flares``), else the last window end plus the horizon (no window is
        then left unlabelled for lack of flare data: say it when you know it).
    """
    from flareseq.data.store import StoreWriter, aux_kind

    table, catalogue, out = Path(table), Path(catalogue), Path(out)
    header = list(pd.read_csv(table, nrows=0).columns) if table.suffix.lower() not in {".parquet", ".pq"} else None
    features = tuple(f for f in options.features if header is None or f in header)
    if not features:
        raise ConfigError(f"{table} has none of the features {list(options.features)}.")
    spec = TableSpec(region_columns=("HARPNUM",), time_column="T_REC", features=features,
                     cadence_minutes=options.cadence_minutes, window=options.steps, stride=options.stride_steps,
                     nan_policy="drop" if options.missing == "drop" else "keep", noaa_column="NOAA_ARS",
                     fold_pattern=None)
    # refuse a bad --out before the work (the checks run again at the write)
    StoreWriter(out, feature_names=(), n_timesteps=1, overwrite=overwrite, protect=[table, catalogue])
    windows = build_table_windows([table], spec, progress=progress is not False)
    dataset = windows.dataset
    report = DatasetReport(store=out, n_windows_built=dataset.n_samples,
                           table_drops={k: v for k, v in windows.report.dropped.items() if k != "stride"},
                           excluded={k: 0 for k in EXCLUSIONS})
    rows = read_rows(table)
    dataset = _with_aux(dataset, rows, options.cadence_minutes)
    horizon = timedelta(hours=options.horizon_hours)
    end = catalogue_end if catalogue_end is not None else catalogue_coverage_end(catalogue)
    if end is None:
        end = pd.Timestamp(dataset.meta["end"].max()).to_pydatetime() + horizon if dataset.n_samples else None
    labels = catalogue_labels(dataset.meta["noaa"].astype(object).to_numpy(), dataset.meta["end"].to_numpy(),
                              read_catalogue(catalogue), min_class=options.min_class,
                              horizon_hours=options.horizon_hours, catalogue_end=end)
    meta = dataset.meta.copy()
    meta["goes_class"] = pd.Series(labels.goes_class, dtype="string")
    y = labels.y.copy()
    ends = dataset.meta["end"].to_numpy(dtype="datetime64[ns]")
    beyond = ends + np.timedelta64(horizon) > np.datetime64(pd.Timestamp(end), "ns") if end is not None else \
        np.zeros(len(y), bool)
    no_region = (y == UNLABELLED) & ~beyond
    if options.unnumbered == "negative":
        y[no_region] = 0
        meta.loc[no_region, "goes_class"] = "NF"
    keep = y != UNLABELLED
    report.excluded["beyond_flare_list"] = int(beyond.sum())
    report.excluded["no_noaa_region"] = int((no_region & ~keep).sum())
    if options.max_longitude is not None:
        lon = np.fmax(np.abs(dataset.aux["LON_MIN"][:, -1]), np.abs(dataset.aux["LON_MAX"][:, -1]))
        near_limb = keep & ~(lon <= options.max_longitude)  # an unknown position counts as near the limb
        report.excluded["near_limb"] = int(near_limb.sum())
        keep &= ~near_limb
    dataset = replace(dataset, y=y, meta=meta).subset(keep)
    dataset, folds = _partition(dataset, options, report)
    report.n_samples, report.n_positive = dataset.n_samples, dataset.n_positive
    report.folds = folds
    report.shared_regions, report.shared_days = _overlaps(dataset, horizon)
    meta = dataset.meta.drop(columns=[c for c in ("noaa", "n_interpolated") if c in dataset.meta.columns])
    dataset = replace(dataset, meta=meta)
    source = {"path": f"{table}, {catalogue}", "format": "sharp-table+flare-list", "n_records": windows.report.n_candidates,
              "n_read": dataset.n_samples, "n_skipped": windows.report.n_candidates - dataset.n_samples,
              "build_options": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(options).items()},
              "build_report": report.to_dict()}
    with StoreWriter(out, feature_names=dataset.feature_names, n_timesteps=dataset.n_timesteps, overwrite=overwrite,
                     aux_types={k: aux_kind(v) for k, v in dataset.aux.items()}, protect=[table, catalogue]) as writer:
        writer.write(dataset)
        writer.add_source(source)
    return report


def _with_aux(dataset: FlareDataset, rows: pd.DataFrame, minutes: int) -> FlareDataset:
    """The windows' side series, looked up per step by (HARP, time) in the table rows."""
    n, T = dataset.n_samples, dataset.n_timesteps
    step = np.timedelta64(minutes, "m")
    starts = dataset.meta["start"].to_numpy(dtype="datetime64[ns]")
    times = (starts[:, None] + np.arange(T) * step).ravel()
    harps = np.repeat(dataset.meta["region"].astype(int).to_numpy(), T)
    index = pd.MultiIndex.from_arrays([rows["HARPNUM"].to_numpy(np.int64), rows["T_REC"].to_numpy("datetime64[ns]")])
    position = index.get_indexer(pd.MultiIndex.from_arrays([harps, times]))
    aux = {}
    for name in AUX_KEYWORDS:
        if name not in rows.columns:
            continue
        values = pd.to_numeric(rows[name], errors="coerce").to_numpy(np.float64, na_value=np.nan)
        taken = np.where(position >= 0, values[np.maximum(position, 0)], np.nan)
        aux[name] = taken.reshape(n, T)
    return replace(dataset, aux=aux)


def _day(moment: np.datetime64) -> np.datetime64:
    return moment.astype("datetime64[D]").astype("datetime64[ns]")


def _partition(dataset: FlareDataset, options: DatasetOptions, report: DatasetReport):
    horizon = np.timedelta64(int(options.horizon_hours * 3600), "s").astype("timedelta64[ns]")
    if dataset.n_samples == 0:
        return dataset, []
    starts = dataset.meta["start"].to_numpy(dtype="datetime64[ns]")
    reach = dataset.meta["end"].to_numpy(dtype="datetime64[ns]") + horizon
    first, last = _day(starts.min()), _day(reach.max()) + np.timedelta64(1, "D")
    if options.partition_dates:
        cuts = sorted(np.datetime64(parse_time(d, "partition date"), "ns") for d in options.partition_dates)
        if any(c != _day(c) for c in cuts):
            raise ConfigError(f"partition dates must be whole days (midnight UTC), got {list(options.partition_dates)}.")
        bounds = [first, *[c for c in cuts if first < c < last], last]
    else:
        n_days = int((last - first) / np.timedelta64(1, "D"))
        k = min(options.partitions, n_days)
        bounds = [first + np.timedelta64(int(math.floor(i * n_days / k)), "D") for i in range(k)] + [last]
    bounds = np.array(bounds, dtype="datetime64[ns]")
    block = np.searchsorted(bounds, starts, side="right") - 1
    # strictly before: a horizon closing at midnight would reach into the next block's first day
    inside = reach < bounds[np.minimum(block + 1, len(bounds) - 1)]
    report.excluded["partition_boundary"] = int((~inside).sum())
    regions = dataset.meta["region"].astype(str).to_numpy()
    table = pd.DataFrame({"region": regions[inside], "block": block[inside]})
    counts = table.groupby(["region", "block"]).size().reset_index(name="n")
    # the block holding most of a region's windows (the earliest on a tie)
    home = counts.sort_values(["region", "n", "block"], ascending=[True, False, True]).drop_duplicates("region")
    home_of = dict(zip(home["region"], home["block"]))
    at_home = inside & np.array([home_of.get(r, -1) == b for r, b in zip(regions, block)])
    report.excluded["region_in_other_fold"] = int((inside & ~at_home).sum())
    dataset = dataset.subset(at_home)
    meta = dataset.meta.copy()
    meta["fold"] = pd.array(block[at_home] + 1, dtype="Int64")
    dataset = replace(dataset, meta=meta)
    folds = []
    for b in range(len(bounds) - 1):
        members = block[at_home] == b
        y = dataset.y[members]
        folds.append({"fold": b + 1, "start": str(bounds[b].astype("datetime64[D]")),
                      "end": str(bounds[b + 1].astype("datetime64[D]")), "n_samples": int(members.sum()),
                      "n_positive": int((y == 1).sum()), "n_regions": int(len(set(regions[at_home][members])))})
    return dataset, folds


def _overlaps(dataset: FlareDataset, horizon: timedelta) -> tuple[int, int]:
    """HARPs and UTC days (of windows and their horizons) that occur in more than one fold."""
    if dataset.n_samples == 0:
        return 0, 0
    meta = dataset.meta
    folds_of_region = meta.groupby("region")["fold"].nunique()
    days: dict[np.datetime64, set] = {}
    h = np.timedelta64(horizon)
    for start, end, fold in zip(meta["start"].to_numpy("datetime64[ns]"), meta["end"].to_numpy("datetime64[ns]"),
                                meta["fold"].to_numpy()):
        for day in np.arange(_day(start), _day(end + h) + np.timedelta64(1, "D"), np.timedelta64(1, "D")):
            days.setdefault(day, set()).add(int(fold))
    return int((folds_of_region > 1).sum()), sum(1 for v in days.values() if len(v) > 1)


def build_dataset(start: object, end: object, out: str | Path, *, work_dir: str | Path | None = None,
                  series: str = "hmi.sharp_cea_720s", harps: Sequence[int] = (),
                  options: DatasetOptions = DatasetOptions(), server_url: str | None = None,
                  hek_url: str | None = None, retries: int = 4, backoff_s: float = 2.0, overwrite: bool = False,
                  progress: bool | None = None, echo: Echo | None = _stderr) -> DatasetReport:
    """Fetch (resumably) the SHARP keywords of ``[start, end)`` and the flares of ``[start,
    end + horizon)`` into ``work_dir`` (default ``OUT.sources``), then
    :func:`build_dataset_from_files`. A table or flare list already in ``work_dir`` from the
    same request is reused; from another request it is an error (remove it, or use another
    ``work_dir``)."""
    start, end = parse_time(start, "start"), parse_time(end, "end")
    out = Path(out)
    work = Path(work_dir) if work_dir is not None else out.with_name(out.name + ".sources")
    work.mkdir(parents=True, exist_ok=True)
    query = SharpQuery(start=start, end=end, series=series, harps=tuple(harps),
                       cadence={12: "12m", 60: "1h", 96: "96m"}.get(options.cadence_minutes, "?"),
                       features=options.features)
    table, flares = work / "sharp.csv", work / "flares.csv"
    table_query = work / "sharp.csv.query.json"
    if table.is_file():
        if not table_query.is_file() or json.loads(table_query.read_text()) != query.to_dict():
            raise ConfigError(f"{table} was fetched for another request; remove it or give another --work folder.")
        if echo:
            echo(f"build-dataset: using the keywords already fetched in {table}")
    else:
        report = fetch_sharp(query, table, server_url=server_url, retries=retries, backoff_s=backoff_s,
                             progress=progress, echo=echo)
        table_query.write_text(json.dumps(query.to_dict(), indent=1))
        if echo:
            echo(report.summary())
    flare_end = end + timedelta(hours=options.horizon_hours)
    if flares.is_file():
        coverage = json.loads(Path(f"{flares}.json").read_text()) if Path(f"{flares}.json").is_file() else {}
        if (coverage.get("start"), coverage.get("end")) != (start.isoformat(), flare_end.isoformat()):
            raise ConfigError(f"{flares} covers another span; remove it or give another --work folder.")
        if echo:
            echo(f"build-dataset: using the flare list already fetched in {flares}")
    else:
        report = fetch_flares(start, flare_end, flares, hek_url=hek_url, retries=retries, backoff_s=backoff_s,
                              echo=echo)
        if echo:
            echo(report.summary())
    return build_dataset_from_files(table, flares, out, options=options, overwrite=overwrite, progress=progress)
