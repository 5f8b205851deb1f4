"""The full-data run: the real folds' sample counts, ingested and trained on without sampling.

    python benchmarks/full_data.py                # 76,773 / 92,481 / 27,006 samples (~8 GB of JSON)
    python benchmarks/full_data.py --scale 0.05   # a 5 % rehearsal (~0.4 GB), minutes instead
    python benchmarks/full_data.py --runs 6       # the study grid: 6 of its 18 runs, the rest extrapolated

Stages, each timed, each in a child process whose whole process tree's RSS is sampled
(every 20 ms, summed over the process and its descendants; the child also reports the
kernel's own high-water mark, ``ru_maxrss``):

0. **generate** (a prerequisite, not a figure): three synthetic Kaggle files
   ``fold{1,2,3}Training.json`` with the real folds' sample counts (times ``--scale``),
   written by ``flareseq.data.synthetic.write_synthetic_kaggle`` in parallel processes
   (one per file) and cached under ``bench-data/full-data/`` (gitignored); later runs reuse them.
1. **ingest**: ``flareseq.data.ingest.ingest([fold1, fold2, fold3], store)``, as
   ``flareseq ingest`` runs it: MB/s over the JSON bytes, CPU seconds, peak RSS.
2. **train in memory** (before; ``--no-memory`` skips it): the user's path for one run,
   ``lstm`` (the study's basic LSTM, dropout and recurrent dropout 0.2) trained for one epoch
   on **all** of fold 1 with fold 2 as validation: ``flareseq.experiments.rundata.load_source``
   (the whole store), ``prepare_run_data`` (split by fold), ``experiments.single.build_classifier``
   and ``fit`` (fill and z-score fitted on fold 1, one epoch of RMSprop at batch 128,
   validation predictions, threshold chosen on fold 2). The training history gives the
   epoch's seconds and ``data_seconds``, the time the loop spent gathering and copying
   batches: their ratio is the share of training spent waiting for data.
3. **train through the cache** (after): the same run with ``data.memory_budget_mb``
   (``--budget-mb``, default 1024): ``experiments.cached_run.prepare_cached_run`` (one pass
   over fold 1 fits the preparation, one pass per part writes the float32 cache
   beside the store) and ``fit_cached_run`` (batches read from the cache by index). Then the same
   with the training data more than doubled (folds 1 and 2 training, fold 3 testing, none
   validating: 2.2x the training samples; ``--no-doubled`` skips it): memory stays flat.
4. **the study's grid** (``--no-grid`` skips it): ``experiments/study.toml``'s 18 runs at the
   study's own budget (its samples of 0.3 / 0.1 / 0.05 of the folds, its layouts, epochs,
   steps and batches) on the full store, as ``flareseq experiments`` runs them but without
   MLflow (``evaluate_run`` per run, data prepared once per layout). ``--runs N`` runs the
   first N in the order c1 of every model, then c2, then c3; each run not run is
   **extrapolated** from its model's measured seconds per epoch (times its epochs, and for
   the generator-fed model its steps), and labelled so.

The last line is ``RESULT {json}``; the CPU line (``benchmarks/machine.py``) comes first.
The machine's load is recorded before and after; on a shared machine every wall-clock
figure is lowered by the other work (CPU seconds less so).
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
import json, os, resource, sys, time
if __name__ == "__main__":
    store, threads, path, budget = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    train_folds, validation_folds = json.loads(sys.argv[5]), json.loads(sys.argv[6])
    from flareseq.experiments.config import RunConfig
    from flareseq.experiments.single import build_classifier
    config = RunConfig().with_overrides({"data.path": store, "model.name": "lstm", "training.epochs": 1,
                                         "training.n_threads": threads, "data.memory_budget_mb": budget,
                                         "data.split": {"method": "fold", "train_folds": train_folds,
                                                        "validation_folds": validation_folds,
                                                        "test_folds": [f for f in (1, 2, 3)
                                                                       if f not in train_folds + validation_folds]}})
    if not validation_folds:  # nothing to validate on: no threshold choice, no early stopping
        config = config.with_overrides({"training.threshold_metric": "", "training.early_stopping": False})
    c0 = os.times(); t0 = time.perf_counter()
    if path == "memory":
        from flareseq.experiments.rundata import load_source, prepare_run_data
        source = load_source(config.data)
        t1 = time.perf_counter()
        run = prepare_run_data(config, source)
        del source
        t2 = time.perf_counter()
        estimator = build_classifier(config, progress=False)
        estimator.fit(run.train, X_val=run.validation)
        n_train, n_val, written = run.train.n_samples, run.validation.n_samples, None
    else:
        from flareseq.experiments.cached_run import fit_cached_run, needs_cache, prepare_cached_run
        assert needs_cache(config), "the budget does not send this store through the cache"
        t1 = time.perf_counter()  # nothing is loaded whole
        run = prepare_cached_run(config)
        t2 = time.perf_counter()
        estimator = fit_cached_run(config, run, progress=False)
        n_train, n_val, written = run.train.n_samples, run.validation.n_samples, run.written
    t3 = time.perf_counter()
    c1 = os.times()
    h = estimator.history_
    print(json.dumps({"load_s": t1 - t0, "prepare_s": t2 - t1, "fit_s": t3 - t2, "cpu_s": (c1.user - c0.user) + (c1.system - c0.system),
                      "n_train": n_train, "n_validation": n_val, "cache_written": written,
                      "epoch_s": h["seconds"][0], "data_s": h["data_seconds"][0], "samples": h["samples"][0],
                      "val_tss": h.get("val_tss", [None])[0], "batch_size": config.training.batch_size, "threads": threads,
                      "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3}))
"""

