"""The full-data run: the real folds' sample counts, ingested and trained on without sampling.

    python benchmarks/full_data.py                # 76,773 / 92,481 / 27,006 samples (~8 GB of JSON)
    python benchmarks/full_data.py --scale 0.05   # a 5 % rehearsal (~0.4 GB), minutes instead

Stages, each timed, each in a child process whose whole process tree's RSS is sampled
(every 20 ms, summed over the process and its descendants):

0. **generate** (a prerequisite, not a figure): three synthetic Kaggle files
   ``fold{1,2,3}Training.json`` with the real folds' sample counts (times ``--scale``),
   written by ``flareseq.data.synthetic.write_synthetic_kaggle`` in parallel processes
   (one per file) and cached under ``bench-data/full-data/`` (gitignored); later runs reuse them.
1. **ingest**: ``flareseq.data.ingest.ingest([fold1, fold2, fold3], store)``, as
   ``flareseq ingest`` runs it: MB/s over the JSON bytes, CPU seconds, peak RSS.
2. **train**: the user's path for one run, ``lstm`` (the study's basic LSTM, dropout and
   recurrent dropout 0.2) trained for one epoch on **all** of fold 1 with fold 2 as
   validation: ``flareseq.experiments.rundata.load_source`` (the whole store), ``prepare_run_data``
   (split by fold, missing values fitted on fold 1), ``experiments.single.build_classifier`` and
   ``fit`` (z-score fitted on fold 1, one epoch of RMSprop at batch 128, validation
   predictions, threshold chosen on fold 2). The training history gives the epoch's
   seconds and ``data_seconds``, the time the loop spent gathering and copying batches:
   their ratio is the share of training spent waiting for data.

The last line is ``RESULT {json}``. The machine's load is recorded before and after; on a
shared machine every wall-clock figure is lowered by the other work (CPU seconds less so).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import TreeMemory  # noqa: E402  (benchmarks/ingest.py: the process-tree RSS sampler)

FOLD_SIZES = {1: 76_773, 2: 92_481, 3: 27_006}  # the Kaggle BigData Cup 2019 folds (SPEC section 1)


# -- 0. generate ------------------------------------------------------------------------------
def _write_fold(path: str, n_samples: int, fold: int) -> float:
    from flareseq.data.synthetic import write_synthetic_kaggle

    started = time.perf_counter()
    shares = tuple(1.0 if k == fold else 0.0 for k in FOLD_SIZES)  # every sample in this fold
    write_synthetic_kaggle(path, n_samples, seed=100 + fold, fold_shares=shares, progress=False)
    return time.perf_counter() - started


def generate(data_dir: Path, scale: float, processes: int) -> tuple[list[Path], float]:
    """The three fold files (cached); returns them and the seconds spent writing (0 if cached)."""
    sizes = {fold: max(1, round(n * scale)) for fold, n in FOLD_SIZES.items()}
    paths = {fold: data_dir / f"fold{fold}Training-{n}.json" for fold, n in sizes.items()}
    todo = {fold: p for fold, p in paths.items() if not p.exists()}
    started = time.perf_counter()
    if todo:
        print(f"generating {sum(sizes[f] for f in todo)} samples into {data_dir} with {processes} processes "
              "(cached for later runs) ...", file=sys.stderr)
        data_dir.mkdir(parents=True, exist_ok=True)
        with ProcessPoolExecutor(min(processes, len(todo)), mp_context=get_context("spawn")) as pool:
            # the largest first, so the processes finish together
            for fold in sorted(todo, key=lambda f: -sizes[f]):
                pool.submit(_write_fold, str(todo[fold]), sizes[fold], fold)
        missing = [str(p) for p in todo.values() if not p.exists()]
        if missing:
            raise SystemExit(f"generation failed: {missing} not written")
    return [paths[f] for f in sorted(paths)], (time.perf_counter() - started) if todo else 0.0


# -- stages in child processes ------------------------------------------------------------------
_INGEST = r"""
import json, os, sys, time
from flareseq.data.ingest import ingest
if __name__ == "__main__":
    out, workers, inputs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    c0 = os.times()
    report = ingest(inputs, out, workers=workers, overwrite=True, progress=False)
    c1 = os.times()
    cpu = sum(getattr(c1, k) - getattr(c0, k) for k in ("user", "system", "children_user", "children_system"))
    print(json.dumps({"seconds": report.seconds, "bytes": report.input_bytes, "cpu_s": cpu,
                      "n_samples": report.manifest["counts"]["n_samples"], "folds": report.manifest["folds"],
                      "workers": report.workers, "fast_chunks": report.fast_chunks,
                      "strict_chunks": report.strict_chunks}))
