"""Beyond the study: every model of experiments/beyond.toml and the answers to class imbalance,
against the summary-statistics baselines, without MLflow.

    python benchmarks/beyond.py --smarp                        # real SMARP windows, 1 seed
    python benchmarks/beyond.py --smarp --seeds 0 1 2          # mean and spread over 3 seeds
    python benchmarks/beyond.py                                # synthetic data (beyond.toml's)
    python benchmarks/beyond.py --smarp --models lstm minirocket --epochs 5
    python benchmarks/beyond.py --data data/smarp-store --set 'data.split={method="fold", test_folds=[4], validation_share=0.2}'
    python benchmarks/beyond.py --quick                        # seconds: checks the machinery, not skill

Protocol: the settings of experiments/beyond.toml (``--set section.key=value`` overrides
them; ``--epochs``/``--patience`` are shortcuts). ``--smarp`` reads the SMARP keyword tables
(``--smarp-data``, default ../shared/data/smarp/) as 16-step windows of AREA, USFLUX,
MEANGBZ, R_VALUE and splits them as experiments/smarp.toml does: folds 0-3 train, fold 4
tests, validation carved by region (20 %) from the training regions. Missing values and
scaling are fitted on training data only; every model and baseline chooses its decision
threshold on validation TSS; early stopping looks at validation loss; the test fold is used
for the final scores only. Seed ``s`` carves the validation regions and seeds the models.

Class imbalance: each model of ``--imbalance-models`` also runs with the other answers to
imbalance, each replacing the experiment's balanced class weights: ``unweighted`` (plain
cross-entropy), ``focal`` (focal loss, gamma 2) and ``balanced-sampling`` (half flares per
batch). The experiment's own run is ``class-weights``.

Prints one row per model and variant -- test TSS, HSS2, BSS (against the training event
rate), ROC-AUC, recall, precision, validation TSS, epochs and CPU seconds; means over the
seeds and the test TSS's standard deviation -- then ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "experiments" / "beyond.toml"
SMARP_DATA = REPO.parent / "shared" / "data" / "smarp"
SCORES = ("tss", "hss2", "bss", "roc_auc", "recall", "precision")
IMBALANCE = {
    "unweighted": {"training.class_weight": {}},
    "focal": {"training.class_weight": {}, "training.loss": "focal", "training.focal_gamma": 2.0},
    "balanced-sampling": {"training.class_weight": {}, "training.batching": "balanced"},
}


def smarp_overrides(folder: Path) -> dict:
    """experiments/smarp.toml's data settings, for the tables in ``folder``."""
    return {
        "data.path": str(folder / "smarp_*.csv"), "data.format": "table",
        "data.table": {"region_columns": ["prefix", "arpnum"], "time_column": "t_end",
                       "features": ["AREA", "USFLUX", "MEANGBZ", "R_VALUE"], "label_column": "label",
                       "window": 16, "cadence_minutes": 96},
        "data.split": {"method": "fold", "test_folds": [4], "validation_share": 0.2, "random_state": 0},
    }


def plan_runs(runs, imbalance_models, with_baselines: bool):
    """``(label, kind, config)`` for the baselines, every run, and the imbalance variants."""
    plan = []
    if with_baselines:
        for name in runs[0].baselines:
            plan.append((name, "baseline", runs[0].with_overrides({"model.name": name, "model.params": {}})))
    for config in runs:
        plan.append((config.model.name, "model", config))
        if config.model.name in imbalance_models:
            for variant, changes in IMBALANCE.items():
                plan.append((f"{config.model.name} {variant}", "model", config.with_overrides(changes)))
    return plan


def evaluate(plan, source, seed: int, echo) -> list[dict]:
    from flareseq.experiments.rundata import prepare_run_data
    from flareseq.experiments.single import fit_and_score
    from flareseq.models import count_unique_parameters

    rows, prepared = [], {}
    for label, kind, config in plan:
        split = dict(config.data.split)
        if "validation_share" in split:
            split["random_state"] = seed
        params = {"random_state": seed} if config.model.name == "gboost-summary" else dict(config.model.params)
        config = config.with_overrides({"data.split": split, "training.random_state": seed, "model.params": params})
        key = json.dumps(split, sort_keys=True)
        if key not in prepared:
            prepared[key] = prepare_run_data(config, source)
        data = prepared[key]
        started = time.process_time()
        forecaster, _, _, scores = fit_and_score(config, data, progress=False)
        estimator = forecaster.classifier
        history = getattr(estimator, "history_", None) or {}
        row = {"model": label, "kind": kind, "seed": seed, "epochs": len(history.get("loss", [])) or None,
               "n_parameters": count_unique_parameters(estimator.model_) if kind == "model" else None,
               "cpu_seconds": time.process_time() - started, "val_tss": scores.get("val_tss", math.nan),
               **{k: scores[f"test_{k}"] for k in SCORES}}
        rows.append(row)
        echo(f"  seed {seed} {label:<34} val TSS {row['val_tss']:.3f}  test TSS {row['tss']:.3f} HSS2 "
             f"{row['hss2']:.3f} BSS {row['bss']:.3f}  ({row['cpu_seconds']:.0f} CPU s, {row['epochs'] or '-'} epochs)")
    facts = prepared[next(iter(prepared))].facts
    echo(f"  seed {seed}: train {facts.get('n_train')}, validation {facts.get('n_validation')}, "
         f"test {facts.get('n_test')} samples")
    return rows


