"""`make demo`: the main job on embedded synthetic data, end to end, in a few minutes.

1. synthesize Kaggle-layout JSON lines and ingest them into a store (printing its summary);
2. run ``experiments/study-fixed.toml`` (the study with its data flaws fixed) and
   ``experiments/study.toml`` (the study's notebook, 18 runs), with baselines, reduced in size;
   the study's report sets the two side by side;
3. run ``experiments/default.toml`` (the recommended set-up, 6 runs + baselines), reduced;
4. write the reports and an index page (each experiment's best model against its best
   baseline, with the paired verdict, and links), and print the index's path as the last line.

The reductions are overrides, printed as they apply: the study's steps per epoch
(100/300/500), epochs (10/20/30) and validation steps (50/100/200) become 10, 2 and 5 for all
three zipped configurations, so those differ only in their class weights; the default grid
trains at most 4 epochs. Nothing else changes: the same splits, sampling, preparation,
tracking and reports as a full run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from flareseq.data import ingest as ingest_module
from flareseq.data.summary import summarize
from flareseq.data.synthetic import write_synthetic_kaggle
from flareseq.experiments.grid import load_experiment
from flareseq.experiments.report import write_experiment_report
from flareseq.experiments.runner import make_tracker, run_experiment
from flareseq.reporting.index import write_index

REPO_ROOT = Path(__file__).resolve().parents[2]
STUDY_REDUCTION = ["training.steps_per_epoch=10", "training.epochs=2", "training.validation_steps=5"]
DEFAULT_REDUCTION = ["training.epochs=4", "training.patience=2"]
# run in this order: the study's report shows study-fixed beside it when that exists
EXPERIMENTS = (("study-fixed", STUDY_REDUCTION), ("study", STUDY_REDUCTION), ("default", DEFAULT_REDUCTION))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flareseq.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo-output", help="folder for data, MLflow runs and reports")
    parser.add_argument("--n-samples", type=int, default=6000, help="synthetic samples (all three folds)")
    parser.add_argument("--experiments-dir", default=str(REPO_ROOT / "experiments"),
                        help="where study.toml and default.toml are")
    args = parser.parse_args(argv)
    from flareseq.errors import show_warnings_plainly

    show_warnings_plainly()
    started = time.perf_counter()
    out = Path(args.out).resolve()
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)

    say(f"1/4 synthesizing {args.n_samples} samples and ingesting them into a store")
    raw = data_dir / "synthetic.jsonl"
    if not raw.exists():
        write_synthetic_kaggle(raw, args.n_samples, seed=2019)
    store = data_dir / "store"
    report = ingest_module.ingest([raw], store, overwrite=True)
    say(report.summary())
    from flareseq.data import read_store

    say("summary: " + json.dumps(summarize(read_store(store, aux=False))))

    tracking = [f"tracking.output_dir={json.dumps(str(out))}"]
    reports = {}
    for name, reduction in EXPERIMENTS:
        step = 3 if name == "default" else 2
        path = Path(args.experiments_dir) / f"{name}.toml"
        experiment = load_experiment(path, overrides=[f"data.path={json.dumps(str(store))}", *tracking, *reduction])
        say(f"{step}/4 experiments/{path.name}: {len(experiment.runs)} runs + baselines (reduced: {' '.join(reduction)})")
        results = run_experiment(experiment, progress=False, echo=say)
        failed = [r.name for r in results if r.status == "FAILED"]
        if failed:
            say(f"failed runs: {failed}")
        first = experiment.runs[0]
        uri = make_tracker(first).tracking_uri
        reports[name] = write_experiment_report(uri, first.tracking.experiment, out / "reports" / name)
        say(f"report of {name}: {reports[name].html}")

    say("4/4 writing the index")
    index = write_index(out, {name: paths.html for name, paths in reports.items()}, title="flareseq demo",
                        meta={"MLflow tracking store": uri, "browse it": f"flareseq ui --output-dir {out}",
                              "data": f"{args.n_samples} synthetic samples, store {store}"})
    say(f"done in {time.perf_counter() - started:.0f} s; MLflow store {uri} (browse: flareseq ui --output-dir {out})")
    print(index)
    return 0


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
