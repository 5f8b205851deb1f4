"""``benchmarks/smarp.py --cv K --nested``: the nested rotation table and its paired comparison.

Kept apart from smarp.py (which parses the arguments and loads the windows) so that each file
stays readable. Every "best" here is a nested pick (flareseq.experiments.rotation.nested_cross_validate):
chosen per outer fold on that fold's validation TSS, the validation part carved by region from
its training folds; the outer test fold is used for nothing but the scores.
"""

from __future__ import annotations

import math
import statistics
import sys
import time

TABLE_SCORES = ("test_tss", "test_hss2", "test_roc_auc", "test_pr_auc", "test_bss")
STACK = "stack(wide-deep-lstm+logistic-last)"


def plan_runs(args, runs) -> tuple[list, dict[str, list[str]], dict[str, list[str]], dict[str, str]]:
    """The configurations to rotate, the nested picks (name -> candidates) and the stacks."""
    from flareseq.models import get_model_spec

    base = runs[0].with_overrides({"training.random_state": args.seed})
    configs, kinds = [], {}

    def add(kind: str, config, name: str) -> None:
        if args.quick and kind != "baseline":
            config = config.with_overrides({"model.params": {**dict(get_model_spec(config.model.name).test_params),
                                                             **dict(config.model.params)}})
        configs.append(config.with_overrides({"name": name}))
        kinds[name] = kind

    for name in base.baselines:
        params = {"random_state": args.seed} if name.startswith("gboost") else {}
        add("baseline", base.with_overrides({"model.name": name, "model.params": params}), name)
    for run in runs:
        add("study", run.with_overrides({"training.random_state": args.seed}), run.model.name)
    for name in args.beyond:
        add("beyond", base.with_overrides({"model.name": name, "model.params": {}}), name)
    add("new", base.with_overrides({"model.name": "wide-deep-lstm", "model.params": {}}), "wide-deep-lstm")
    if args.differences:
        add("new", base.with_overrides({"model.name": "wide-deep-lstm", "model.params": {"differences": True}}),
            "wide-deep-lstm+diff")
    stacks = {STACK: ["wide-deep-lstm", "logistic-last"]}
    kinds[STACK] = "new"
    by_kind = {kind: [n for n, k in kinds.items() if k == kind] for kind in ("baseline", "study", "beyond", "new")}
    groups = {"best-baseline": by_kind["baseline"], "best-study-model": by_kind["study"]}
    if by_kind["beyond"]:
        groups["best-beyond-study"] = by_kind["beyond"]
    groups["best-sequence-model"] = by_kind["study"] + by_kind["beyond"] + by_kind["new"]
    return configs, groups, stacks, kinds


