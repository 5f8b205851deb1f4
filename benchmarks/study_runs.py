"""The study's 18 runs as flareseq ran them, read back from MLflow's params (issue 14).

Runs ``experiments/study.toml`` on synthetic Kaggle-layout data (epochs cut to 1 unless
``--epochs`` says otherwise: the batching does not depend on them) into a scratch store, then
prints one row per run from what MLflow recorded: layout, batching, batch size and batches
per epoch as the fit drew them, validation samples per epoch, class weights, and the
notebook cell the run reproduces, beside what that cell does (README, "Where flareseq follows
the study and where it differs").

    python benchmarks/study_runs.py                      # ~5 min on 2 cores
    python benchmarks/study_runs.py --n-samples 20000 --epochs 1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CELLS = {"lstm": "[54]", "stacked-lstm": "[56]", "embed-lstm": "[65]", "tied-stacked-lstm": "[69]",
         "embed-stacked-lstm": "[72]", "embed-tied-stacked-lstm": "[75]"}
NOTEBOOK = {  # what the cell's fit call does (notebook text; see the README's table)
    "[54]": "arrays, steps s, class_weight=cw", "[56]": "arrays, steps s, class_weight=cw",
    "[65]": "arrays, steps s, class_weight commented out", "[69]": "arrays, steps s, class_weight commented out",
    "[72]": "arrays, steps s, class_weight commented out", "[75]": "generator (128), steps s, class_weight=cw",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=20000, help="synthetic samples (study.toml's default)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of every run (the notebook: 10/20/30)")
    parser.add_argument("--out", help="keep the MLflow store here (default: a temporary folder)")
    args = parser.parse_args(argv)

    import mlflow

    from flareseq.errors import show_warnings_plainly
    from flareseq.experiments.grid import load_experiment
    from flareseq.experiments.runner import run_experiment
    from flareseq.experiments.tracking import resolve_tracking_uri

    show_warnings_plainly()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="flareseq-study-") as scratch:
        out = Path(args.out or scratch)
        overrides = [f"data.synthetic_samples={args.n_samples}", f"training.epochs={args.epochs}",
                     f"tracking.output_dir={json.dumps(str(out))}", "verification.n_bootstrap=0",
                     "tracking.plots=false", "tracking.log_model=false"]
        experiment = load_experiment(REPO / "experiments" / "study.toml", overrides=overrides)
        run_experiment(experiment, with_baselines=False, progress=False,
                       echo=lambda line: print(line, file=sys.stderr))
        client = mlflow.MlflowClient(resolve_tracking_uri("", out))
        found = client.get_experiment_by_name("study")
        runs = sorted(client.search_runs([found.experiment_id]), key=lambda r: (
            list(CELLS).index(r.data.params["model.name"]), r.info.run_name))
        header = (f"{'run':<28} {'cell':<5} {'layout':<13} {'batching':<9} {'steps':>5} {'epochs':>6} {'n_train':>8} "
                  f"{'batch':>6} {'batches':>7} {'val/epoch':>9} {'class weights':<13} notebook")
        print(header)
        print("-" * len(header))
        rows = []
        for run in runs:
            p, m = run.data.params, run.data.metrics
            weights = ("{}" if p.get("training.class_weight") == "{}"
                       else f"{{0:{p['training.class_weight.0']}, 1:{p['training.class_weight.1']}}}")
            cell = CELLS[p["model.name"]]
            row = {"run": run.info.run_name, "cell": cell, "layout": p["prep.layout"],
                   "batching": p["training.batching"], "steps_per_epoch": int(p["training.steps_per_epoch"]),
                   "n_train": int(m["n_train"]), "batch_size": int(p["fit.batch_size"]),
                   "batches_per_epoch": int(p["fit.batches_per_epoch"]),
                   "validation_per_epoch": int(p["fit.validation_samples_per_epoch"]), "class_weight": weights}
            rows.append(row)
            print(f"{row['run']:<28} {cell:<5} {row['layout']:<13} {row['batching']:<9} {row['steps_per_epoch']:>5} "
                  f"{p['training.epochs']:>6} {row['n_train']:>8} {row['batch_size']:>6} {row['batches_per_epoch']:>7} "
                  f"{row['validation_per_epoch']:>9} {weights:<13} {NOTEBOOK[cell]}")
    print(f"\n{len(rows)} runs from MLflow params; array-fed: batch = ceil(n_train / steps) (TensorFlow's split), "
          f"generator-fed: batches of 128 drawn at random, validation_steps x 128 validation windows per epoch. "
          f"{time.perf_counter() - started:.0f} s.")
    print("RESULT " + json.dumps({"n_runs": len(rows), "runs": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