"""

_TRAIN = r"""
import json, os, sys, time
if __name__ == "__main__":
    store, threads = sys.argv[1], int(sys.argv[2])
    from flareseq.experiments.config import RunConfig
    from flareseq.experiments.single import build_classifier
    from flareseq.experiments.rundata import load_source, prepare_run_data
    config = RunConfig().with_overrides({"data.path": store, "model.name": "lstm", "training.epochs": 1,
                                         "training.n_threads": threads})
    c0 = os.times(); t0 = time.perf_counter()
    source = load_source(config.data)
    t1 = time.perf_counter()
    run = prepare_run_data(config, source)
    del source
    t2 = time.perf_counter()
    estimator = build_classifier(config)
    estimator.fit(run.train, X_val=run.validation)
    t3 = time.perf_counter()
    c1 = os.times()
    h = estimator.history_
    print(json.dumps({"load_s": t1 - t0, "prepare_s": t2 - t1, "fit_s": t3 - t2, "cpu_s": (c1.user - c0.user) + (c1.system - c0.system),
                      "n_train": run.train.n_samples, "n_validation": run.validation.n_samples,
                      "train_positive": run.train.n_positive, "epoch_s": h["seconds"][0],
                      "data_s": h["data_seconds"][0], "samples": h["samples"][0], "val_tss": h["val_tss"][0],
                      "batch_size": config.training.batch_size, "threads": threads}))
"""


def run_child(code: str, args: list[str], env: dict | None = None) -> dict:
    """Run ``code`` in a child Python, sampling its process tree's RSS; its last stdout line is JSON."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=REPO, env=env)
    memory = TreeMemory(child.pid)
    memory.start()
    out, err = child.communicate()
    memory.stop()
    if child.returncode != 0:
        raise SystemExit(f"stage failed:\n{err}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(wall_s=time.perf_counter() - started, peak_rss_mb=memory.peak_tree / 1e6,
                  processes=memory.max_processes)
    return result


