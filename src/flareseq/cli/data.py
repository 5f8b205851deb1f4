"""``flareseq ingest``, ``flareseq summary``, ``flareseq verify`` and ``flareseq synth``: data
in, figures out, stores checked."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

from flareseq.cli import add_command

LIMIT_HELP = ("change a read limit, e.g. --limit max_ratio=500 (repeatable; names: max_member_bytes 64G, "
              "max_total_bytes 1T, max_ratio 100, ratio_after_bytes 16M, max_sample_bytes 16M, max_line_bytes 16M; "
              "defaults also from $FLARESEQ_LIMITS)")


def add_limit_argument(parser: argparse.ArgumentParser) -> None:
    """``--limit NAME=VALUE`` (see :mod:`flareseq.data.limits`)."""
    parser.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE", help=LIMIT_HELP)


def limits_from_args(args: argparse.Namespace):
    from flareseq.data.limits import current_limits

    return current_limits().with_settings(",".join(args.limit)) if args.limit else current_limits()


def reports_os_errors(run):
    """An operating-system error that no reader turned into a clearer one (an input that
    cannot be opened, a folder that vanished) is still one paragraph, not a traceback."""
    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        from flareseq.errors import FlareseqError

        try:
            return run(args)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise FlareseqError(f"{where}{exc.strerror or exc}. Check that the path exists and can be read "
                                "(and written, for --out).") from None
    return wrapper


def register(subparsers: argparse._SubParsersAction) -> None:
    ingest = add_command(
        subparsers, "ingest",
        help="read data files into a columnar store",
        description="Read Kaggle BigData Cup JSON-lines files (.json/.jsonl/.gz/.zip), SWAN-SF folders or "
        "archives, or stores into one new store (Parquet + manifest.json) at --out. Kaggle files are "
        "parsed by worker processes in parallel, in constant memory. The store is written atomically: "
        "an interrupted ingest leaves no store.",
        examples=["flareseq ingest fold1Training.json fold2Training.json fold3Training.json --out store/",
                  "flareseq ingest synthetic.jsonl --out store/ --on-error skip --overwrite",
                  "flareseq ingest ../shared/data/smarp/smarp_*.csv --table-spec experiments/smarp-table.toml --out smarp-store/"],
    )
    ingest.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or archives to read, in order")
    ingest.add_argument("--out", required=True, help="the new store's folder")
    ingest.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                        help="stop at the first bad record (default), or skip bad records and list them in "
                        "OUT/skipped.tsv")
    ingest.add_argument("--workers", type=int, default=None,
                        help="worker processes for Kaggle files (default: the usable cores, at most 8)")
    ingest.add_argument("--overwrite", action="store_true", help="replace an existing store at --out")
    ingest.add_argument("--no-progress", action="store_true", help="no progress bars")
    ingest.add_argument("--engine", choices=("local", "spark"), default="local",
                        help="local: worker processes on this machine (default); spark: Apache Spark, the same "
                        "store (needs pip install 'flareseq[spark]' and Java 17)")
    ingest.add_argument("--master", default="local[*]", metavar="URL",
                        help="--engine spark: the Spark master (default local[*]; spark://HOST:7077, yarn, ...)")
    ingest.add_argument("--fraction", type=float, default=None, metavar="F",
                        help="--engine spark: keep a seeded random fraction F of the samples (the draw of "
                        "flareseq.data.sampling.sample_fraction)")
    ingest.add_argument("--stratify", action="store_true", help="with --fraction: keep each label's share")
    ingest.add_argument("--seed", type=int, default=0, help="with --fraction: the draw's seed (default 0)")
    add_limit_argument(ingest)
    from flareseq.cli.table_options import add_table_arguments

    add_table_arguments(ingest)  # keyword tables: --table-spec FILE.toml or the flags
    ingest.set_defaults(func=_run_ingest)

    summary = add_command(
        subparsers, "summary",
        help="count samples, positives, missing values; PCC baseline",
        description="Print the samples, positives, unlabelled samples, time steps, features, missing values, "
        "the proportion chance criterion (PCC) and 1.25 x PCC of the data in PATH (several paths are "
        "added up). A store is summarised from its manifest without reading its arrays.",
        examples=["flareseq summary store/", "flareseq summary store/ --json --plot classes.png"],
    )
    summary.add_argument("paths", nargs="+", metavar="PATH", help="stores, data files, folders or archives")
    summary.add_argument("--json", action="store_true",
                         help="print exactly one JSON object (n_samples, n_positive, n_unlabelled, n_timesteps, "
                         "n_features, n_missing_values, pcc, pcc_125) and nothing else on stdout")
    summary.add_argument("--plot", metavar="FILE", help="write the class-count bar chart (PNG) to FILE")
    summary.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                         help="for data files: stop at (default) or skip bad records")
    summary.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_limit_argument(summary)
    summary.set_defaults(func=_run_summary)

    verify = add_command(
        subparsers, "verify",
        help="check a store against its manifest (checksums, footers, counts; --full: every row)",
        description="Check that a store is what its manifest says: every part's SHA-256 and size, its footer "
        "(row count) and schema, no part missing or added, and the manifest's counts consistent. With --full, "
        "also decode every row, recompute the content hash and recount samples, labels, folds and missing "
        "values. Prints each check; exits 2 on any mismatch.",
        examples=["flareseq verify store/", "flareseq verify store/ --full"],
    )
    verify.add_argument("store", metavar="STORE", help="the store's folder")
    verify.add_argument("--full", action="store_true", help="read every row: recompute the content hash and counts")
    verify.set_defaults(func=_run_verify)

    synth = add_command(
        subparsers, "synth",
        help="write synthetic flare data (Kaggle layout or SWAN-SF files)",
        description="Write seeded synthetic samples: SHARP-like heavy-tailed magnitudes, smooth dynamics, a few "
        "missing values, ~16 % positives whose label depends on how flux and current helicity evolve, "
        "folds 1-3 in the study's proportions.",
        examples=["flareseq synth --n-samples 5000 --out synthetic.jsonl --seed 7",
                  "flareseq synth --n-samples 200 --format swan-sf --out swan-sf-synthetic/"],
    )
    synth.add_argument("--n-samples", type=int, required=True, help="number of samples")
    synth.add_argument("--out", required=True, help="the JSON-lines file (kaggle) or folder (swan-sf) to write")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--format", choices=("kaggle", "swan-sf"), default="kaggle",
                       help="Kaggle JSON lines (default) or one SWAN-SF file per sample under OUT/partition<fold>/")
    synth.add_argument("--unlabelled", action="store_true", help="kaggle format: no classNum, like the test set")
    synth.add_argument("--no-progress", action="store_true", help="no progress bars")
    synth.set_defaults(func=_run_synth)


def _progress(args: argparse.Namespace) -> bool | None:
    return False if args.no_progress else None


@reports_os_errors
def _run_ingest(args: argparse.Namespace) -> int:
    from flareseq.cli.table_options import ingest_tables, table_options_given
    from flareseq.data.ingest import ingest

    if table_options_given(args):
        print(ingest_tables(args.inputs, args, args.out, overwrite=args.overwrite, progress=_progress(args)))
        return 0

    if args.engine == "spark":
        report = ingest(args.inputs, args.out, engine="spark", master=args.master, fraction=args.fraction,
                        stratify=args.stratify, seed=args.seed, on_error=args.on_error,
                        overwrite=args.overwrite, progress=_progress(args))
    elif args.fraction is not None or args.stratify:
        from flareseq.errors import ConfigError

        raise ConfigError("--fraction and --stratify sample at ingest with --engine spark; with the local engine, "
                          "ingest everything and sample with flareseq.data.sampling.sample_fraction (the same draw).")
    else:
        report = ingest(args.inputs, args.out, on_error=args.on_error, workers=args.workers,
                        overwrite=args.overwrite, progress=_progress(args), limits=limits_from_args(args))
    print(report.summary())
    if len(report.skips):
        print(f"flareseq ingest: {len(report.skips)} bad record(s) skipped; see {Path(args.out) / 'skipped.tsv'}",
              file=sys.stderr)
    return 0


@reports_os_errors
def _run_summary(args: argparse.Namespace) -> int:
    from flareseq.data import summarize_paths

    total, per_path = summarize_paths(args.paths, on_error=args.on_error, progress=_progress(args),
                                      limits=limits_from_args(args))
    if args.plot:
        from flareseq.reporting.plots import plot_class_counts, save_figure

        counts = {Path(p).name or p: (s["n_negative"], s["n_positive"]) for p, s in per_path.items()}
        save_figure(plot_class_counts(counts), args.plot)
    public = {k: total[k] for k in _summary_keys()}
    if args.json:
        print(json.dumps(public))
        return 0
    for path, s in per_path.items():
        print(f"{path}: {s['n_samples']} samples ({s['n_positive']} positive, {s['n_negative']} negative, "
              f"{s['n_unlabelled']} unlabelled)")
    width = max(len(k) for k in public)
    for key, value in public.items():
        shown = "n/a (no labels)" if value is None else (f"{value:.4f}" if isinstance(value, float) else value)
        print(f"{key:<{width}}  {shown}")
    for path, s in per_path.items():
        if s.get("checked"):
            print(f"{path}: {s['checked']}")
        if isinstance(s.get("windows_by_class"), dict):
            from flareseq.data.tables.by_class import describe_by_class

            print(f"{path}: windows by class (the table's row ends before the window filter):")
            print("  " + describe_by_class(s["windows_by_class"]).replace("\n", "\n  "))
    if args.plot:
        print(f"class counts plotted to {args.plot}")
    return 0


@reports_os_errors
def _run_verify(args: argparse.Namespace) -> int:
    from flareseq.data.store_verify import StoreVerificationError, verify_store

    try:
        report = verify_store(args.store, full=args.full)
    except StoreVerificationError as exc:
        print(exc.report.summary())
        raise
    print(report.summary())
    return 0


def _summary_keys():
    from flareseq.data.summary import SUMMARY_KEYS

    return SUMMARY_KEYS


def _run_synth(args: argparse.Namespace) -> int:
    from flareseq.data import synthetic
    from flareseq.errors import ConfigError

    if args.n_samples < 1:
        raise ConfigError(f"--n-samples must be at least 1, got {args.n_samples}.")
    if args.format == "kaggle":
        path = synthetic.write_synthetic_kaggle(args.out, args.n_samples, seed=args.seed,
                                                labelled=not args.unlabelled, progress=_progress(args))
        size = path.stat().st_size
        print(f"wrote {args.n_samples} synthetic samples to {path} ({size / 1e6:.1f} MB, Kaggle layout, seed {args.seed})")
    else:
        files = synthetic.write_synthetic_swansf(args.out, args.n_samples, seed=args.seed)
        print(f"wrote {len(files)} synthetic SWAN-SF files under {args.out} (seed {args.seed})")
    return 0
