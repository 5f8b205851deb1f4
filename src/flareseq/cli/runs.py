"""Commands of the main job: train, experiments, evaluate, predict, compare, report (ui: cli/ui.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from flareseq.cli import add_command
from flareseq.cli.store import (
    StoreNotFoundError,
    add_store_options,
    existing_store_uri,
    store_overrides,
)
from flareseq.errors import ConfigError, FlareseqError


def register(subparsers) -> None:
    p = add_command(
        subparsers, "train", help="train and score one run, tracked in MLflow",
        description="Train one model on the train part of the data, choose its threshold (and calibration) on the "
        "validation part, score it on the test part, and record everything in MLflow: the configuration, "
        "per-epoch metrics, scores, forecasts, figures and the model. The configuration is the defaults, "
        "changed by --config FILE and then by every --set section.key=value (an unknown key is an error that "
        "names the closest valid ones; the keys are documented in flareseq.experiments.config). `flareseq "
        "models` lists the architectures.",
        examples=["flareseq train --set model.name=stacked-lstm --set training.epochs=5",
                  "flareseq train --data data/store --set model.name=logistic-summary --output-dir runs",
                  "flareseq train --config my-run.toml --cv 3"],
    )
    p.add_argument("--config", metavar="FILE.toml", help="a run configuration (TOML); defaults otherwise")
    _add_run_options(p)
    add_store_options(p, writes=True)
    p.set_defaults(func=cmd_train)

    p = add_command(
        subparsers, "experiments", help="every run of an experiment file (resumable), then the report",
        description="Run every configuration of an experiment file (its [grid] crossed, its [grid.zip] zipped) "
        "and the baselines, each recorded in MLflow, then write the report. Resumable: a run whose configuration "
        "already finished in the experiment is skipped; a failed run is recorded and the grid goes on. --set "
        "overrides hold for every run and win over the grid.",
        examples=["flareseq experiments experiments/default.toml --data data/store",
                  "flareseq experiments experiments/study.toml --set training.epochs=2 --output-dir study-runs",
                  "flareseq experiments experiments/smarp.toml --cv 5"],
    )
    p.add_argument("grid", help="an experiment file, e.g. experiments/study.toml")
    _add_run_options(p)
    p.add_argument("--no-baselines", action="store_true", help="skip the baseline runs")
    p.add_argument("--only", metavar="PATTERNS",
                   help="run only the runs whose names match these comma-separated patterns (fnmatch: * and ?), "
                        "e.g. --only 'lstm-c*,baseline-logistic-last'")
    p.add_argument("--no-report", action="store_true", help="do not write the report afterwards")
    add_store_options(p, writes=True, experiment=False)
    p.set_defaults(func=cmd_experiments)

    p = add_command(
        subparsers, "evaluate", help="score a run's model on labelled data",
        description="Forecast labelled data with a run's model (at the run's own threshold and calibration) "
        "and print every score: TSS, HSS2, BSS, precision, recall, F1, accuracy, ROC-AUC, PR-AUC, Brier. Data "
        "the run has seen (the store it was trained on, or samples of its training or validation part) is "
        "scored on the run's own test split only, and says so; --all scores everything, with a warning.",
        examples=["flareseq evaluate lstm --experiment default --output-dir demo-output --data data/new-store",
                  "flareseq evaluate lstm --experiment default --data fold3Training.json --json",
                  "flareseq evaluate saved-model/ --data data/new-store"],
    )
    p.add_argument("run", help="a run id, a run name (in --experiment), or a saved model folder")
    p.add_argument("--data", required=True, help="labelled data: a store, Kaggle JSON lines or SWAN-SF")
    add_store_options(p)
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    p.add_argument("--all", action="store_true",
                   help="score every labelled sample, even those the run trained or validated on (with a warning)")
    p.set_defaults(func=cmd_evaluate)

    p = add_command(
        subparsers, "predict", help="forecast new data with a run's model",
        description="Forecast data with a run's model and write one row per sample: id, probability, label "
        "(the run's validation-chosen threshold), or Kaggle's Id,ClassLabel submission layout.",
        examples=["flareseq predict lstm --experiment default --output-dir demo-output --data testSet.json "
                  "--out submission.csv",
                  "flareseq predict saved-model/ --data data/new-store --out forecasts.csv --format csv"],
    )
    p.add_argument("run", help="a run id, a run name (in --experiment), or a saved model folder")
    p.add_argument("--data", required=True, help="data to forecast (labels, if any, are ignored)")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--format", choices=("auto", "csv", "kaggle"), default="auto",
                   help="csv: id, probability, label; kaggle: the competition's Id,ClassLabel submission "
                        "(auto: kaggle for Kaggle JSON-lines input)")
    add_store_options(p)
    p.set_defaults(func=cmd_predict)

    p = add_command(
        subparsers, "compare", help="paired bootstrap of two runs on the same test samples (TSS, HSS2, PR-AUC)",
        description="Paired bootstrap of TSS, HSS2 and PR-AUC between two runs tested on the same samples, "
                    "resampling whole regions when the forecasts carry them, each run at its own threshold: "
                    "the difference (first - second), its interval and the share of resamples in which the "
                    "first scored higher.",
        examples=["flareseq compare embed-lstm baseline-logistic-summary --experiment default --output-dir demo-output",
                  "flareseq compare lstm-c1 lstm-c2 --experiment study --n-boot 5000 --json"],
    )
    p.add_argument("first", help="a run id or name (in --experiment)")
    p.add_argument("second", help="a run id or name (in --experiment)")
    add_store_options(p)
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of the interval (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.set_defaults(func=cmd_compare)

    p = add_command(
        subparsers, "report", help="write the report (Markdown + HTML) of an experiment",
        description="Write the report of an experiment from what its runs logged in MLflow: every run's test "
        "scores (runs ranked by validation TSS), the best model against the best baseline (paired bootstrap), "
        "intervals, calibration, the study's figures, and the figures. report.html is one self-contained file "
        "(figures embedded) that opens offline; report.md links its figures. Prints the HTML page's path.",
        examples=["flareseq report --experiment default",
                  "flareseq report --experiment study --output-dir demo-output --out study-report/"],
    )
    add_store_options(p)
    p.add_argument("--out", help="folder for the report (default: OUTPUT_DIR/reports/EXPERIMENT)")
    p.set_defaults(func=cmd_report)


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


def _overrides(args) -> list[str]:
    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.path={json.dumps(args.data)}")
    if getattr(args, "cv", None) is not None:
        overrides.append(f"data.cv={args.cv}")
    if getattr(args, "allow_leaky", False):
        overrides.append("allow_leaky=true")
    # The store options last: on the command line they are the user's latest word.
    return [*overrides, *store_overrides(args)]


# -- commands ----------------------------------------------------------------------------
def cmd_train(args) -> int:
    from flareseq.cli import config_check
    from flareseq.experiments.config import RunConfig, load_toml
    from flareseq.experiments.grid import expand_grid

    # The configuration is read and checked before torch, MLflow and the data load: a typo
    # is answered at once.
    config_check.check_overrides(_overrides(args))
    if args.config:
        values = load_toml(args.config)
        if "grid" in values:
            raise ConfigError(f"{args.config} defines a grid; run it with `flareseq experiments {args.config}`.")
        config_check.check_file_keys(values, args.config)
        config = RunConfig.from_dict(values, where=args.config)
    else:
        config = RunConfig()
    config = expand_grid(config.to_dict(), overrides=_overrides(args), default_name=args.name or config.name).runs[0]
    if not config.name:  # named after the model the overrides chose, not the default's
        config = config.with_overrides({"name": config.model.name})
    config_check.check_model_names([config])
    from flareseq.experiments.runner import make_tracker, run

    tracker = make_tracker(config)
    dead = tracker.mark_dead_runs()
    if dead:
        print(f"marked {len(dead)} run(s) whose process had ended as KILLED: {', '.join(dead)}", file=sys.stderr)
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
    from flareseq.cli import config_check
    from flareseq.experiments.config import load_toml
    from flareseq.experiments.grid import load_experiment

    # Checked before torch, MLflow and the data load (see cmd_train).
    overrides = _overrides(args)
    config_check.check_overrides(overrides)
    config_check.check_file_keys(load_toml(args.grid), args.grid)
    experiment = load_experiment(args.grid, overrides=overrides)
    if args.name:
        experiment = load_experiment(args.grid, overrides=[*overrides, f"tracking.experiment={json.dumps(args.name)}"])
    _check_table_options(experiment)
    config_check.check_model_names(experiment.runs)
    from flareseq.experiments.report import write_experiment_report
    from flareseq.experiments.runner import make_tracker, run_experiment

    first = experiment.runs[0]
    print(f"experiment {first.tracking.experiment!r}: {len(experiment.runs)} run(s) from {args.grid}"
          + ("" if args.no_baselines else f" + {len(first.baselines)} baseline(s)"), file=sys.stderr)
    only = [p.strip() for p in args.only.split(",") if p.strip()] if args.only else None
    results = run_experiment(experiment, progress=not args.no_progress, with_baselines=not args.no_baselines,
                             echo=lambda line: print(line, file=sys.stderr), only=only)
    failed = [r for r in results if r.status == "FAILED"]
    tracker_uri = make_tracker(first).tracking_uri
    print(f"{len(results) - len(failed)} run(s) finished or already done, {len(failed)} failed; "
          f"tracking store {tracker_uri}", file=sys.stderr)
    if not args.no_report:
        out = Path(first.tracking.output_dir) / "reports" / first.tracking.experiment
        paths = write_experiment_report(tracker_uri, first.tracking.experiment, out)
        _print_report_paths(paths, out.parent)
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
    dataset, scope, warning = _evaluation_scope(args, dataset)
    p = forecaster.predict_proba(dataset)
    climatology = forecaster.base_rate
    scores = metrics.all_scores(dataset.y, p, threshold=forecaster.threshold, climatology=climatology)
    if args.json:
        print(json.dumps({**scores, "scope": scope, **({"warning": warning} if warning else {})}))
    else:
        print(f"scored: {scope}")
        if warning:
            print(f"warning: {warning}")
        _print_scores(scores)
    return 0


def _evaluation_scope(args, dataset):
    """Data the run has seen (its own store, or samples of its training or validation part)
    is scored on the run's own test split, unless ``--all``; returns the data to score, what
    it is, and a warning for scores that include seen samples."""
    import numpy as np

    from flareseq.experiments.run_models import load_run_split, sample_keys

    split = load_run_split(args.run, experiment=args.experiment, tracking_uri=args.tracking_uri,
                           output_dir=args.output_dir)
    everything = f"all {dataset.n_samples} labelled samples of {args.data}"
    if split is None:
        return dataset, everything + " (a saved model folder records no split)", ""
    if not split.digests:
        return dataset, everything + " (the run recorded no split to compare with)", ""
    keys = np.asarray(sample_keys(dataset))
    seen = np.isin(keys, list(split.seen()))
    if not seen.any():
        return dataset, everything + " (none of them seen by the run)", ""
    why = f"{int(seen.sum())} sample(s) the run trained or validated on"
    if args.all:
        return dataset, everything, (f"{args.data} holds {why}: these scores include samples the model has "
                                     "seen and overstate its skill; without --all only its test split is scored.")
    test = np.isin(keys, list(split.digests.get("test", ())))
    if not test.any():
        raise FlareseqError(f"{args.data} holds {why}, and none of the run's test samples: there is nothing unseen "
                            "to score. Give other data, or --all to score everything anyway.")
    return dataset.subset(test), (f"the run's own test split: {int(test.sum())} of {dataset.n_samples} samples "
                                  f"({args.data} holds {why}; --all scores everything)"), ""


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
    uri = existing_store_uri(args)
    from flareseq.experiments.report import compare_runs

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
    uri = existing_store_uri(args)
    from flareseq.experiments.report import require_experiment, write_experiment_report

    require_experiment(uri, args.experiment)
    out = Path(args.out) if args.out else Path(args.output_dir) / "reports" / args.experiment
    paths = write_experiment_report(uri, args.experiment, out)
    _print_report_paths(paths, None if args.out else out.parent)
    return 0


def _print_report_paths(paths, reports_dir: Path | None) -> None:
    """Say where the report is (the HTML page last, on stdout); refresh the index of the
    reports folder (each experiment's headline) when the report went to the default place."""
    print(f"report: {paths.markdown}", file=sys.stderr)
    if reports_dir is not None:
        from flareseq.reporting.index import write_reports_index

        index = write_reports_index(reports_dir)
        if index is not None:
            print(f"index of the reports: {index}", file=sys.stderr)
    print(paths.html)


# -- helpers -------------------------------------------------------------------------------
def _load_forecaster(args):
    """A run's forecaster from a saved folder, a run id or a run name."""
    if not Path(args.run).is_dir():
        try:
            existing_store_uri(args)  # a run id or name: the store must exist, not be made afresh
        except StoreNotFoundError as exc:
            raise StoreNotFoundError(f"{args.run!r} is not a saved model folder (there is no folder at that path), "
                                     f"and not a run of a tracking store: {exc}") from None
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

