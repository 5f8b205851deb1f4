"""``flareseq download kaggle|swan-sf``: fetch the real data sets."""

from __future__ import annotations

import argparse

from flareseq.cli import add_command
from flareseq.cli.data import add_limit_argument, limits_from_args, reports_os_errors

# The defaults of the download modules, written here so that parsing does not import them
# (they load urllib and ssl); tests/test_cli.py checks that they agree.
SWAN_SF_DOI = "doi:10.7910/DVN/EBCFKM"
SWAN_SF_PARTITIONS = (1, 2, 3, 4, 5)
KAGGLE_COMPETITION = "bigdata2019-flare-prediction"


def register(subparsers: argparse._SubParsersAction) -> None:
    download = add_command(
        subparsers, "download",
        help="download the Kaggle BigData Cup 2019 files or the SWAN-SF partitions",
        description="Download the real data: the Kaggle BigData Cup 2019 files (the study's data; "
        "needs your Kaggle API credentials) or the SWAN-SF partitions from Harvard Dataverse.",
        examples=["flareseq download swan-sf --partitions 1 2 --dest data/swan-sf",
                  "flareseq download kaggle --dest data/kaggle"],
    )
    sources = download.add_subparsers(dest="source", metavar="SOURCE", required=True)

    kaggle = add_command(
        sources, "kaggle",
        help="the BigData Cup 2019 files via the official Kaggle client",
        description="Download fold1Training.json, fold2Training.json, fold3Training.json and "
        "testSet.json (about 13 GB unzipped) with the official Kaggle client "
        "(pip install 'flareseq[kaggle]'). Credentials are read only from KAGGLE_USERNAME/KAGGLE_KEY "
        "or ~/.kaggle/kaggle.json (or $KAGGLE_CONFIG_DIR); flareseq never stores or logs them. "
        "Accept the competition's rules on Kaggle once before the first download.",
        examples=["flareseq download kaggle --dest data/kaggle",
                  "flareseq ingest data/kaggle/fold*Training.json --out data/kaggle-store"],
    )
    kaggle.add_argument("--dest", required=True, help="folder that receives the four JSON files")
    kaggle.add_argument("--competition", default=KAGGLE_COMPETITION,
                        help=f"the competition's Kaggle slug (default {KAGGLE_COMPETITION})")
    kaggle.add_argument("--force", action="store_true", help="download again even if the files are there")
    kaggle.add_argument("--keep-archives", action="store_true", help="keep the zips after extracting them")
    kaggle.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_limit_argument(kaggle)
    kaggle.set_defaults(func=_run_kaggle)

    swan = add_command(
        sources, "swan-sf",
        help="SWAN-SF partitions from Harvard Dataverse",
        description="Download SWAN-SF partitions (doi:10.7910/DVN/EBCFKM) from Harvard Dataverse: "
        "resumable (rerun the same command after an interruption), MD5-verified, then extracted to "
        "DEST/partitionN/{FL,NF}/*.csv. The archive is deleted after extraction unless "
        "--keep-archives.",
        examples=["flareseq download swan-sf --partitions 1 2 3 --dest data/swan-sf",
                  "flareseq ingest data/swan-sf/partition1 data/swan-sf/partition2 --out data/swan-sf-store"],
    )
    swan.add_argument("--partitions", type=int, nargs="+", default=list(SWAN_SF_PARTITIONS), metavar="N",
                      help="partitions to fetch, among 1-5 (default: all five)")
    swan.add_argument("--dest", required=True, help="folder that receives the extracted partitions")
    swan.add_argument("--base-url", default=None,
                      help="Dataverse installation (default $FLARESEQ_DATAVERSE_URL, else "
                      "https://dataverse.harvard.edu)")
    swan.add_argument("--doi", default=SWAN_SF_DOI, help=f"dataset identifier (default {SWAN_SF_DOI})")
    swan.add_argument("--retries", type=int, default=5, help="failed attempts in a row before giving up")
    swan.add_argument("--keep-archives", action="store_true", help="keep the .tar.gz after extraction")
    swan.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_limit_argument(swan)
    swan.set_defaults(func=_run_swan_sf)


def _progress(args: argparse.Namespace) -> bool | None:
    return False if args.no_progress else None


@reports_os_errors
def _run_kaggle(args: argparse.Namespace) -> int:
    from flareseq.data.download.kaggle import download_kaggle

    files = download_kaggle(args.dest, competition=args.competition, force=args.force,
                            keep_archives=args.keep_archives, progress=_progress(args), limits=limits_from_args(args))
    for name, path in files.items():
        print(f"{name}: {path} ({path.stat().st_size:,} bytes)")
    return 0


@reports_os_errors
def _run_swan_sf(args: argparse.Namespace) -> int:
    from flareseq.data.download.dataverse import download_swan_sf

    results = download_swan_sf(args.dest, args.partitions, base_url=args.base_url, doi=args.doi,
                               keep_archives=args.keep_archives, retries=args.retries,
                               progress=_progress(args), limits=limits_from_args(args))
    for partition, extracted in results.items():
        where = ", ".join(str(p) for p in extracted.paths)
        print(f"partition {partition}: {extracted.n_files:,} files in {where} (from {extracted.archive})")
    return 0
