"""The tracking store options, the same on every command that touches the store.

``--output-dir DIR`` (the folder holding ``mlflow.db`` and the artifacts, default ``runs``)
and ``--tracking-uri URI`` (any MLflow URI; else ``$MLFLOW_TRACKING_URI``) are accepted by
``train`` and ``experiments`` (which write runs: there they set ``tracking.output_dir`` and
``tracking.uri``, and win over the configuration file) and by ``evaluate``, ``predict``,
``compare``, ``report`` and ``ui`` (which read them). A command that reads refuses a store
that does not exist instead of creating an empty one from a typo (``ui --create`` starts one
on purpose).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from flareseq.cli import did_you_mean
from flareseq.errors import FlareseqError

DEFAULT_OUTPUT_DIR = "runs"
STORE_FILE = "mlflow.db"


class StoreNotFoundError(FlareseqError):
    """The tracking store a command should read does not exist."""


def add_store_options(parser: argparse.ArgumentParser, *, writes: bool = False, experiment: bool = True) -> None:
    """``--output-dir``, ``--tracking-uri`` and (with ``experiment``) ``--experiment``.

    ``writes``: the command records runs (``train``, ``experiments``); the options default
    to None and, when given, override the configuration's ``tracking`` section.
    """
    group = parser.add_argument_group("tracking store")
    if experiment:
        group.add_argument("--experiment", default=None if writes else "flareseq",
                           help="MLflow experiment name (sets tracking.experiment)" if writes else
                           "MLflow experiment the runs are in (default: flareseq)")
    group.add_argument("--output-dir", default=None if writes else DEFAULT_OUTPUT_DIR, metavar="DIR",
                       help=("folder of the SQLite store (mlflow.db) and artifacts (sets tracking.output_dir; "
                             "default: the configuration's, runs)") if writes else
                       f"folder of the SQLite store (mlflow.db) and artifacts (default: {DEFAULT_OUTPUT_DIR})")
    group.add_argument("--tracking-uri", default=None if writes else "", metavar="URI",
                       help="any MLflow tracking URI, instead of --output-dir (sets tracking.uri; default: "
                       "$MLFLOW_TRACKING_URI, else DIR/mlflow.db)" if writes else
                       "any MLflow tracking URI, instead of --output-dir (default: $MLFLOW_TRACKING_URI, else "
                       "DIR/mlflow.db)")


def store_overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set`` overrides that the store options of a writing command stand for."""
    pairs = (("tracking.output_dir", getattr(args, "output_dir", None)), ("tracking.uri", getattr(args, "tracking_uri", None)),
             ("tracking.experiment", getattr(args, "experiment", None)))
    return [f"{key}={json.dumps(value)}" for key, value in pairs if value is not None]


def existing_store_uri(args: argparse.Namespace, *, create: bool = False) -> str:
    """The tracking URI the options name, after checking that the store exists (unless
    ``create``). Remote stores (``http://``, ``databricks`` ...) are not checked here."""
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri:
        local = _local_path(uri)
        if local is not None and not create and not local.exists():
            origin = "--tracking-uri" if args.tracking_uri else "$MLFLOW_TRACKING_URI"
            raise StoreNotFoundError(f"{origin} {uri}: no tracking store at {local} (nothing there).")
        return uri
    output_dir = Path(args.output_dir)
    database = output_dir / STORE_FILE
    if not create and not database.is_file():
        why = "the folder does not exist" if not output_dir.exists() else f"the folder holds no {STORE_FILE}"
        raise StoreNotFoundError(
            f"--output-dir {args.output_dir}: no MLflow tracking store there ({why}).{_nearby_stores(output_dir)} "
            f"Give the folder that `flareseq train` or `flareseq experiments` wrote to (their --output-dir, or "
            f"tracking.output_dir; default {DEFAULT_OUTPUT_DIR}), or --tracking-uri."
            + (" `flareseq ui --create` starts an empty store." if getattr(args, "command", "") == "ui" else ""))
    from flareseq.experiments.tracking import resolve_tracking_uri

    return resolve_tracking_uri("", output_dir)


def _local_path(uri: str) -> Path | None:
    """The file or folder a local URI points at (sqlite:///, file:, a plain path); None for
    a server."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):])
    if uri.startswith("file://"):
        return Path(uri[len("file://"):])
    if "://" not in uri and ":" not in uri.split("/")[0]:
        return Path(uri)
    return None


def _nearby_stores(output_dir: Path) -> str:
    """" Did you mean 'x'?" among the folders beside ``output_dir`` that hold a store (as the
    user would type them), else a list of those folders, else ""."""
    try:
        stores = sorted(p.name for p in output_dir.resolve().parent.iterdir() if (p / STORE_FILE).is_file())
    except OSError:
        return ""
    typed = {name: os.path.join(os.path.dirname(str(output_dir)), name) for name in stores}
    hint = did_you_mean(output_dir.name, stores, shown=typed)
    if hint or not stores:
        return hint
    return f" Stores beside it: {', '.join(typed[n] for n in stores[:5])}{' ...' if len(stores) > 5 else ''}."