def _dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the real fold sizes (default 1)")
    parser.add_argument("--data-dir", type=Path, default=REPO / "bench-data" / "full-data")
    parser.add_argument("--workers", type=int, default=None, help="ingest workers (default: usable cores)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for training (default: usable cores)")
    parser.add_argument("--keep-store", action="store_true", help="keep the store under --data-dir")
    parser.add_argument("--omp-wait-policy", choices=["auto", "PASSIVE", "ACTIVE", "unset"], default="auto",
                        help="OMP_WAIT_POLICY of the training process; auto (default): PASSIVE when the load "
                             "average exceeds the CPU count at start, else left as it is")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "src"))
    from flareseq.data.ingest_report import default_workers

    cores = default_workers()
    workers, threads = args.workers or cores, args.threads or cores
    load_before = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPUs, load average {load_before:.2f}; scale {args.scale}", file=sys.stderr)
    files, generate_s = generate(args.data_dir, args.scale, cores)
    json_bytes = sum(p.stat().st_size for p in files)
    store = args.data_dir / f"store-{args.scale:g}"

    print(f"ingesting {json_bytes / 1e9:.2f} GB ...", file=sys.stderr)
    ingest = run_child(_INGEST, [str(store), str(workers), *map(str, files)])
    print("training lstm on fold 1 (one epoch), fold 2 validating ...", file=sys.stderr)
    # torch's OpenMP threads spin-wait between parallel regions; on an oversubscribed machine a
    # spinning thread waits on a descheduled peer and training collapses (measured here at load
    # 4.5 on 2 cores, lstm: 600 samples/s spinning, 6,700 with PASSIVE, 13,000 on one thread)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if args.omp_wait_policy == "auto":
        if load_before > (os.cpu_count() or 1):
            env["OMP_WAIT_POLICY"] = "PASSIVE"  # else as inherited
    elif args.omp_wait_policy == "unset":
        env.pop("OMP_WAIT_POLICY", None)
    else:
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy
    omp_policy = env.get("OMP_WAIT_POLICY")
    train = run_child(_TRAIN, [str(store), str(threads)], env=env)
    store_mb = _dir_mb(store)
    if not args.keep_store:
        shutil.rmtree(store, ignore_errors=True)
    load_after = os.getloadavg()[0]

    mb = json_bytes / 1e6
    data_share = train["data_s"] / train["epoch_s"]
    print(f"\nfull-data run: {ingest['n_samples']:,} samples (folds {ingest['folds']}), {mb:,.0f} MB of JSON"
          + ("" if not generate_s else f" (generated in {generate_s:.0f} s, not counted)"))
    print(f"  ingest  {ingest['seconds']:7.1f} s  {mb / ingest['seconds']:6.0f} MB/s  {ingest['cpu_s']:.1f} CPU-s "
          f"({mb / ingest['cpu_s']:.0f} MB per CPU-second), {ingest['workers']} workers, "
          f"peak RSS {ingest['peak_rss_mb']:.0f} MB; store {store_mb:.0f} MB")
    print(f"  load    {train['load_s']:7.1f} s  the whole store into memory")
    print(f"  prepare {train['prepare_s']:7.1f} s  split by fold, missing values fitted on fold 1")
    print(f"  fit     {train['fit_s']:7.1f} s  scaling, one epoch over {train['n_train']:,} samples "
          f"({train['epoch_s']:.1f} s with validation on {train['n_validation']:,}: "
          f"{train['samples'] / train['epoch_s']:,.0f} training samples/s), threshold on fold 2")
    print(f"  waiting for data: {100 * data_share:.1f} % of the epoch ({train['data_s']:.2f} s gathering batches)")
    print(f"  peak RSS of the training process: {train['peak_rss_mb']:.0f} MB; {threads} torch threads, "
          f"OMP_WAIT_POLICY {omp_policy or 'unset'}")
    print(f"  total (ingest + train stage): {ingest['wall_s'] + train['wall_s']:.0f} s wall")
    print(f"  load average before/after: {load_before:.2f} / {load_after:.2f}")
    result = {
        "scale": args.scale, "n_samples": ingest["n_samples"], "json_mb": round(mb, 1), "store_mb": round(store_mb, 1),
        "generate_s": round(generate_s, 1),
        "ingest_s": round(ingest["seconds"], 2), "ingest_mb_per_s": round(mb / ingest["seconds"], 1),
        "ingest_cpu_s": round(ingest["cpu_s"], 1), "ingest_peak_rss_mb": round(ingest["peak_rss_mb"], 1),
        "ingest_workers": ingest["workers"],
        "load_s": round(train["load_s"], 2), "prepare_s": round(train["prepare_s"], 2),
        "fit_s": round(train["fit_s"], 2), "epoch_s": round(train["epoch_s"], 2),
        "n_train": train["n_train"], "n_validation": train["n_validation"],
        "train_samples_per_s": round(train["samples"] / train["epoch_s"]),
        "data_seconds": round(train["data_s"], 3), "data_share": round(data_share, 4),
        "train_peak_rss_mb": round(train["peak_rss_mb"], 1), "train_cpu_s": round(train["cpu_s"], 1),
        "val_tss_after_one_epoch": round(train["val_tss"], 3), "threads": threads, "omp_wait_policy": omp_policy,
        "total_wall_s": round(ingest["wall_s"] + train["wall_s"], 1),
        "load_avg_before": round(load_before, 2), "load_avg_after": round(load_after, 2), "cpus": os.cpu_count(),
    }
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
