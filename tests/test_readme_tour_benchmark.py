"""benchmarks/readme_tour.py on the README's first block: every command timed, exit codes kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "readme_tour.py"
README = Path(__file__).resolve().parents[1] / "README.md"


def first_run_block_line() -> int:
    lines = README.read_text().splitlines()
    return next(i + 1 for i, line in enumerate(lines) if line.strip() == "```bash")


def test_tour_times_the_first_block_as_written():
    result = subprocess.run([sys.executable, str(SCRIPT), "--until-line", str(first_run_block_line())],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1].removeprefix("RESULT "))
    commands = [row["command"] for row in summary["rows"]]
    assert commands[0].startswith("flareseq synth --n-samples 2000"), commands  # the README's size, not shrunk
    assert summary["failed"] == [] and all(row["seconds"] > 0 for row in summary["rows"])
    assert summary["n_commands"] == len(commands) >= 5
