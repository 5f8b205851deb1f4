"""Command-line options for keyword tables, shared by the commands that read them.

``flareseq ingest TABLE... --table-spec smarp.toml --out STORE`` or the same options as
flags (``--region-columns prefix,arpnum --time-column t_end --features AREA,USFLUX ...``);
flags override the file. Not a command group itself: :func:`add_table_arguments` adds the
options to a command's parser and :func:`ingest_tables` does the work.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

# TableSpec field -> (flag, type, help); lists are comma-separated on the command line.
_OPTIONS = {
    "region_columns": ("--region-columns", "list", "column(s) identifying a region, e.g. prefix,arpnum"),
    "time_column": ("--time-column", str, "the time of each row, e.g. t_end"),
    "features": ("--features", "list", "feature columns, e.g. AREA,USFLUX,MEANGBZ,R_VALUE"),
    "label_column": ("--label-column", str, "label column (True/False or 1/0) at each row"),
    "window": ("--window", int, "time steps per window (default 16)"),
    "cadence_minutes": ("--cadence-minutes", float, "expected minutes between rows, e.g. 96"),
    "cadence_tolerance_minutes": ("--cadence-tolerance-minutes", float, "allowed deviation per step (default cadence/10)"),
    "max_missing_steps": ("--max-missing-steps", int, "missing steps filled by interpolation (default 0: drop)"),
    "stride": ("--stride", int, "keep every k-th window of a region (default 1)"),
    "nan_policy": ("--nan-policy", str, "drop (default) or keep windows holding NaN"),
    "fold_column": ("--fold-column", str, "column holding each row's fold"),
    "noaa_column": ("--noaa-column", str, "column of NOAA region numbers (for --catalogue)"),
    "catalogue": ("--catalogue", str, "GOES flare list (CSV/Parquet) to label windows from"),
    "min_class": ("--min-class", str, "catalogue labels: smallest positive class (default M)"),
    "horizon_hours": ("--horizon-hours", float, "catalogue labels: hours after the window (default 24)"),
    "catalogue_match": ("--catalogue-match", str, "region (default) or noaa"),
    "time_format": ("--time-format", str, "strptime format of the time column when not ISO 8601"),
}


def add_table_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the keyword-table options (``--table-spec`` and one flag per TableSpec field)."""
    group = parser.add_argument_group("keyword tables (rows of region x time; see flareseq.data.tables.windows)")
    group.add_argument("--table-spec", metavar="FILE.toml",
                       help="TOML file with the table options ([data] section or top level)")
    for field, (flag, kind, text) in _OPTIONS.items():
        group.add_argument(flag, dest=f"table_{field}", type=str if kind == "list" else kind, default=None,
                           metavar="A,B" if kind == "list" else flag.split("-")[-1].upper(), help=text)
    group.add_argument("--allow-leaky-features", dest="table_allow_leaky_features", action="store_true",
                       default=None, help="accept label-source columns as features (warns; leakage studies only)")


def table_options_given(args: argparse.Namespace) -> bool:
    """True when the command line asks for table reading."""
    return bool(getattr(args, "table_spec", None)) or any(
        getattr(args, f"table_{field}", None) is not None for field in _OPTIONS)


def table_spec_from_args(args: argparse.Namespace):
    """The input paths named in ``--table-spec`` (may be empty) and the TableSpec of the
    file and flags together; flags win."""
    from flareseq.data.tables.spec import TableSpec, load_table_spec

    paths: list[str] = []
    options: dict = {}
    if getattr(args, "table_spec", None):
        paths, spec = load_table_spec(args.table_spec)
        options = {k: v for k, v in spec.__dict__.items()}
    for field, (_, kind, _) in {**_OPTIONS, "allow_leaky_features": (None, bool, None)}.items():
        value = getattr(args, f"table_{field}", None)
        if value is not None:
            options[field] = [v.strip() for v in value.split(",") if v.strip()] if kind == "list" else value
    return paths, TableSpec.from_dict(options)


def ingest_tables(inputs: Sequence[str], args: argparse.Namespace, out: str | Path, *, overwrite: bool = False,
                  progress: bool | None = None) -> str:
    """Read tables into windows, write them as a store at ``out``; returns the summary text."""
    from flareseq.data.store import StoreWriter, write_store
    from flareseq.data.tables.windows import build_table_windows

    paths, spec = table_spec_from_args(args)
    inputs = list(inputs) or paths
    if not inputs:
        from flareseq.errors import ConfigError

        raise ConfigError("no table files: give them as inputs or as paths = [...] in the --table-spec file.")
    # refuse a bad --out before the tables are read (the same checks run again at the write)
    StoreWriter(out, feature_names=(), n_timesteps=1, overwrite=overwrite, protect=inputs)
    result = build_table_windows(inputs, spec, progress=progress is not False)
    report = result.report
    write_store(result.dataset, out, overwrite=overwrite, protect=inputs, source={
        "path": ", ".join(str(p) for p in inputs), "format": "table", "n_records": report.n_candidates,
        "n_read": report.n_windows, "n_skipped": report.n_candidates - report.n_windows,
        "table_spec": spec.to_dict(), "window_report": report.to_dict(),
    })
    return f"store {out}: {report.summary()}"
