"""The ``flareseq`` command line: thin commands that call the library.

Each module in this package adds its subcommands with ``register(subparsers)``, preferably
through :func:`add_command` (a description and examples for every command); a
:class:`~flareseq.errors.FlareseqError` is printed as one paragraph without a traceback
and the process exits non-zero.

Parsing must stay fast: ``--help``, ``--version`` and usage errors answer before anything
heavy is imported. Command modules therefore import only the standard library (and cheap
parts of flareseq) at module level; each command imports what it needs (torch, MLflow,
pandas, matplotlib, Spark) inside its function. ``tests/test_cli.py`` checks this.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
import textwrap
from collections.abc import Iterable, Mapping, Sequence

from flareseq.errors import FlareseqError

# Modules that contribute subcommands, in the order `flareseq --help` lists them.
COMMAND_MODULES = ("data", "models", "runs", "ui", "download", "live", "serve")
# The exit status of a command whose output pipe was closed (`flareseq models | head`), as
# for a process killed by SIGPIPE in a shell (128 + 13).
BROKEN_PIPE_EXIT = 141


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs: paragraphs (separated by a blank line) are wrapped to the
    terminal, while a paragraph with indented lines (examples) is kept exactly as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.strip("\n").split("\n\n"):
            lines = paragraph.splitlines()
            if any(line.startswith(" ") for line in lines):
                paragraphs.append("\n".join(indent + line for line in lines))
            else:
                paragraphs.append(textwrap.fill(" ".join(paragraph.split()), width, initial_indent=indent,
                                                subsequent_indent=indent))
        return "\n\n".join(paragraphs)


def add_command(subparsers: argparse._SubParsersAction, name: str, *, help: str, description: str,
                examples: Sequence[str], **kwargs) -> argparse.ArgumentParser:
    """A subcommand's parser with a one-line ``help`` (listed by ``flareseq --help``), a
    ``description`` and runnable ``examples`` (shown under its own ``--help``)."""
    heading = "example:" if len(examples) == 1 else "examples:"
    epilog = heading + "\n" + "\n".join(f"  {example}" for example in examples)
    return subparsers.add_parser(name, help=help, description=description, epilog=epilog,
                                 formatter_class=HelpFormatter, **kwargs)


def did_you_mean(word: str, choices: Iterable[str], *, n: int = 3, cutoff: float = 0.6,
                 shown: Mapping[str, str] | None = None) -> str:
    """" Did you mean 'x'?" (or "'x' or 'y'") for the choices close to ``word``, each written
    as ``shown`` maps it (default: itself); "" when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=n, cutoff=cutoff)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr((shown or {}).get(c, c)) for c in close) + "?"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flareseq",
        description="Forecast solar flares from time series of active-region magnetic parameters.",
        epilog="Run `flareseq COMMAND --help` for a command's options and an example.",
    )
    from flareseq import __version__

    parser.add_argument("--version", action="version", version=f"flareseq {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from flareseq.errors import show_warnings_plainly

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    show_warnings_plainly()
    try:
        try:
            return _dispatch(argv)
        finally:
            # Inside the try: a pipe closed by the reader (`| head`) shows up here, not as a
            # traceback at interpreter exit. SystemExit (--help, usage errors) passes through.
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader has gone: point stdout at /dev/null so the final flush at exit is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE_EXIT


def _dispatch(argv: Sequence[str] | None) -> int:
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