def summarise(rows: list[dict]) -> dict[str, dict]:
    out = {}
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == name]
        entry = {"kind": mine[0]["kind"], "n_parameters": mine[0]["n_parameters"], "n_seeds": len(mine)}
        for key in (*SCORES, "val_tss", "cpu_seconds", "epochs"):
            values = [r[key] for r in mine if r[key] is not None and not math.isnan(r[key])]
            entry[key] = statistics.fmean(values) if values else math.nan
        entry["tss_sd"] = statistics.stdev([r["tss"] for r in mine]) if len(mine) > 1 else math.nan
        out[name] = entry
    return out


def print_table(summary: dict[str, dict]) -> None:
    print(f"\n{'model':<34} {'params':>8} {'TSS':>6} {'+-sd':>5} {'HSS2':>6} {'BSS':>7} {'ROC-AUC':>7} "
          f"{'recall':>6} {'prec.':>6} {'val TSS':>7} {'epochs':>6} {'CPU s':>6}")
    for name, e in summary.items():
        params = f"{e['n_parameters']:,}" if e["n_parameters"] else "-"
        sd = "-" if math.isnan(e["tss_sd"]) else f"{e['tss_sd']:.3f}"
        epochs = "-" if math.isnan(e["epochs"]) else f"{e['epochs']:.0f}"
        print(f"{name:<34} {params:>8} {e['tss']:>6.3f} {sd:>5} {e['hss2']:>6.3f} {e['bss']:>7.3f} "
              f"{e['roc_auc']:>7.3f} {e['recall']:>6.3f} {e['precision']:>6.3f} {e['val_tss']:>7.3f} {epochs:>6} "
              f"{e['cpu_seconds']:>6.0f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="experiment file (default: %(default)s)")
    parser.add_argument("--data", help="data path (overrides data.path)")
    parser.add_argument("--smarp", action="store_true", help="the SMARP windows, split as experiments/smarp.toml")
    parser.add_argument("--smarp-data", default=str(SMARP_DATA), help="folder of smarp_0.csv ... smarp_4.csv")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--models", nargs="+", help="models of the experiment to run (default: all)")
    parser.add_argument("--imbalance-models", nargs="*", default=["lstm"],
                        help="models also run with the other answers to imbalance (default: lstm)")
    parser.add_argument("--epochs", type=int, help="maximum epochs (default: the experiment's)")
    parser.add_argument("--patience", type=int, help="early-stopping patience (default: the experiment's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default: 0)")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--quick", action="store_true", help="tiny models, 1 epoch, a fifth of the training data")
    args = parser.parse_args(argv)

    import torch

    from flareseq.experiments.grid import load_experiment
    from flareseq.experiments.rundata import load_source
    from flareseq.models import get_model_spec

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    overrides: dict = {"training.n_threads": args.threads, "training.device": args.device}
    if args.smarp:
        overrides.update(smarp_overrides(Path(args.smarp_data)))
    if args.data:
        overrides["data.path"] = args.data
    if args.epochs is not None:
        overrides["training.epochs"] = args.epochs
    if args.patience is not None:
        overrides["training.patience"] = args.patience
    if args.quick:
        overrides.update({"training.epochs": 1, "prep.train_fraction": 0.2, "prep.stratify": True})
    runs = [r.with_overrides(overrides) for r in load_experiment(args.config, overrides=args.overrides).runs]
    if args.models:
        known = [r.model.name for r in runs]
        if set(args.models) - set(known):
            raise SystemExit(f"--models {sorted(set(args.models) - set(known))} are not in {args.config}: {known}")
        runs = [r for r in runs if r.model.name in args.models]
    if args.quick:
        runs = [r.with_overrides({"model.params": dict(get_model_spec(r.model.name).test_params)}) for r in runs]
    source = load_source(runs[0].data, progress=False)
    dataset = source.dataset
    print(f"{dataset.n_samples} samples ({dataset.n_positive} positive) of {dataset.n_timesteps} steps x "
          f"{dataset.n_features} features from {source.description}", file=sys.stderr)
    plan = plan_runs(runs, set(args.imbalance_models), not args.no_baselines)
    rows = []
    for seed in args.seeds:
        rows += evaluate(plan, source, seed, echo=lambda line: print(line, file=sys.stderr))
    summary = summarise(rows)
    print_table(summary)
    print(f"\ntest scores, means over seeds {args.seeds}; thresholds chosen on validation TSS; "
          f"{runs[0].training.epochs} epochs at most, patience {runs[0].training.patience}, {args.threads} threads.\n"
          "BSS is against the training event rate, of uncalibrated probabilities: class weights and balanced "
          "sampling inflate them, which costs BSS even where TSS gains.")
    result = {
        "data": source.description, "n_samples": dataset.n_samples, "n_positive": dataset.n_positive,
        "seeds": args.seeds, "epochs": runs[0].training.epochs, "patience": runs[0].training.patience,
        "quick": args.quick, "overrides": args.overrides, "seconds": round(time.perf_counter() - started, 1),
        "models": {name: {k: (None if isinstance(v, float) and math.isnan(v) else
                              round(v, 4) if isinstance(v, float) else v) for k, v in e.items()}
                   for name, e in summary.items()},
    }
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
