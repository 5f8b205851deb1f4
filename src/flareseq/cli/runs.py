"""Commands of the main job: train, experiments, evaluate, predict, report, ui."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from flareseq.errors import ConfigError, FlareseqError


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train and score one run, tracked in MLflow")
    p.add_argument("--config", help="a run configuration (TOML); defaults otherwise")
    _add_run_options(p)
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("experiments", help="every run of an experiment file (resumable), then the report")
    p.add_argument("grid", help="an experiment file, e.g. experiments/study.toml")
    _add_run_options(p)
    p.add_argument("--no-baselines", action="store_true", help="skip the baseline runs")
    p.add_argument("--no-report", action="store_true", help="do not write the report afterwards")
    p.set_defaults(func=cmd_experiments)

    p = subparsers.add_parser("evaluate", help="score a run's model on labelled data")
    p.add_argument("run", help="a run id, a run name (in --experiment), or a saved model folder")
    p.add_argument("--data", required=True, help="labelled data: a store, Kaggle JSON lines or SWAN-SF")
    _add_tracking_options(p)
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    p.set_defaults(func=cmd_evaluate)

    p = subparsers.add_parser("predict", help="forecast new data with a run's model")
    p.add_argument("run", help="a run id, a run name (in --experiment), or a saved model folder")
    p.add_argument("--data", required=True, help="data to forecast (labels, if any, are ignored)")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--format", choices=("auto", "csv", "kaggle"), default="auto",
                   help="csv: id, probability, label; kaggle: the competition's Id,ClassLabel submission "
                        "(auto: kaggle for Kaggle JSON-lines input)")
    _add_tracking_options(p)
    p.set_defaults(func=cmd_predict)

    p = subparsers.add_parser(
        "compare", help="paired bootstrap of two runs on the same test samples (TSS, HSS2, PR-AUC)",
        description="Paired bootstrap of TSS, HSS2 and PR-AUC between two runs tested on the same samples, "
                    "resampling whole regions when the forecasts carry them, each run at its own threshold: "
                    "the difference (first - second), its interval and the share of resamples in which the "
                    "first scored higher.")
    p.add_argument("first", help="a run id or name (in --experiment)")
    p.add_argument("second", help="a run id or name (in --experiment)")
    _add_tracking_options(p)
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of the interval (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.set_defaults(func=cmd_compare)

    p = subparsers.add_parser("report", help="write the report (Markdown + HTML) of an experiment")
    _add_tracking_options(p)
    p.add_argument("--out", help="folder for the report (default: OUTPUT_DIR/reports/EXPERIMENT)")
    p.set_defaults(func=cmd_report)

    p = subparsers.add_parser("ui", help="the MLflow UI on 127.0.0.1, pointed at the tracking store")
    _add_tracking_options(p)
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(func=cmd_ui)


def _add_run_options(p) -> None:
    p.add_argument("--data", help="data path (overrides data.path): a store, Kaggle JSON lines, SWAN-SF, or tables")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a configuration value (repeatable), e.g. --set training.epochs=5")
    p.add_argument("--name", help="run name (train) or experiment name (experiments)")
    p.add_argument("--cv", type=int, metavar="K",
                   help="K-fold rotation (sets data.cv): each fold file, or region group, the test set in turn; "
                        "one parent run per configuration with a child run per fold")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--allow-leaky", action="store_true",
                   help="allow runs that leak the label into the inputs (the study's label-as-input runs, for "
                        "demonstration only); they are tagged leaky in MLflow and the report")


def _add_tracking_options(p) -> None:
    p.add_argument("--experiment", default="flareseq", help="MLflow experiment name (default: flareseq)")
    p.add_argument("--tracking-uri", default="", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or "
                                                      "a SQLite file in --output-dir)")
    p.add_argument("--output-dir", default="runs", help="where the default SQLite store lives (default: runs)")


def _overrides(args) -> list[str]:
    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.path={json.dumps(args.data)}")
    if getattr(args, "cv", None) is not None:
        overrides.append(f"data.cv={args.cv}")
    if getattr(args, "allow_leaky", False):
        overrides.append("allow_leaky=true")
    return overrides


# -- commands ----------------------------------------------------------------------------
def cmd_train(args) -> int:
    from flareseq.experiments.config import RunConfig, load_toml
    from flareseq.experiments.grid import expand_grid
    from flareseq.experiments.runner import make_tracker, run

    if args.config:
        values = load_toml(args.config)
        if "grid" in values:
            raise ConfigError(f"{args.config} defines a grid; run it with `flareseq experiments {args.config}`.")
        config = RunConfig.from_dict(values, where=args.config)
    else:
        config = RunConfig()
    config = expand_grid(config.to_dict(), overrides=_overrides(args), default_name=args.name or config.name).runs[0]
    if not config.name:  # named after the model the overrides chose, not the default's
        config = config.with_overrides({"name": config.model.name})
    tracker = make_tracker(config)
    result = run(config, tracker=tracker, progress=not args.no_progress,
                        echo=lambda line: print(line, file=sys.stderr))
    _print_scores(result.scores)
    if result.fold_scores:
        s = result.scores
        per_fold = " / ".join(f"{f['test_tss']:.3f}" for f in result.fold_scores)
        print(f"{len(result.fold_scores)}-fold rotation: the scores above are means over the test folds; test TSS "
              f"sd {s.get('test_tss_sd', float('nan')):.3f}, per fold {per_fold}; pooled out-of-fold test TSS "
              f"{s['pooled_test_tss']:.3f} [{s.get('pooled_test_tss_ci_low', float('nan')):.3f}, "
              f"{s.get('pooled_test_tss_ci_high', float('nan')):.3f}]")
    print(f"run {result.name} ({result.run_id}) recorded in {tracker.tracking_uri}, experiment "
          f"{config.tracking.experiment!r}")
    return 0


def cmd_experiments(args) -> int:
    from flareseq.experiments.grid import load_experiment
    from flareseq.experiments.report import write_experiment_report
    from flareseq.experiments.runner import make_tracker, run_experiment

    overrides = _overrides(args)
    experiment = load_experiment(args.grid, overrides=overrides)
    if args.name:
        experiment = load_experiment(args.grid, overrides=[*overrides, f"tracking.experiment={json.dumps(args.name)}"])
    _check_table_options(experiment)
    first = experiment.runs[0]
    print(f"experiment {first.tracking.experiment!r}: {len(experiment.runs)} run(s) from {args.grid}"
          + ("" if args.no_baselines else f" + {len(first.baselines)} baseline(s)"), file=sys.stderr)
    results = run_experiment(experiment, progress=not args.no_progress, with_baselines=not args.no_baselines,
                             echo=lambda line: print(line, file=sys.stderr))
    failed = [r for r in results if r.status == "FAILED"]
    tracker_uri = make_tracker(first).tracking_uri
    print(f"{len(results) - len(failed)} run(s) finished or already done, {len(failed)} failed; "
          f"tracking store {tracker_uri}", file=sys.stderr)
    if not args.no_report:
        out = Path(first.tracking.output_dir) / "reports" / first.tracking.experiment
        paths = write_experiment_report(tracker_uri, first.tracking.experiment, out)
        print(f"report: {paths.markdown}", file=sys.stderr)
        print(paths.html)
    return 1 if failed else 0


def _check_table_options(experiment) -> None:
    """Validate every distinct table spec and preparation of the grid before any run: a leaky
    feature, the label as an input or a bad option is the whole grid's error, not one failure
    per run."""
    from flareseq.data.tables.spec import TableSpec
    from flareseq.experiments.rundata import check_prep

    specs = {json.dumps(dict(r.data.table), sort_keys=True) for r in experiment.runs if r.data.format == "table"}
    for spec in specs:
        TableSpec.from_dict(json.loads(spec))
    for run in experiment.runs:
        check_prep(run.prep, allow_leaky=run.allow_leaky)


def cmd_evaluate(args) -> int:
    from flareseq.data import load_dataset
    from flareseq.evaluation import metrics

    forecaster = _load_forecaster(args)
    dataset = load_dataset(args.data).labelled()
    if dataset.n_samples == 0:
        raise FlareseqError(f"{args.data}: no labelled samples to evaluate on; use `flareseq predict` instead.")
    p = forecaster.predict_proba(dataset)
    climatology = forecaster.base_rate
    scores = metrics.all_scores(dataset.y, p, threshold=forecaster.threshold, climatology=climatology)
    if args.json:
        print(json.dumps(scores))
    else:
        _print_scores(scores)
    return 0


def cmd_predict(args) -> int:
    import pandas as pd

    from flareseq.data import detect_format, load_dataset

    forecaster = _load_forecaster(args)
    dataset = load_dataset(args.data)
    probability, label = forecaster.predict(dataset)
    kind = args.format
    if kind == "auto":
        kind = "kaggle" if detect_format(args.data) == "kaggle" else "csv"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "kaggle":
        frame = pd.DataFrame({"Id": dataset.ids, "ClassLabel": label})
    else:
        frame = pd.DataFrame({"id": dataset.ids, "probability": probability, "label": label})
    frame.to_csv(out, index=False)
    print(f"wrote {len(frame)} forecasts ({int(label.sum())} flare, threshold {forecaster.threshold:.3f}) to {out}")
    return 0


def cmd_compare(args) -> int:
    from flareseq.experiments.report import compare_runs
    from flareseq.experiments.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri, args.output_dir)
    results = compare_runs(uri, args.experiment, args.first, args.second, n_boot=args.n_boot, level=args.level,
                           random_state=args.seed)
    if args.json:
        print(json.dumps({m: {**vars(r), "verdict": r.verdict()} for m, r in results.items()}))
        return 0
    print(f"{args.first} - {args.second}, paired bootstrap ({args.n_boot} resamples, {100 * args.level:g} % interval):")
    for metric, r in results.items():
        print(f"  {metric:>6}: {r.first:.3f} - {r.second:.3f} = {r.difference:+.3f} [{r.low:+.3f}, {r.high:+.3f}], "
              f"P(first better) {r.p_first_better:.3f}: {r.verdict()}")
    return 0


def cmd_report(args) -> int:
    from flareseq.experiments.report import write_experiment_report
    from flareseq.experiments.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri, args.output_dir)
    out = Path(args.out) if args.out else Path(args.output_dir) / "reports" / args.experiment
    paths = write_experiment_report(uri, args.experiment, out)
    print(f"report: {paths.markdown}", file=sys.stderr)
    print(paths.html)
    return 0


def cmd_ui(args) -> int:
    import subprocess

    from flareseq.experiments.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri, args.output_dir)
    print(f"MLflow UI for {uri} on http://127.0.0.1:{args.port} (Ctrl-C to stop)", file=sys.stderr)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
               "--port", str(args.port)]
    return subprocess.call(command)


# -- helpers -------------------------------------------------------------------------------
def _load_forecaster(args):
    """A run's forecaster from a saved folder, a run id or a run name."""
    from flareseq.experiments.run_models import load_forecaster

    return load_forecaster(args.run, experiment=args.experiment, tracking_uri=args.tracking_uri,
                           output_dir=args.output_dir)


def _print_scores(scores: dict) -> None:
    keys = ("tss", "hss2", "bss", "precision", "recall", "f1", "accuracy", "roc_auc", "pr_auc", "brier")
    for prefix in ("val_", "test_", ""):
        row = [(k, scores.get(prefix + k)) for k in keys if scores.get(prefix + k) is not None]
        if row:
            label = {"val_": "validation", "test_": "test", "": "scores"}[prefix]
            print(f"{label:>10}: " + "  ".join(f"{k} {v:.3f}" for k, v in row))
    if "threshold" in scores:
        print(f"{'threshold':>10}: {scores['threshold']:.3f}")

