"""How long each command of the README's tour takes, run exactly as written.

The README test (tests/test_readme.py) runs every block on tiny data so that no example can
break; this script runs the same blocks at the README's own sizes, in order, in a scratch
checkout laid out the same way (``experiments/`` and ``benchmarks/`` beside it, the real
data as ``../shared/data`` when it is there), and prints one row per command: its README line,
the wall time and the exit code. The figures are the ones the README quotes beside its tour.

    python benchmarks/readme_tour.py                    # the whole tour, ~30 min on 2 cores
    python benchmarks/readme_tour.py --until-line 300   # the first part only
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import cpu_info, cpu_line  # noqa: E402
from test_readme import readme_blocks, scratch_checkout  # noqa: E402 - the test's extractor and layout


def run(command: str, cwd: Path, timeout: float) -> tuple[int, float]:
    argv = shlex.split(command)
    if argv[0] == "flareseq":
        argv = [sys.executable, "-m", "flareseq", *argv[1:]]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONWARNINGS": "ignore"}
    started = time.perf_counter()
    try:
        code = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              timeout=timeout, env=env).returncode
    except subprocess.TimeoutExpired:
        code = 124
    return code, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--until-line", type=int, default=0, help="stop after the block at this README line")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per command")
    args = parser.parse_args(argv)
    print(cpu_line(cpu_info()), flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="flareseq-tour-") as tmp:
        work = scratch_checkout(Path(tmp))
        for block in readme_blocks():
            if not block.run or (args.until_line and block.line > args.until_line):
                continue
            if block.language == "python":
                commands = [("python block", [sys.executable, "-c", block.text])]
            else:
                commands = [(c, None) for c in block.commands()]
            for command, python in commands:
                if python is not None:
                    started = time.perf_counter()
                    code = subprocess.run(python, cwd=work, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL).returncode
                    seconds = time.perf_counter() - started
                else:
                    code, seconds = run(command, work, args.timeout)
                rows.append({"line": block.line, "command": command, "seconds": round(seconds, 1), "exit": code})
                print(f"{block.line:5d}  {seconds:7.1f} s  exit {code}  {command[:110]}", flush=True)
    total = sum(r["seconds"] for r in rows)
    print(f"{len(rows)} commands, {total / 60:.1f} min; load average {os.getloadavg()[0]:.1f}")
    print("RESULT " + json.dumps({"n_commands": len(rows), "total_s": round(total, 1),
                                  "failed": [r for r in rows if r["exit"]], "rows": rows}))
    return 1 if any(r["exit"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
