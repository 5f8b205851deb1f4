"""How experiments/smarp.toml's training settings were chosen: one change at a time to `lstm`,
each judged on the four validation folds (each training fold 0-3 in turn validates a model
trained on the other three; the test fold 4 is never looked at).

    python benchmarks/smarp_settings.py                  # the variants of docs/smarp.md, ~6 min on 2 cores
    python benchmarks/smarp_settings.py --models lstm stacked-lstm --variants first chosen

Every variant is ``benchmarks/smarp.py --validation-folds 0 1 2 3`` with ``--set`` overrides
on top of experiments/smarp.toml, run in this process; logistic regression on summary
statistics is scored on the same folds as the reference. Prints mean and standard deviation
of validation TSS over the four folds per variant, then ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# id -> (what it is, overrides of experiments/smarp.toml, which trains without class weights or signed-log)
VARIANTS = {
    "first": ("the file's first settings: balanced class weights, signed-log",
              ["training.class_weight=balanced", "prep.scaler=signed-log"]),
    "first-tss": ("first + early stopping on validation TSS",
                  ["training.class_weight=balanced", "prep.scaler=signed-log", "training.monitor=val_tss"]),
    "unweighted": ("no class weights (signed-log kept)", ["prep.scaler=signed-log"]),
    "unweighted-tss": ("no class weights + stop on val TSS", ["prep.scaler=signed-log", "training.monitor=val_tss"]),
    "hidden64": ("... + hidden size 64",
                 ["prep.scaler=signed-log", "training.monitor=val_tss", "model.params={hidden_size=64}"]),
    "patience10": ("... + patience 10", ["prep.scaler=signed-log", "training.monitor=val_tss", "training.patience=10"]),
    "focal-tss": ("focal loss + stop on val TSS",
                  ["prep.scaler=signed-log", "training.monitor=val_tss", "training.loss=focal"]),
    "unweighted-tss-nolog": ("no class weights + stop on val TSS, no signed-log", ["training.monitor=val_tss"]),
    "chosen": ("chosen: no class weights, no signed-log (experiments/smarp.toml)", []),
}


def _smarp_benchmark():
    spec = importlib.util.spec_from_file_location("smarp_benchmark", HERE / "smarp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_variant(smarp, overrides: list[str], models: list[str], folds: list[str], threads: int,
                baselines: bool, extra: list[str]) -> dict:
    argv = ["--models", *models, "--validation-folds", *folds, "--threads", str(threads), *extra]
    argv += [] if baselines else ["--no-baselines"]
    for item in overrides:
        argv += ["--set", item]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if smarp.main(argv) != 0:
            raise SystemExit(f"benchmarks/smarp.py failed for {overrides}")
    return json.loads(out.getvalue().strip().splitlines()[-1].removeprefix("RESULT "))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="the variants to run (default all)")
    parser.add_argument("--models", nargs="+", default=["lstm"], help="sequence models (default lstm)")
    parser.add_argument("--validation-folds", nargs="+", default=["0", "1", "2", "3"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="the machinery only (smarp.py --quick)")
    parser.add_argument("--data", help="folder of smarp_0.csv ... smarp_4.csv (default: smarp.py's)")
    args = parser.parse_args(argv)
    chosen = {name: VARIANTS[name] for name in (args.variants or VARIANTS)}
    extra = (["--quick"] if args.quick else []) + (["--data", args.data] if args.data else [])

    smarp = _smarp_benchmark()
    rows, reference = {}, None
    for i, (name, (what, overrides)) in enumerate(chosen.items()):
        print(f"[{i + 1}/{len(chosen)}] {name}: {what}", file=sys.stderr)
        result = run_variant(smarp, overrides, args.models, args.validation_folds, args.threads,
                             baselines=reference is None, extra=extra)
        if reference is None:
            reference = result["models"].get("logistic-summary")
        rows[name] = {m: {"val_tss": result["models"][m]["val_tss"], "val_tss_sd": result["models"][m]["val_tss_sd"],
                          "epochs": result["models"][m]["epochs"]} for m in args.models}

    print(f"\nmean validation TSS over folds {args.validation_folds} (test fold untouched)")
    print(f"{'variant':<16} " + " ".join(f"{m:>22}" for m in args.models))
    for name, by_model in rows.items():
        print(f"{name:<16} " + " ".join(f"{by_model[m]['val_tss']:>13.3f} +- {by_model[m]['val_tss_sd']:.3f}"
                                         for m in args.models))
    if reference:
        print(f"{'logistic-summary':<16} {reference['val_tss']:>13.3f} +- {reference['val_tss_sd']:.3f}")
    print("RESULT " + json.dumps({"validation_folds": args.validation_folds, "models": args.models, "variants": rows,
                                  "logistic_summary_val_tss": reference and reference["val_tss"],
                                  "overrides": {n: chosen[n][1] for n in rows}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
