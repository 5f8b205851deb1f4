"""`make demo`: the main job on the embedded synthetic data (grows with the experiments issue)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flareseq.demo")
    parser.add_argument("--out", default="demo-output", help="folder for the demo's outputs")
    parser.parse_args(argv)
    print("flareseq demo: not built yet", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
