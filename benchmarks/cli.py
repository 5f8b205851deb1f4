"""Time to first output of the ``flareseq`` command line, in fresh processes.

    python benchmarks/cli.py                                   # this checkout's .venv/bin/flareseq
    python benchmarks/cli.py --before /work/main/.venv/bin/flareseq --repeats 7

A user who types ``flareseq --help`` or mistypes an option waits for the interpreter to start
and the CLI to import what it needs before anything is printed. This script starts each case
in a fresh process (``subprocess.Popen``, stdout and stderr merged into one pipe), measures
the wall time until the first byte arrives, then waits for the process to end:

* ``help``: ``flareseq --help``
* ``train_help``: ``flareseq train --help``
* ``usage_error``: ``flareseq train --no-such-option`` (argparse's error, exit 2)
* ``set_typo``: ``flareseq train --set training.epochz=2`` (an unknown configuration key)
* ``version``: ``flareseq --version``
* ``python_floor``: ``python -c "print()"`` with the same interpreter: the start-up cost no
  CLI can go below, measured in the same run.

Each figure is the median over ``--repeats`` runs; the executables (``--after`` and, when
given, ``--before``) and cases are interleaved round by round, so all of them see the same
load. ``ratio`` = before / after for each case. The CPU model, its vector flags and the load
average before and after are printed; under load the figures are indicative only. Every case
runs in an empty temporary folder as its working directory, so nothing is written into the
repository (a ``--set`` typo must be refused before any store is made). The last line is
``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "help": ["--help"],
    "train_help": ["train", "--help"],
    "usage_error": ["train", "--no-such-option"],
    "set_typo": ["train", "--set", "training.epochz=2"],
    "version": ["--version"],
}
EXPECTED_EXIT = {"help": 0, "train_help": 0, "usage_error": 2, "set_typo": 2, "version": 0}


def time_to_first_output(command: list[str], cwd: str, env: dict, timeout: float = 120.0) -> tuple[float, float, int]:
    """(seconds to the first byte of output, seconds to exit, exit code) of one fresh process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               cwd=cwd, env=env)
    first = process.stdout.read(1)
    first_at = time.perf_counter() - started
    process.stdout.read()  # drain, so a large help text never blocks the child
    code = process.wait(timeout=timeout)
    if not first:
        first_at = float("nan")
    return first_at, time.perf_counter() - started, code


def cpu_description() -> dict:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    flags = set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split()) if "flags" in text else set()
    vector = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "amx_tile")
              if f in flags]
    return {"cpu": model.group(1).strip() if model else "unknown", "vector_flags": vector,
            "cpus": os.cpu_count()}


def load_average() -> float:
    return os.getloadavg()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--after", default=str(REPO_ROOT / ".venv" / "bin" / "flareseq"),
                        help="the flareseq executable to measure (default: this checkout's .venv)")
    parser.add_argument("--before", default=None,
                        help="another flareseq executable to compare with, e.g. an older checkout's")
    parser.add_argument("--repeats", type=int, default=5, help="runs per case and executable (median reported)")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES), help="cases to run")
    args = parser.parse_args(argv)

    executables = {"after": args.after, **({"before": args.before} if args.before else {})}
    for label, path in executables.items():
        if not Path(path).exists():
            parser.error(f"--{label} {path}: no such executable")
    # The interpreter each flareseq script runs with (its shebang), for the start-up floor.
    floors = {label: Path(path).read_text().splitlines()[0].removeprefix("#!").strip()
              for label, path in executables.items()}
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cpu = cpu_description()
    load_before = load_average()
    print(f"{cpu['cpu']} ({cpu['cpus']} CPUs; vector flags {' '.join(cpu['vector_flags'])}); "
          f"load average {load_before:.2f}", file=sys.stderr)

    samples: dict[str, dict[str, list[float]]] = {label: {c: [] for c in [*args.cases, "python_floor"]}
                                                  for label in executables}
    codes: dict[str, dict[str, int]] = {label: {} for label in executables}
    with tempfile.TemporaryDirectory(prefix="flareseq-cli-bench-") as cwd:
        for path in executables.values():  # one unmeasured start each: warm the file cache
            time_to_first_output([path, "--help"], cwd, env)
        for _ in range(args.repeats):
            for case in args.cases:
                for label, path in executables.items():
                    first, _, code = time_to_first_output([path, *CASES[case]], cwd, env)
                    samples[label][case].append(first)
                    codes[label][case] = code
            for label in executables:
                first, _, _ = time_to_first_output([floors[label], "-c", "print()"], cwd, env)
                samples[label]["python_floor"].append(first)
        leftovers = sorted(os.listdir(cwd))
    load_after = load_average()

    medians = {label: {case: statistics.median(values) for case, values in by_case.items()}
               for label, by_case in samples.items()}
    header = f"{'case':<14}" + "".join(f"{label + ' (s)':>14}" for label in executables)
    if args.before:
        header += f"{'before/after':>14}"
    print(header)
    for case in [*args.cases, "python_floor"]:
        line = f"{case:<14}" + "".join(f"{medians[label][case]:>14.3f}" for label in executables)
        if args.before:
            line += f"{medians['before'][case] / medians['after'][case]:>14.1f}"
        print(line)
    for label in executables:
        wrong = {c: code for c, code in codes[label].items() if code != EXPECTED_EXIT[c]}
        if wrong:
            print(f"{label}: unexpected exit codes {wrong} (expected {EXPECTED_EXIT})", file=sys.stderr)
    if leftovers:
        print(f"files written into the working folder: {leftovers}", file=sys.stderr)
    print(f"median of {args.repeats} fresh processes per case; load average {load_before:.2f} before, "
          f"{load_after:.2f} after", file=sys.stderr)

    result = {
        **cpu,
        "repeats": args.repeats,
        "load_avg_before": round(load_before, 2),
        "load_avg_after": round(load_after, 2),
        "seconds_to_first_output": {label: {c: round(v, 3) for c, v in m.items()} for label, m in medians.items()},
        "exit_codes": codes,
        "files_left_in_cwd": leftovers,
    }
    if args.before:
        result["ratio_before_over_after"] = {c: round(medians["before"][c] / medians["after"][c], 2)
                                             for c in args.cases}
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