def fold_table(results, names, kinds, chosen) -> dict[str, dict]:
    """Per row: mean and sd over folds of each score, the mean validation TSS, and for a pick what it chose."""
    rows = {}
    for name in names:
        folds = results[name].fold_scores
        row = {"kind": kinds.get(name, "nested pick"), "val_tss": statistics.fmean(s["val_tss"] for s in folds)}
        for key in TABLE_SCORES:
            values = [float(s.get(key, math.nan)) for s in folds]
            row[key] = statistics.fmean(values)
            row[f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else math.nan
        row["test_tss_by_fold"] = [round(float(s["test_tss"]), 4) for s in folds]
        if name in chosen:
            row["chosen"] = chosen[name]
        rows[name] = row
    return rows


def print_table(rows: dict[str, dict], file=sys.stdout) -> None:
    print(f"\n{'model':<37} " + " ".join(f"{h:>15}" for h in ("TSS", "HSS2", "ROC-AUC", "PR-AUC", "BSS (Platt)"))
          + "  val TSS", file=file)
    for name, row in rows.items():
        cells = [f"{row[k]:.3f} +- {row[f'{k}_sd']:.3f}" for k in TABLE_SCORES]
        print(f"{name:<37} " + " ".join(f"{c:>15}" for c in cells) + f"  {row['val_tss']:.3f}", file=file)


def pick_label(chosen: list[str]) -> str:
    """One name when every fold chose the same, else the choices per fold."""
    return chosen[0] if len(set(chosen)) == 1 else "/".join(chosen)


def paired(results, first: str, second: str, *, seed: int):
    """Paired bootstrap by region of two pooled out-of-fold forecasts (flareseq's own)."""
    from flareseq.evaluation.verification import compare_predictions

    return compare_predictions(results[first].predictions, results[second].predictions, names=(first, second),
                               random_state=seed)


def print_paired(label: str, comparison, file=sys.stdout) -> None:
    print(f"paired bootstrap by region, {label} (pooled out-of-fold forecasts):", file=file)
    for metric, r in comparison.items():
        print(f"  {metric:>6}: {r.difference:+.3f} [{r.low:+.3f}, {r.high:+.3f}], P(model better) "
              f"{r.p_first_better:.3f}: {r.verdict()}", file=file)


def main_nested(args, runs, source, started: float) -> dict:
    from flareseq.experiments.rotation import nested_cross_validate

    configs, groups, stacks, kinds = plan_runs(args, runs)

    def echo(line):
        print(line, file=sys.stderr, flush=True)

    nested = nested_cross_validate(configs, args.cv, groups=groups, stacks=stacks, source=source, progress=False,
                                   echo=echo)
    results = nested.results
    names = [c.name for c in configs] + list(stacks) + list(groups)
    rows = fold_table(results, names, kinds, nested.chosen)
    print_table(rows)
    print(f"\nmeans +- sd over the {args.cv} outer test folds; BSS after Platt calibration on validation. Nested picks "
          "(chosen per outer fold on its inner validation TSS):")
    for name, chosen in nested.chosen.items():
        print(f"  {name:<22} {chosen}")
    regions = nested.n_validation_regions.get("logistic-last", {})
    print(f"inner validation regions per fold (disjoint from the fold's test regions, checked): {regions}")

    comparisons = {"best-sequence-model vs best-baseline": paired(results, "best-sequence-model", "best-baseline",
                                                                  seed=args.seed)}
    for name in ("wide-deep-lstm", STACK, "best-study-model"):
        comparisons[f"{name} vs best-baseline"] = paired(results, name, "best-baseline", seed=args.seed)
    for label, comparison in comparisons.items():
        print_paired(label, comparison)
    head = comparisons["best-sequence-model vs best-baseline"]
    model, baseline = rows["best-sequence-model"], rows["best-baseline"]
    result = {
        "best_model": pick_label(model["chosen"]), "best_model_tss": model["test_tss"],
        "best_model_tss_sd": model["test_tss_sd"],
        "best_baseline": pick_label(baseline["chosen"]), "best_baseline_tss": baseline["test_tss"],
        "best_baseline_tss_sd": baseline["test_tss_sd"],
        "paired_tss_diff": head["tss"].difference, "paired_tss_low": head["tss"].low,
        "paired_tss_high": head["tss"].high, "paired_tss_p": head["tss"].p_first_better,
        "paired_hss2_diff": head["hss2"].difference, "paired_hss2_p": head["hss2"].p_first_better,
        "paired_prauc_diff": head["pr_auc"].difference, "paired_prauc_low": head["pr_auc"].low,
        "paired_prauc_high": head["pr_auc"].high, "paired_prauc_p": head["pr_auc"].p_first_better,
        "n_windows": source.dataset.n_samples, "n_windows_positive": source.dataset.n_positive, "cv": args.cv,
        "nested": True, "selection": "per outer fold, inner validation TSS", "quick": args.quick,
        "overrides": args.overrides, "chosen": nested.chosen,
        "paired": {label: {m: {"difference": r.difference, "low": r.low, "high": r.high,
                               "p_model_better": r.p_first_better} for m, r in c.items()}
                   for label, c in comparisons.items()},
        "models": rows, "seconds": time.perf_counter() - started,
    }
    return result  # smarp.py prints it as its RESULT line
