"""A longer differential fuzz run of the compiled Kaggle scanner against the strict parser.

    python benchmarks/fuzz_scan.py                   # 10,000 cases per property (~10 min of one core)
    python benchmarks/fuzz_scan.py --cases 2000      # quicker
    make sanitize FUZZ_CASES=2000                    # the same under AddressSanitizer + UBSan (slower)

The properties, strategies and oracle are tests/test_scan_fuzz.py's (the suite runs a few
hundred cases of each): generated Kaggle lines in every spelling, the same mutated byte by
byte, and random bytes; each case must be declined by the scanner (with a line and a
reason) or read bit for bit as the strict parser reads it. Hypothesis explores without its
example database, so each run is new; ``--seed`` repeats one. Cases run in rounds of at
most 1,000 per property (Hypothesis keeps what it explored in memory: ~1 GB after 3,000
cases in one go). A failure prints the shrunk falsifying input and exits non-zero. The last
line is ``RESULT {json}`` with the cases run and how many the scanner accepted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="cases per property (default 10,000)")
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis seed (default: random)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "tests"))
    import test_scan_fuzz as fuzz
    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis import strategies as st

    outcomes: dict[str, Counter] = {}

    def record(name: str, accepted: bool) -> None:
        outcomes.setdefault(name, Counter())["accepted" if accepted else "declined"] += 1

    def properties(n: int):
        """The three properties, n cases each (fresh functions: Hypothesis's memory goes with them)."""
        run_settings = settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))

        @run_settings
        @given(data=st.data(), n_timesteps=st.integers(1, 3))
        def generated(data, n_timesteps):
            record("generated", fuzz.check_chunk(data.draw(fuzz.kaggle_chunks(n_timesteps)), n_timesteps))

        @run_settings
        @given(data=st.data(), n_timesteps=st.integers(1, 2))
        def mutated(data, n_timesteps):
            chunk = data.draw(fuzz.kaggle_chunks(n_timesteps))
            record("mutated", fuzz.check_chunk(data.draw(fuzz.mutated(chunk)), n_timesteps))

        @run_settings
        @given(blob=st.one_of(st.binary(max_size=2000), st.lists(st.sampled_from(fuzz.TOKENS), max_size=200).map(b"".join)),
               n_timesteps=st.integers(1, 3))
        def random(blob, n_timesteps):
            record("random", fuzz.check_chunk(blob, n_timesteps))

        return generated, mutated, random

    started, cpu = time.perf_counter(), time.process_time()
    failed = None
    done = 0
    for round_number in range(-(-args.cases // 1000)):
        n = min(1000, args.cases - done)
        for prop in properties(n):
            if args.seed is not None:
                prop = seed(args.seed + round_number)(prop)
            try:
                prop()
            except Exception as exc:  # noqa: BLE001 - report which property failed, then exit non-zero
                failed = f"{prop.__name__}: {type(exc).__name__}: {exc}"
                print(f"FAILED {failed}", file=sys.stderr)
                break
        if failed:
            break
        done += n
        print(f"{done:>8,} cases per property: " + ", ".join(
            f"{name} {c['accepted']:,} accepted / {c['declined']:,} declined" for name, c in outcomes.items()),
            flush=True)
    seconds = time.perf_counter() - started
    total = sum(sum(c.values()) for c in outcomes.values())
    sanitized = "libasan" in os.environ.get("LD_PRELOAD", "")
    print(f"{total:,} cases in {seconds:.0f} s ({time.process_time() - cpu:.0f} CPU-s)"
          + (" under AddressSanitizer + UBSan" if sanitized else ""))
    print("RESULT " + json.dumps({
        "cases": total, "cases_per_property": args.cases, "seed": args.seed, "failed": failed,
        "by_property": {k: dict(v) for k, v in outcomes.items()}, "seconds": round(seconds, 1),
        "sanitizers": sanitized, "load_average": round(os.getloadavg()[0], 2),
    }))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
