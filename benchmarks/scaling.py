"""How ingest and training grow with the data: 25k -> 100k -> 400k -> 1.6M synthetic samples.

    python benchmarks/scaling.py                                   # 25k, 100k, 400k, 1.6M (~65 GB of JSON at 1.6M)
    python benchmarks/scaling.py --sizes 25000 50000 100000        # what a small machine can hold

For each size, in child processes whose process tree's RSS is sampled (as
``benchmarks/full_data.py``, whose stages this reuses):

1. **ingest**: Kaggle-layout JSON (``flareseq.data.synthetic.write_synthetic_kaggle``,
   generated once in files of ``--chunk`` samples under ``bench-data/scaling/``, every file
   holding all three folds; a size takes the first ``size / chunk`` files, so the larger
   sizes reuse the smaller ones' files) into a store: seconds, MB/s, store size, peak RSS.
2. **train through the cache**: ``lstm``, one epoch on fold 1, fold 2 validating, with
   ``data.memory_budget_mb`` set so that the run goes through the float32 cache
   (``experiments.cached_run``): the passes that fit the preparation and write the cache,
   the epoch's seconds, samples/s, the share spent waiting for data, peak RSS.
3. **train in memory** (the path before the cache), for comparison, only while its
   estimated need (five times the store's float32 features) stays under half this machine's
   memory; larger sizes say "skipped".

Prints a table and ``RESULT {json}``; the CPU line comes first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from full_data import _INGEST, _TRAIN, _dir_mb, run_child  # noqa: E402  (the same stages, measured the same way)
from machine import cpu_info, cpu_line  # noqa: E402

DEFAULT_SIZES = (25_000, 100_000, 400_000, 1_600_000)


def _write_chunk(path: str, n_samples: int, seed: int) -> None:
    from flareseq.data.synthetic import write_synthetic_kaggle

    write_synthetic_kaggle(path, n_samples, seed=seed, progress=False)


def chunk_files(data_dir: Path, n_samples: int, chunk: int, processes: int) -> list[Path]:
    """The files holding the first ``n_samples`` samples (generated where missing)."""
    sizes = [min(chunk, n_samples - start) for start in range(0, n_samples, chunk)]
    paths = [data_dir / f"chunk-{k:03d}-{size}.json" for k, size in enumerate(sizes)]
    todo = [(p, s, 1000 + k) for k, (p, s) in enumerate(zip(paths, sizes)) if not p.exists()]
    if todo:
        print(f"generating {sum(s for _, s, _ in todo):,} samples into {data_dir} ...", file=sys.stderr)
        data_dir.mkdir(parents=True, exist_ok=True)
        with ProcessPoolExecutor(min(processes, len(todo)), mp_context=get_context("spawn")) as pool:
            for future in [pool.submit(_write_chunk, str(p), s, seed) for p, s, seed in todo]:
                future.result()
    return paths


def memory_total_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1e3
    return float("inf")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--chunk", type=int, default=25_000, help="samples per generated JSON file")
    parser.add_argument("--data-dir", type=Path, default=REPO / "bench-data" / "scaling")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: usable cores)")
    parser.add_argument("--budget-mb", type=int, default=1, help="data.memory_budget_mb of the cache path "
                        "(default 1: every size goes through the cache)")
    parser.add_argument("--no-memory", action="store_true", help="never run the in-memory path")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "src"))
    from flareseq.data.cache import cache_root
    from flareseq.data.ingest_report import default_workers

    info = cpu_info()
    print(cpu_line(info))
    cores = default_workers()
    threads = args.threads or cores
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    load_before = os.getloadavg()[0]
    if load_before > (os.cpu_count() or 1):
        env["OMP_WAIT_POLICY"] = "PASSIVE"  # see full_data.py: spinning OpenMP threads on a busy machine
    memory_mb = memory_total_mb()
    rows = []
    started = time.perf_counter()
    for size in sorted(args.sizes):
        files = chunk_files(args.data_dir, size, args.chunk, cores)
        json_mb = sum(p.stat().st_size for p in files) / 1e6
        store = args.data_dir / f"store-{size}"
        print(f"{size:,} samples: ingesting {json_mb:,.0f} MB ...", file=sys.stderr)
        ingest = run_child(_INGEST, [str(store), str(cores), *map(str, files)])
        store_mb = _dir_mb(store)
        split = [json.dumps([1]), json.dumps([2])]
        print(f"{size:,} samples: training through the cache ...", file=sys.stderr)
        cached = run_child(_TRAIN, [str(store), str(threads), "cache", str(args.budget_mb), *split], env=env)
        cache_mb = _dir_mb(cache_root(store))
        estimate_mb = 5.0 * size * 60 * 25 * 4 / 1e6
        memory = None
        if not args.no_memory and estimate_mb < memory_mb / 2:
            print(f"{size:,} samples: training in memory ...", file=sys.stderr)
            memory = run_child(_TRAIN, [str(store), str(threads), "memory", "0", *split], env=env)
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(cache_root(store), ignore_errors=True)  # made by this run (a fresh store's key)
        rows.append({
            "n_samples": size, "json_mb": round(json_mb, 1), "ingest_s": round(ingest["seconds"], 2),
            "ingest_mb_per_s": round(json_mb / ingest["seconds"], 1), "ingest_peak_rss_mb": round(ingest["peak_rss_mb"]),
            "store_mb": round(store_mb, 1), "cache_mb": round(cache_mb, 1), "n_train": cached["n_train"],
            "cache_prepare_s": round(cached["prepare_s"], 2), "epoch_s": round(cached["epoch_s"], 2),
            "train_samples_per_s": round(cached["samples"] / cached["epoch_s"]),
            "data_share": round(cached["data_s"] / cached["epoch_s"], 4),
            "train_peak_rss_mb": round(cached["peak_rss_mb"]), "train_maxrss_mb": round(cached["maxrss_mb"]),
            "memory_peak_rss_mb": None if memory is None else round(memory["peak_rss_mb"]),
            "memory_epoch_s": None if memory is None else round(memory["epoch_s"], 2),
        })
    load_after = os.getloadavg()[0]

    print(f"\nscaling ({threads} torch threads, lstm one epoch on fold 1, fold 2 validating; load average "
          f"{load_before:.1f} -> {load_after:.1f}):")
    print(f"{'samples':>10} {'JSON MB':>8} {'ingest s':>8} {'MB/s':>6} {'store MB':>8} {'cache MB':>8} "
          f"{'n_train':>8} {'cache s':>7} {'epoch s':>7} {'train/s':>7} {'data%':>5} {'RSS cache':>9} {'RSS memory':>10}")
    for r in rows:
        mem = "skipped" if r["memory_peak_rss_mb"] is None else f"{r['memory_peak_rss_mb']:,}"
        print(f"{r['n_samples']:>10,} {r['json_mb']:>8,.0f} {r['ingest_s']:>8.1f} {r['ingest_mb_per_s']:>6.0f} "
              f"{r['store_mb']:>8,.0f} {r['cache_mb']:>8,.0f} {r['n_train']:>8,} {r['cache_prepare_s']:>7.1f} "
              f"{r['epoch_s']:>7.1f} {r['train_samples_per_s']:>7,} {100 * r['data_share']:>5.1f} "
              f"{r['train_peak_rss_mb']:>9,} {mem:>10}")
    print("(RSS in MB: peak of the training process tree; 'cache s' = the passes fitting the preparation and "
          "writing the cache; 'epoch s' includes validating on fold 2)")
    result = {**info, "threads": threads, "budget_mb": args.budget_mb, "sizes": [r["n_samples"] for r in rows],
              "rows": rows, "wall_s": round(time.perf_counter() - started, 1), "load_avg_before": round(load_before, 2),
              "load_avg_after": round(load_after, 2), "cpus": os.cpu_count(), "memory_mb": round(memory_mb)}
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
