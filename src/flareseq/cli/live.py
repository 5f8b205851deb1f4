"""``flareseq fetch sharp|flares``, ``flareseq build-dataset``, ``flareseq forecast``: today's Sun."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime


def register(subparsers: argparse._SubParsersAction) -> None:
    from flareseq.cli import add_command
    from flareseq.data.live.series import CADENCES, DEFAULT_SERIES, SERIES

    fetch = add_command(
        subparsers, "fetch", help="fetch SHARP keywords from JSOC or a GOES flare list from the HEK",
        description="Fetch data of any period from the public services: SHARP keyword time series from JSOC "
                    "(through SunPy's drms client) or SWPC's GOES flare list from the HEK.",
        examples=["flareseq fetch sharp --start 2024-05-01 --end 2024-05-15 --out sharp.csv",
                  "flareseq fetch flares --start 2024-05-01 --end 2024-05-16 --out flares.csv"])
    sources = fetch.add_subparsers(dest="source", metavar="SOURCE", required=True)
    sharp = add_command(sources, "sharp", help="SHARP keyword time series from JSOC into a keyword table",
        description="Fetch SHARP keywords (the 24 of the Kaggle layout, NOAA numbers, QUALITY, location) page by "
                    "page (one query per day), with retries; an interrupted fetch resumes when the same command "
                    "runs again. Writes the table (CSV, or Parquet for .parquet) and TABLE.toml, the spec with "
                    "which `flareseq ingest TABLE --table-spec TABLE.toml` reads it. Missing records are kept as "
                    "empty rows (RECORD_MISSING=1), never interpolated.",
        examples=["flareseq fetch sharp --start 2024-05-01 --end 2024-05-15 --out sharp.csv"])
    _add_span(sharp)
    sharp.add_argument("--harp", type=int, nargs="+", default=[], metavar="N", help="only these HARPs (default: all)")
    sharp.add_argument("--series", choices=SERIES, default=DEFAULT_SERIES, help=f"default {DEFAULT_SERIES}")
    sharp.add_argument("--cadence", choices=tuple(CADENCES), default="12m", help="default 12m (the native cadence)")
    sharp.add_argument("--features", help="comma-separated SHARP keywords (default: the 24 of the Kaggle layout)")
    sharp.add_argument("--page-hours", type=float, default=24.0, help="hours per query (default 24)")
    sharp.add_argument("--out", required=True, metavar="TABLE", help="the table file (.csv or .parquet)")
    sharp.add_argument("--restart", action="store_true", help="discard an interrupted fetch of another query")
    sharp.add_argument("--overwrite", action="store_true", help="replace an existing table")
    _add_network(sharp)
    sharp.set_defaults(func=cmd_fetch_sharp)

    flares = add_command(sources, "flares", help="the GOES flare list (SWPC, via the HEK) as a --catalogue file",
        description="Fetch SWPC's GOES X-ray flares (class, start/peak/end, NOAA region) from the HEK into a CSV "
                    "that --catalogue reads, and CATALOGUE.json with the span it covers.",
        examples=["flareseq fetch flares --start 2024-05-01 --end 2024-05-16 --out flares.csv"])
    _add_span(flares)
    flares.add_argument("--out", required=True, metavar="CATALOGUE", help="the catalogue file (.csv)")
    flares.add_argument("--overwrite", action="store_true", help="replace an existing catalogue")
    _add_network(flares)
    flares.set_defaults(func=cmd_fetch_flares)

    build = add_command(subparsers, "build-dataset", help="fetch + label + window: a store in the Kaggle/SWAN-SF sample layout",
        description="Fetch SHARP keywords and the flare list of a period (or take --table and --catalogue), cut "
                    "12-hour windows of 60 x 12-minute steps every --stride-hours per HARP, label them (>= "
                    "--min-class within --horizon-hours), exclude what cannot be labelled (and near-limb windows "
                    "with --max-longitude), and partition them by time into folds 1..K that share no HARP and no "
                    "day. See docs/live.md for the conventions.",
        examples=["flareseq build-dataset --start 2024-01-01 --end 2024-07-01 --out data/cycle25"])
    build.add_argument("--start", help="first day (with --end: fetch)")
    build.add_argument("--end", help="end of the period (exclusive)")
    build.add_argument("--out", required=True, metavar="STORE", help="the store to write")
    build.add_argument("--work", metavar="DIR", help="where fetched files go (default STORE.sources)")
    build.add_argument("--table", help="a table from `flareseq fetch sharp` instead of fetching")
    build.add_argument("--catalogue", help="a flare list (with --table) instead of fetching")
    build.add_argument("--harp", type=int, nargs="+", default=[], metavar="N", help="only these HARPs")
    build.add_argument("--series", choices=SERIES, default=DEFAULT_SERIES)
    build.add_argument("--stride-hours", type=float, default=1.0, help="hours between windows of a HARP (default 1)")
    build.add_argument("--min-class", default="M", help="smallest positive GOES class (default M)")
    build.add_argument("--horizon-hours", type=float, default=24.0, help="label horizon (default 24)")
    build.add_argument("--missing", choices=("keep", "drop"), default="keep",
                       help="windows holding missing records: keep them (NaN, default) or drop them")
    build.add_argument("--unnumbered", choices=("exclude", "negative"), default="exclude",
                       help="HARPs without a NOAA number: exclude (default) or label negative")
    build.add_argument("--max-longitude", type=float, metavar="DEG",
                       help="exclude windows whose last record is more than DEG from the central meridian")
    build.add_argument("--partitions", type=int, default=3, help="consecutive time blocks = folds (default 3)")
    build.add_argument("--partition-dates", help="comma-separated dates cutting the blocks instead")
    build.add_argument("--overwrite", action="store_true", help="replace an existing store")
    _add_network(build)
    build.set_defaults(func=cmd_build_dataset)

    forecast = add_command(subparsers, "forecast", help="forecast every HARP on the disk now (or at a time) and the full disk",
        description="Fetch the newest SHARP records of every HARP, forecast each region's probability of a flare "
                    "(the model's label: by default >= M within 24 h) with a trained run's model, and the full-disk "
                    "probability 1 - prod(1 - p_i). Regions with too little recent data are listed as such.",
        examples=["flareseq forecast --model lstm --experiment cycle25 --now --out forecast.csv"])
    forecast.add_argument("--model", required=True, metavar="RUN", help="a run id or name, or a saved model folder")
    when = forecast.add_mutually_exclusive_group(required=True)
    when.add_argument("--now", action="store_true", help="the current time (near-real-time series by default)")
    when.add_argument("--at", metavar="TIME", help="a past time, e.g. 2024-05-10T12:00 (UTC)")
    forecast.add_argument("--series", choices=SERIES, help="default: the _nrt series with --now, else the definitive")
    forecast.add_argument("--out", metavar="FILE", help="write the forecasts (.json, else CSV)")
    forecast.add_argument("--scoreboard", metavar="PATH",
                          help="also write the CCMC Flare Scoreboard text format (a folder: its file name)")
    forecast.add_argument("--method", default="", help="method name in the scoreboard file (default flareseq_MODEL)")
    forecast.add_argument("--max-age-hours", type=float, default=1.0,
                          help="a HARP whose newest record is older than this (before the data time) is not forecast")
    forecast.add_argument("--min-observed", type=float, default=0.75,
                          help="share of the window's steps that need a record (default 0.75)")
    forecast.add_argument("--lookback-hours", type=float, default=6.0,
                          help="how far before the time to look for the newest data (default 6)")
    forecast.add_argument("--min-class", default="M", help="the class the model forecasts (label text; default M)")
    forecast.add_argument("--horizon-hours", type=float, default=24.0, help="the model's horizon (default 24)")
    from flareseq.cli.store import add_store_options

    add_store_options(forecast)
    _add_network(forecast, hek=False)
    forecast.set_defaults(func=cmd_forecast)


def _add_span(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", required=True, help="first time (UTC), e.g. 2024-05-01")
    p.add_argument("--end", required=True, help="end time (exclusive), e.g. 2024-05-15")


def _add_network(p: argparse.ArgumentParser, *, hek: bool = True) -> None:
    p.add_argument("--jsoc-url", help="a JSOC-compatible server's CGI base URL (default JSOC; also $FLARESEQ_JSOC_URL)")
    if hek:
        p.add_argument("--hek-url", help="the HEK search endpoint (default the LMSAL HEK; also $FLARESEQ_HEK_URL)")
    p.add_argument("--retries", type=int, default=4, help="retries of a failed request (default 4)")
    p.add_argument("--backoff", type=float, default=2.0, help="first wait in seconds before a retry (default 2)")
    p.add_argument("--no-progress", action="store_true", help="one line per page instead of a progress bar")


def _echo(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cmd_fetch_sharp(args) -> int:
    from flareseq.data.live.jsoc import SharpQuery, fetch_sharp
    from flareseq.data.live.sharp import SHARP_PARAMETERS

    features = tuple(f.strip() for f in args.features.split(",") if f.strip()) if args.features else SHARP_PARAMETERS
    query = SharpQuery(start=args.start, end=args.end, series=args.series, harps=tuple(args.harp),
                       cadence=args.cadence, features=features, page_hours=args.page_hours)
    report = fetch_sharp(query, args.out, server_url=args.jsoc_url, retries=args.retries, backoff_s=args.backoff,
                         progress=False if args.no_progress else None, restart=args.restart,
                         overwrite=args.overwrite, echo=_echo)
    print(report.summary())
    return 0


def cmd_fetch_flares(args) -> int:
    from flareseq.data.live.flares import fetch_flares

    report = fetch_flares(args.start, args.end, args.out, hek_url=args.hek_url, retries=args.retries,
                          backoff_s=args.backoff, overwrite=args.overwrite, echo=_echo)
    print(report.summary())
    return 0


def cmd_build_dataset(args) -> int:
    from flareseq.data.live.dataset import (
        DatasetOptions,
        build_dataset,
        build_dataset_from_files,
    )
    from flareseq.errors import ConfigError

    dates = tuple(d.strip() for d in args.partition_dates.split(",") if d.strip()) if args.partition_dates else ()
    options = DatasetOptions(stride_hours=args.stride_hours, min_class=args.min_class,
                             horizon_hours=args.horizon_hours, missing=args.missing, unnumbered=args.unnumbered,
                             max_longitude=args.max_longitude, partitions=args.partitions, partition_dates=dates)
    progress = False if args.no_progress else None
    if args.table or args.catalogue:
        if not (args.table and args.catalogue):
            raise ConfigError("--table and --catalogue go together (or give --start and --end to fetch both).")
        report = build_dataset_from_files(args.table, args.catalogue, args.out, options=options,
                                          overwrite=args.overwrite, progress=progress)
    else:
        if not (args.start and args.end):
            raise ConfigError("give --start and --end (to fetch), or --table and --catalogue.")
        report = build_dataset(args.start, args.end, args.out, work_dir=args.work, series=args.series,
                               harps=args.harp, options=options, server_url=args.jsoc_url, hek_url=args.hek_url,
                               retries=args.retries, backoff_s=args.backoff, overwrite=args.overwrite,
                               progress=progress, echo=_echo)
    print(report.summary())
    return 0


def cmd_forecast(args) -> int:
    from flareseq.data.live.jsoc import parse_time
    from flareseq.data.live.series import DEFAULT_NRT_SERIES, DEFAULT_SERIES
    from flareseq.experiments.run_models import load_forecaster
    from flareseq.forecasting.disk import forecast_at

    at = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0) if args.now else parse_time(args.at, "at")
    series = args.series or (DEFAULT_NRT_SERIES if args.now else DEFAULT_SERIES)
    forecaster = load_forecaster(args.model, experiment=args.experiment, tracking_uri=args.tracking_uri,
                                 output_dir=args.output_dir)
    name = forecaster.name or str(args.model)
    result = forecast_at(forecaster, at, series=series, server_url=args.jsoc_url, lookback_hours=args.lookback_hours,
                         max_age_hours=args.max_age_hours, min_observed=args.min_observed,
                         horizon_hours=args.horizon_hours, min_class=args.min_class, model_name=name,
                         retries=args.retries, backoff_s=args.backoff, echo=_echo)
    print(result.table())
    if args.out:
        print(f"forecasts written to {result.write(args.out)}")
    if args.scoreboard:
        from flareseq.forecasting.scoreboard import write_scoreboard

        path = write_scoreboard(result, args.scoreboard, args.method or f"flareseq_{name}")
        print(f"scoreboard submission written to {path}")
    return 0