_GRID = r"""
import json, os, resource, sys, time
if __name__ == "__main__":
    study, store, threads, n_runs, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    import warnings
    warnings.simplefilter("ignore")  # the study layouts' warning, once per run
    from flareseq.experiments.grid import load_experiment
    from flareseq.experiments.rundata import DataCache
    from flareseq.experiments.single import evaluate_run
    overrides = [f"data.path={json.dumps(store)}", f"training.n_threads={threads}", "verification.n_bootstrap=0"]
    if epochs:  # a rehearsal (the test's): not the study's budget
        overrides.append(f"training.epochs={epochs}")
    runs = list(load_experiment(study, overrides=overrides).runs)
    cases = [r.name.rsplit("-c", 1)[0] for r in runs]
    order = sorted(range(len(runs)), key=lambda i: (runs[i].name.rsplit("-c", 1)[1], cases.index(cases[i])))
    cache = DataCache(max_prepared=2)
    rows = []
    started = time.perf_counter(); c0 = os.times()
    for i in order[:n_runs]:
        config = runs[i]
        t0 = time.perf_counter()
        data = cache.get(config)
        t1 = time.perf_counter()
        evaluation = evaluate_run(config, data)
        t2 = time.perf_counter()
        h = evaluation.forecaster.classifier.history_
        rows.append({"name": config.name, "model": config.model.name, "prepare_s": t1 - t0, "run_s": t2 - t1,
                     "epochs": len(h["seconds"]), "train_s": sum(h["seconds"]), "data_s": sum(h["data_seconds"]),
                     "samples": sum(h["samples"]), "n_timesteps": int(data.train.n_timesteps),
                     "n_train": int(data.train.n_samples), "batching": config.training.batching,
                     "steps_per_epoch": config.training.steps_per_epoch,
                     "test_tss": evaluation.scores.get("test_tss")})
        print(f"  {config.name}: {t2 - t0:.1f} s", file=sys.stderr, flush=True)
    c1 = os.times()
    plan = [{"name": runs[i].name, "model": runs[i].model.name, "epochs": runs[i].training.epochs,
             "batching": runs[i].training.batching, "steps_per_epoch": runs[i].training.steps_per_epoch} for i in order]
    print(json.dumps({"rows": rows, "plan": plan, "wall_s": time.perf_counter() - started,
                      "cpu_s": (c1.user - c0.user) + (c1.system - c0.system),
                      "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3}))
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


def extrapolate_grid(rows: list[dict], plan: list[dict]) -> list[dict]:
    """Every run of the plan: measured where it ran, else estimated from its model's measured
    seconds per epoch (for generator-fed runs, per training step), flagged ``estimated``."""
    by_model: dict[str, list[dict]] = {}
    for row in rows:
        by_model.setdefault(row["model"], []).append(row)
    measured = {row["name"]: row for row in rows}
    out = []
    for run in plan:
        if run["name"] in measured:
            out.append({**measured[run["name"]], "estimated": False})
            continue
        seen = by_model.get(run["model"])
        if not seen:
            out.append({"name": run["name"], "model": run["model"], "estimated": True, "run_s": None})
            continue
        ref = seen[0]
        per_epoch = ref["train_s"] / ref["epochs"]
        work = 1.0
        if run["batching"] == "sampled" and ref["steps_per_epoch"]:
            work = run["steps_per_epoch"] / ref["steps_per_epoch"]  # an epoch is its steps
        train_s = per_epoch * work * run["epochs"]
        samples = ref["samples"] / ref["epochs"] * work * run["epochs"]
        # scoring validation and test, choosing the threshold (the least seen: the first run also warms up)
        overhead = min(r["run_s"] - r["train_s"] for r in seen)
        out.append({"name": run["name"], "model": run["model"], "estimated": True, "epochs": run["epochs"],
                    "train_s": train_s, "run_s": train_s + overhead, "samples": samples,
                    "data_s": ref["data_s"] / ref["train_s"] * train_s, "n_timesteps": ref["n_timesteps"],
                    "prepare_s": 0.0})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the real fold sizes (default 1)")
    parser.add_argument("--data-dir", type=Path, default=REPO / "bench-data" / "full-data")
    parser.add_argument("--workers", type=int, default=None, help="ingest workers (default: usable cores)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for training (default: usable cores)")
    parser.add_argument("--keep-store", action="store_true", help="keep the store (and its cache) under --data-dir")
    parser.add_argument("--budget-mb", type=int, default=1024, help="data.memory_budget_mb of the cache path")
    parser.add_argument("--no-memory", action="store_true", help="skip the in-memory training (before)")
    parser.add_argument("--no-doubled", action="store_true", help="skip the cache path on folds 1 and 2")
    parser.add_argument("--no-grid", action="store_true", help="skip the study's 18-run grid")
    parser.add_argument("--runs", type=int, default=18, help="runs of the grid to run (the rest extrapolated)")
    parser.add_argument("--grid-epochs", type=int, default=0,
                        help="epochs of every grid run (default 0: the study's 10/20/30; a rehearsal otherwise)")
    parser.add_argument("--omp-wait-policy", choices=["auto", "PASSIVE", "ACTIVE", "unset"], default="auto",
                        help="OMP_WAIT_POLICY of the training process; auto (default): PASSIVE when the load "
                             "average exceeds the CPU count at start, else left as it is")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "src"))
    from machine import cpu_info, cpu_line

    from flareseq.data.cache import cache_root
    from flareseq.data.ingest_report import default_workers

    info = cpu_info()
    print(cpu_line(info))
    cores = default_workers()
    workers, threads = args.workers or cores, args.threads or cores
    load_before = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPUs, load average {load_before:.2f}; scale {args.scale}", file=sys.stderr)
    files, generate_s = generate(args.data_dir, args.scale, cores)
    json_bytes = sum(p.stat().st_size for p in files)
    store = args.data_dir / f"store-{args.scale:g}"
    cache_existed = cache_root(store).exists()

    print(f"ingesting {json_bytes / 1e9:.2f} GB ...", file=sys.stderr)
    ingest = run_child(_INGEST, [str(store), str(workers), *map(str, files)])
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
    trains: dict[str, dict] = {}
    stages = [("memory", "memory", [1], [2], 0)] if not args.no_memory else []
    stages.append(("cache", "cache", [1], [2], args.budget_mb))
    if not args.no_doubled:
        # folds 1 and 2 train (2.2x fold 1), fold 3 tests, none validates
        stages.append(("cache_doubled", "cache", [1, 2], [], args.budget_mb))
    for name, path, train_folds, validation_folds, budget in stages:
        print(f"training lstm on folds {train_folds} (one epoch), {validation_folds} validating, {path} path ...",
              file=sys.stderr)
        trains[name] = run_child(_TRAIN, [str(store), str(threads), path, str(budget), json.dumps(train_folds),
                                          json.dumps(validation_folds)], env=env)
    grid = None
    if not args.no_grid:
        print(f"the study's grid: {args.runs} of 18 runs ...", file=sys.stderr)
        grid = run_child(_GRID, [str(REPO / "experiments" / "study.toml"), str(store), str(threads), str(args.runs),
                                 str(args.grid_epochs)],
                         env=env)
    store_mb = _dir_mb(store)
    cache_mb = _dir_mb(cache_root(store)) if cache_root(store).exists() else 0.0
    if not args.keep_store:
        shutil.rmtree(store, ignore_errors=True)
        if not cache_existed:  # only what this run made
            shutil.rmtree(cache_root(store), ignore_errors=True)
    load_after = os.getloadavg()[0]

    mb = json_bytes / 1e6
    print(f"\nfull-data run: {ingest['n_samples']:,} samples (folds {ingest['folds']}), {mb:,.0f} MB of JSON"
          + ("" if not generate_s else f" (generated in {generate_s:.0f} s, not counted)"))
    print(f"  ingest  {ingest['seconds']:7.1f} s  {mb / ingest['seconds']:6.0f} MB/s  {ingest['cpu_s']:.1f} CPU-s "
          f"({mb / ingest['cpu_s']:.0f} MB per CPU-second), {ingest['workers']} workers, "
          f"peak RSS {ingest['peak_rss_mb']:.0f} MB; store {store_mb:.0f} MB, cache {cache_mb:.0f} MB")
    labels = {"memory": "in memory (before)", "cache": f"cache, budget {args.budget_mb} MB (after)",
              "cache_doubled": "cache, training data x2.2"}
    print(f"  training lstm, one epoch, {threads} torch threads, OMP_WAIT_POLICY {omp_policy or 'unset'}:")
    print(f"    {'path':34} {'n_train':>8} {'load+prep s':>11} {'fit s':>7} {'epoch s':>8} {'train/s':>8} "
          f"{'data%':>6} {'peak RSS MB':>11} {'maxrss MB':>9}")
    for name, t in trains.items():
        print(f"    {labels[name]:34} {t['n_train']:8,} {t['load_s'] + t['prepare_s']:11.1f} {t['fit_s']:7.1f} "
              f"{t['epoch_s']:8.1f} {t['samples'] / t['epoch_s']:8,.0f} {100 * t['data_s'] / t['epoch_s']:6.1f} "
              f"{t['peak_rss_mb']:11.0f} {t['maxrss_mb']:9.0f}")
    result: dict = {
        **info, "scale": args.scale, "n_samples": ingest["n_samples"], "json_mb": round(mb, 1),
        "store_mb": round(store_mb, 1), "cache_mb": round(cache_mb, 1), "generate_s": round(generate_s, 1),
        "ingest_s": round(ingest["seconds"], 2), "ingest_mb_per_s": round(mb / ingest["seconds"], 1),
        "ingest_cpu_s": round(ingest["cpu_s"], 1), "ingest_peak_rss_mb": round(ingest["peak_rss_mb"], 1),
        "ingest_workers": ingest["workers"], "budget_mb": args.budget_mb,
        "threads": threads, "omp_wait_policy": omp_policy,
        "train": {name: {"n_train": t["n_train"], "n_validation": t["n_validation"],
                         "load_prepare_s": round(t["load_s"] + t["prepare_s"], 2), "fit_s": round(t["fit_s"], 2),
                         "epoch_s": round(t["epoch_s"], 2), "train_samples_per_s": round(t["samples"] / t["epoch_s"]),
                         "data_share": round(t["data_s"] / t["epoch_s"], 4), "peak_rss_mb": round(t["peak_rss_mb"], 1),
                         "maxrss_mb": round(t["maxrss_mb"], 1),
                         "val_tss_after_one_epoch": None if t["val_tss"] is None else round(t["val_tss"], 3),
                         "cache_written": t["cache_written"]} for name, t in trains.items()},
    }
    if "memory" in trains:
        result["peak_rss_before_mb"] = round(trains["memory"]["peak_rss_mb"], 1)
    result["peak_rss_after_mb"] = round(trains["cache"]["peak_rss_mb"], 1)
    if "cache_doubled" in trains:
        result["peak_rss_after_doubled_mb"] = round(trains["cache_doubled"]["peak_rss_mb"], 1)
    if grid is not None:
        runs = extrapolate_grid(grid["rows"], grid["plan"])
        n_measured = sum(not r["estimated"] for r in runs)
        print(f"  the study's grid (experiments/study.toml) on the full folds: {n_measured} of {len(runs)} runs measured"
              + (f", REHEARSAL: {args.grid_epochs} epoch(s) each, not the study's budget" if args.grid_epochs else "")
              + ("" if n_measured == len(runs) else ", the others EXTRAPOLATED (*) from their model's seconds per epoch"))
        print(f"    {'run':28} {'T':>3} {'epochs':>6} {'samples':>11} {'train s':>8} {'run s':>7} {'samples/s':>10} "
              f"{'data%':>6}")
        for r in runs:
            if r.get("run_s") is None:
                print(f"    {r['name']:28} (no run of {r['model']} measured: not estimated)")
                continue
            mark = "*" if r["estimated"] else " "
            print(f"    {r['name'] + mark:28} {r['n_timesteps']:3} {r['epochs']:6} {r['samples']:11,.0f} "
                  f"{r['train_s']:8.1f} {r['run_s']:7.1f} {r['samples'] / r['train_s']:10,.0f} "
                  f"{100 * r['data_s'] / r['train_s']:6.1f}")
        known = [r for r in runs if r.get("run_s") is not None]
        total_train = sum(r["train_s"] for r in known)
        measured_wall = grid["wall_s"]
        estimated_s = sum(r["run_s"] for r in known if r["estimated"])
        total = measured_wall + estimated_s
        data_share = sum(r["data_s"] for r in known) / total_train
        rate = sum(r["samples"] for r in known) / total_train
        print(f"    grid wall time: {measured_wall:.0f} s measured ({n_measured} runs, data preparation included)"
              + (f" + {estimated_s:.0f} s extrapolated = {total:.0f} s ({total / 60:.1f} min) for all {len(runs)}"
                 if estimated_s else f" ({measured_wall / 60:.1f} min)")
              + f"; {rate:,.0f} training samples/s; waiting for data {100 * data_share:.1f} % of training; "
              f"peak RSS {grid['peak_rss_mb']:.0f} MB")
        result["grid"] = {"epochs_override": args.grid_epochs or None, "runs_measured": n_measured, "runs": len(runs), "wall_s_measured": round(measured_wall, 1),
                          "wall_s_extrapolated": round(estimated_s, 1), "wall_s_total": round(total, 1),
                          "total_is_extrapolated": bool(estimated_s), "train_samples_per_s": round(rate),
                          "data_share": round(data_share, 4), "peak_rss_mb": round(grid["peak_rss_mb"], 1),
                          "cpu_s_measured": round(grid["cpu_s"], 1),
                          "rows": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                                   for r in runs]}
    print(f"  load average before/after: {load_before:.2f} / {load_after:.2f}")
    result.update(load_avg_before=round(load_before, 2), load_avg_after=round(load_after, 2), cpus=os.cpu_count())
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
