"""The ``flareseq`` command line: thin commands that call the library.

Each module in this package adds its subcommands with ``register(subparsers)``; a
:class:`~flareseq.errors.FlareseqError` is printed as one paragraph without a traceback
and the process exits non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from flareseq.errors import FlareseqError

# Modules that contribute subcommands, in the order `flareseq --help` lists them.
COMMAND_MODULES = ("data", "models", "runs", "download", "serve")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flareseq",
        description="Forecast solar flares from time series of active-region magnetic parameters.",
    )
    from flareseq import __version__

    parser.add_argument("--version", action="version", version=f"flareseq {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FlareseqError as exc:
        print(f"flareseq {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"flareseq {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
