"""Test-split skill of the six LSTM architectures and the baselines on synthetic data.

    python benchmarks/skill_synthetic.py                      # ~12,000 samples, a few minutes on 2 cores
    python benchmarks/skill_synthetic.py --n-samples 3000 --epochs 4 --models lstm

Protocol (the field's, SPEC section 3): synthetic samples (flareseq.data.synthetic, the
study's fold proportions) split by fold: fold 1 trains, fold 2 validates, fold 3 tests.
Missing values are interpolated and every split is scaled (signed log, then z-score) with
statistics of the training split only. Every model, the baselines included, gets the same
arrays. Each LSTM trains with RMSprop (Keras defaults), the study's class weights
{0: 1, 1: 5} (`--class-weight`), early stopping on validation TSS (best weights restored);
every decision threshold is chosen on validation data to maximise TSS, never on the test
split. BSS is against the training event rate: class weights inflate the probabilities of
events, which costs Brier skill even when TSS gains (`--class-weight none` shows the other
side). The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

MODEL_NAMES = ("lstm", "stacked-lstm", "embed-lstm", "tied-stacked-lstm", "embed-stacked-lstm",
               "embed-tied-stacked-lstm")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-samples", type=int, default=12_000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--class-weight", choices=["none", "balanced", "study"], default="study",
                        help="LSTM class weights: none, balanced, or the study's {0: 1, 1: 5}; weights shift the "
                        "probabilities away from the event rate, which costs Brier skill (the threshold is tuned anyway)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--random-state", type=int, default=0, help="seed of the models")
    args = parser.parse_args(argv)

    import torch

    from flareseq.data.synthetic import synthetic_dataset
    from flareseq.models import count_unique_parameters
    from flareseq.training.baselines import BASELINES
    from flareseq.training.estimator import FlareClassifier

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data = synthetic_dataset(args.n_samples, seed=args.seed)
    fold = data.meta["fold"].to_numpy()
    train, val, test = (data.subset(fold == k) for k in (1, 2, 3))
    # every model fills missing values and scales (signed log, z-score) with its own preparation,
    # fitted on the training part
    (Xtr, ytr), (Xva, yva), (Xte, yte) = ((d, d.y) for d in (train, val, test))
    print(f"synthetic data: {Xtr.n_samples} train / {Xva.n_samples} validation / {Xte.n_samples} test samples, event rates "
          f"{ytr.mean():.3f} / {yva.mean():.3f} / {yte.mean():.3f} ({time.perf_counter() - t0:.1f} s to prepare)",
          file=sys.stderr)

    class_weight = {"none": {}, "balanced": "balanced", "study": {0: 1, 1: 5}}[args.class_weight]
    rows = []
    for name in BASELINES:
        t = time.perf_counter()
        model = FlareClassifier(name, scaler="signed-log", progress=False).fit(Xtr, X_val=Xva)
        rows.append({"model": name, "kind": "baseline", "n_parameters": None, "epochs": None,
                     "fit_seconds": time.perf_counter() - t, **model.scores(Xte, yte)})
    for name in args.models:
        t = time.perf_counter()
        model = FlareClassifier(
            name, epochs=args.epochs, batch_size=args.batch_size, class_weight=class_weight, early_stopping=True,
            patience=args.patience, monitor="val_tss", threshold_metric="tss", scaler="signed-log",
            random_state=args.random_state, progress=sys.stderr.isatty(),
        ).fit(Xtr, X_val=Xva)
        rows.append({"model": name, "kind": "lstm", "n_parameters": count_unique_parameters(model.model_),
                     "epochs": len(model.history_["loss"]), "fit_seconds": time.perf_counter() - t,
                     **model.scores(Xte, yte)})
        print(f"  {name}: {rows[-1]['fit_seconds']:.0f} s", file=sys.stderr)

    print(f"\n{'model':<24} {'params':>7} {'epochs':>6} {'TSS':>6} {'HSS2':>6} {'BSS':>6} {'ROC-AUC':>7} "
          f"{'PR-AUC':>6} {'recall':>6} {'prec.':>6} {'thresh':>6} {'fit s':>6}")
    for r in rows:
        params = f"{r['n_parameters']:,}" if r["n_parameters"] else "-"
        epochs = str(r["epochs"]) if r["epochs"] else "-"
        print(f"{r['model']:<24} {params:>7} {epochs:>6} {r['tss']:>6.3f} {r['hss2']:>6.3f} {r['bss']:>6.3f} "
              f"{r['roc_auc']:>7.3f} {r['pr_auc']:>6.3f} {r['recall']:>6.3f} {r['precision']:>6.3f} "
              f"{r['threshold']:>6.3f} {r['fit_seconds']:>6.1f}")
    keys = ("tss", "hss2", "bss", "roc_auc", "pr_auc", "recall", "precision", "accuracy", "threshold", "fit_seconds")
    result = {
        "n_train": int(Xtr.n_samples), "n_val": int(Xva.n_samples), "n_test": int(Xte.n_samples),
        "test_event_rate": float(yte.mean()), "seconds": round(time.perf_counter() - t0, 1),
        "models": {r["model"]: {k: None if r[k] != r[k] else round(float(r[k]), 4) for k in keys} for r in rows},
    }
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
