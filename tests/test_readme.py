"""Every shell command and Python block of the README runs, in order, on tiny data.

The README's ```bash and ```python blocks are taken as written and run in a scratch folder laid
out like a checkout (``experiments/`` and ``benchmarks/`` beside it, ``../shared/data`` holding
the 12 real SWAN-SF samples and a small cut of the SMARP tables when ../shared/data is there).
Only sizes shrink: ``--n-samples``, sample counts and epochs are made small, the
`train`/`experiments` runs get a few ``--set`` overrides that make them fast, and a grid runs one
model and the strongest simple baseline (``--only``), so that an example that no longer parses,
names a missing file or crashes fails here.

A block fenced as ```bash no-test or ```python no-test is not run; :data:`NOT_RUN` says which
kinds may be (an install, the network, a server that runs until stopped, a benchmark with its
own quick-run test) and each such block must be one of them.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

# defined here, not imported from conftest: under xdist "conftest" may resolve to tests/serve/conftest.py
REPO_ROOT = Path(__file__).resolve().parents[1]
SWAN_SAMPLES = Path(__file__).resolve().parent / "data" / "swan-sf-samples"
SHARED_DATA = Path(os.environ.get("FLARESEQ_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

README = REPO_ROOT / "README.md"
FENCE = re.compile(r"^```(bash|python)([^\n]*)\n(.*?)^```", re.M | re.S)
# what a block that is not run may be: its first word, or a word it contains
NOT_RUN = {
    "make": "the two commands themselves (make test is this suite)",
    "pip": "an install",
    "download": "the network (tested against local servers in tests/test_download_*.py)",
    "fetch": "the network (tested against a local JSOC/HEK server in tests/test_live_*.py)",
    "forecast": "the network (tested against a local JSOC server in tests/test_live_end_to_end.py)",
    "build-dataset": "the network (tested in tests/test_live_dataset.py)",
    "ui": "a server that runs until stopped (tested in tests/test_cli.py)",
    "serve": "a server that runs until stopped (tested in tests/serve/)",
    "curl": "a request to a running server (tested in tests/serve/)",
    "benchmarks/": "a benchmark (each has a quick-run test: tests/test_*_benchmark.py)",
    "mlflow.pyfunc": "a run id that exists only after a run (tested in tests/test_experiments.py)",
    "--engine spark": "Spark (tested in tests/test_spark.py)",
}
# make the README's sizes small (pattern, replacement), applied to every command and block
SMALL = [
    (r"--n-samples \d+", "--n-samples 400"),
    (r"synthetic_dataset\(\d+\)", "synthetic_dataset(900)"),
    (r"\bepochs=\d+", "epochs=1"),
    (r"training\.epochs=\d+", "training.epochs=1"),
]
FAST_RUNS = ["--set", "training.epochs=1", "--set", "verification.n_bootstrap=0", "--set", "tracking.plots=false",
             "--set", "data.synthetic_samples=2000", "--set", "training.patience=1", "--no-progress"]


@dataclass
class Block:
    language: str
    run: bool
    text: str
    line: int

    def commands(self) -> list[str]:
        """The shell commands of a bash block (continuations joined, comments dropped)."""
        joined = re.sub(r"\\\n\s*", " ", self.text)
        return [line.split(" #")[0].strip() for line in joined.splitlines()
                if line.strip() and not line.lstrip().startswith("#")]


def readme_blocks() -> list[Block]:
    text = README.read_text()
    return [Block(m.group(1), "no-test" not in m.group(2), m.group(3), text[: m.start()].count("\n") + 1)
            for m in FENCE.finditer(text)]


def shrink(text: str) -> str:
    for pattern, replacement in SMALL:
        text = re.sub(pattern, replacement, text)
    return text


def scratch_checkout(root: Path, smarp_regions: int | None = None) -> Path:
    """``root/work`` laid out like a checkout (experiments and benchmarks linked in) with
    ``root/shared/data`` beside it: the SWAN-SF samples and, when ../shared/data has them, the
    SMARP tables (whole, or the first ``smarp_regions`` regions of each fold file).
    benchmarks/readme_tour.py uses the same layout."""
    work = root / "work"
    work.mkdir()
    for name in ("experiments", "benchmarks"):
        (work / name).symlink_to(REPO_ROOT / name)
    shared = root / "shared" / "data"
    shared.mkdir(parents=True)
    (shared / "swan-sf-samples").symlink_to(SWAN_SAMPLES)
    smarp = SHARED_DATA / "smarp"
    if not smarp.is_dir():
        return work
    if smarp_regions is None:
        (shared / "smarp").symlink_to(smarp)
        return work
    (shared / "smarp").mkdir()
    for table in sorted(smarp.glob("smarp_[0-9].csv")):
        frame = pd.read_csv(table)
        regions = frame[["prefix", "arpnum"]].drop_duplicates().head(smarp_regions)
        frame.merge(regions).to_csv(shared / "smarp" / table.name, index=False)
    return work


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A scratch checkout with a small cut of the real SMARP tables: 25 regions per fold file."""
    return scratch_checkout(tmp_path_factory.mktemp("readme"), smarp_regions=25)


def _run(command: str, cwd: Path) -> subprocess.CompletedProcess:
    argv = shlex.split(shrink(command))
    if argv[:2] in (["flareseq", "train"], ["flareseq", "experiments"]):
        argv += FAST_RUNS
    if argv[:2] == ["flareseq", "experiments"]:  # one model run and the strongest simple baseline of each grid
        argv += ["--only", "lstm,lstm-c1,embed-lstm,wide-deep-lstm,baseline-logistic-last,baseline-logistic-summary"]
    if argv[0] == "flareseq":
        argv = [sys.executable, "-m", "flareseq", *argv[1:]]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=900, env=env)


def test_blocks_that_are_not_run_say_why():
    for block in readme_blocks():
        if block.run:
            continue
        reasons = [why for word, why in NOT_RUN.items() if word in block.text]
        assert reasons, f"README line {block.line}: a no-test block that is none of {sorted(NOT_RUN)}"


@pytest.mark.slow
def test_every_readme_command_and_python_block_runs(checkout, capsys):
    blocks = [b for b in readme_blocks() if b.run]
    ran, failures = 0, []
    for block in blocks:
        if block.language == "python":
            code = shrink(block.text)
            result = subprocess.run([sys.executable, "-c", code], cwd=checkout, capture_output=True, text=True,
                                    timeout=900)
            ran += 1
            if result.returncode:
                failures.append(f"README line {block.line} (python): {result.stderr[-800:]}")
            continue
        for command in block.commands():
            # the SMARP tables are not in the repository (their tests skip with the reason): skip
            # every command that reads them, directly or through experiments/smarp.toml
            if "smarp" in command and not (checkout.parent / "shared/data/smarp").is_dir():
                continue
            result = _run(command, checkout)
            ran += 1
            if result.returncode:
                failures.append(f"README line {block.line}: `{command}` exit {result.returncode}: "
                                f"{(result.stderr or result.stdout)[-800:]}")
    with capsys.disabled():
        print(f"\nREADME: ran {ran} commands and Python blocks from {len(blocks)} blocks")
    assert not failures, "\n\n".join(failures)
