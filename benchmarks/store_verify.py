"""What checking a store costs: reading with and without the per-part SHA-256, and
``verify_store`` quick and full, on one synthetic store (issue 16, item 4).

    python benchmarks/store_verify.py                 # 20,000 samples (~95 MB store)
    python benchmarks/store_verify.py --samples 5000

Reads alternate (checked, unchecked, checked, ...) so that the page cache and the machine's
load treat both alike; the figures are medians. The ratio ``read_overhead`` = checked /
unchecked - 1 is what ``read_store``'s default costs. Last line: ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from flareseq.data.store import read_manifest, read_store, verify_store, write_store
    from flareseq.data.store_format import file_sha256
    from flareseq.data.synthetic import synthetic_dataset

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    flags = {f for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
             for f in line.split(":", 1)[1].split()}
    print(f"CPU: {cpu}; {os.cpu_count()} CPUs; sha_ni {'yes' if 'sha_ni' in flags else 'no'}, "
          f"avx2 {'yes' if 'avx2' in flags else 'no'}; load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "store"
        data = synthetic_dataset(args.samples, seed=1)
        started = time.perf_counter()
        write_store(data, store)
        write_s = time.perf_counter() - started
        del data
        parts = read_manifest(store)["parts"]
        size = sum(p["n_bytes"] for p in parts)
        started = time.perf_counter()
        for p in parts:
            file_sha256(store / p["file"])
        hash_s = time.perf_counter() - started
        checked, unchecked = [], []
        for _ in range(args.repeats):
            for verify, times in ((True, checked), (False, unchecked)):
                started = time.perf_counter()
                read_store(store, verify=verify)
                times.append(time.perf_counter() - started)
        quick, full = [], []
        for _ in range(max(1, args.repeats // 2)):
            for is_full, times in ((False, quick), (True, full)):
                started = time.perf_counter()
                verify_store(store, full=is_full)
                times.append(time.perf_counter() - started)
    result = {
        "samples": args.samples, "store_mb": round(size / 1e6, 1), "write_s": round(write_s, 3),
        "hash_parts_s": round(hash_s, 3), "hash_share_of_write": round(hash_s / write_s, 3),
        "read_checked_s": round(statistics.median(checked), 3),
        "read_unchecked_s": round(statistics.median(unchecked), 3),
        "read_overhead": round(statistics.median(checked) / statistics.median(unchecked) - 1, 3),
        # the same cost measured directly (less noisy on a busy machine than the difference of two reads)
        "hash_share_of_read": round(hash_s / statistics.median(unchecked), 3),
        "verify_quick_s": round(statistics.median(quick), 3), "verify_full_s": round(statistics.median(full), 3),
        "load_average": round(os.getloadavg()[0], 2),
    }
    print(f"store: {args.samples:,} samples, {result['store_mb']} MB; written in {write_s:.2f} s, of which hashing "
          f"the parts {hash_s:.3f} s ({100 * result['hash_share_of_write']:.1f} %)")
    print(f"read_store: {result['read_checked_s']:.3f} s with checksums, {result['read_unchecked_s']:.3f} s without "
          f"(overhead {100 * result['read_overhead']:+.1f} %, medians of {args.repeats}); hashing alone is "
          f"{100 * result['hash_share_of_read']:.1f} % of an unchecked read")
    print(f"verify_store: quick {result['verify_quick_s']:.3f} s, full {result['verify_full_s']:.3f} s")
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
