"""Data-parallel training on one machine: 2 processes (DDP, gloo, CPU) against 1, same model.

    python benchmarks/ddp.py                       # lstm, 4,096 samples, 2 epochs, global batch 256
    python benchmarks/ddp.py --world-size 2 --epochs 1 --n-samples 1024

The path past one machine (docs/scale.md) trains with PyTorch DistributedDataParallel. This
checks, on the smallest setting that has the parts (two processes, the gloo backend on the
CPU, started by ``torch.multiprocessing``), that it trains the model one process trains:

* the same data (synthetic, prepared by ``flareseq.prep.preparation.Preparation``), the same
  initial weights (seeded ``flareseq.models.build_model``), the same optimiser (Keras's
  RMSprop, ``flareseq.training.optim.make_optimizer``) and the same **global** batches in the
  same order (``flareseq.training.loop.BatchSampler``, one seed, on every rank);
* each of ``W`` ranks takes every W-th sample of each global batch and averages its loss
  over them; DDP averages the gradients over the ranks, which is the gradient of the mean
  loss over the whole batch: the single process's gradient, up to the order of the sums;
* dropout is 0: a dropout mask is random per process, so with dropout the two runs draw
  different masks and differ by design (they are still the same training procedure).

It prints the largest absolute difference between any weight of the two final models (and
the largest weight, for scale), the wall time of each, and ``RESULT {json}``; the CPU line
first. On 2 cores shared with other work the times say little; the difference is the point.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_info, cpu_line  # noqa: E402


def make_data(n_samples: int, seed: int):
    """Prepared float32 ``(n, 60, 25)`` inputs and 0/1 labels."""
    from flareseq.data.synthetic import synthetic_dataset
    from flareseq.prep.preparation import Preparation

    dataset = synthetic_dataset(n_samples, seed=seed)
    return Preparation("zscore").fit_transform(dataset), dataset.y.astype("float32")


def train(rank: int, world_size: int, args: argparse.Namespace, out: str, port: int) -> None:
    """Train on rank ``rank`` of ``world_size`` (1: plain, no process group) and save rank 0's weights."""
    import numpy as np
    import torch
    from torch.nn import functional as F

    from flareseq.models import build_model
    from flareseq.training.loop import BatchSampler
    from flareseq.training.optim import make_optimizer
    from flareseq.training.settings import TrainingSettings

    torch.set_num_threads(args.threads)
    X, y = make_data(args.n_samples, args.seed)
    torch.manual_seed(args.seed)  # the same initial weights on every rank
    model = build_model(args.model, X.shape[2], {"dropout": 0.0, "recurrent_dropout": 0.0})
    if world_size > 1:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
        net = DistributedDataParallel(model)  # also broadcasts rank 0's weights: equal anyway
    else:
        net = model
    optimizer = make_optimizer("rmsprop", net.parameters(), args.learning_rate)
    settings = TrainingSettings(batch_size=args.batch_size, random_state=args.seed)
    sampler = BatchSampler(y, settings, np.random.default_rng(args.seed))  # the global order, every rank alike
    started = time.perf_counter()
    n_seen = 0
    for _ in range(args.epochs):
        for index in sampler.epoch():
            mine = index[rank::world_size]  # this rank's share of the global batch
            logits = net(torch.from_numpy(X[mine]))
            # mean over the share; DDP's mean over ranks makes it the global batch's mean
            loss = F.binary_cross_entropy_with_logits(logits, torch.from_numpy(y[mine]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            n_seen += len(mine)
    seconds = time.perf_counter() - started
    if world_size > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    if rank == 0:
        torch.save({"state": model.state_dict(), "seconds": seconds, "n_seen": n_seen * world_size}, out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lstm")
    parser.add_argument("--n-samples", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256, help="the global batch (split over the ranks)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.batch_size % args.world_size or args.n_samples % args.batch_size:
        parser.error("--batch-size must divide --n-samples and be a multiple of --world-size: every rank's share "
                     "of every batch the same size, so that DDP's mean of means is the batch's mean")

    import torch
    import torch.multiprocessing as mp

    info = cpu_info()
    print(cpu_line(info))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="flareseq-ddp-") as tmp:
        single_out, ddp_out = str(Path(tmp) / "single.pt"), str(Path(tmp) / "ddp.pt")
        t0 = time.perf_counter()
        train(0, 1, args, single_out, 0)
        t1 = time.perf_counter()
        mp.spawn(train, args=(args.world_size, args, ddp_out, free_port()), nprocs=args.world_size, join=True)
        t2 = time.perf_counter()
        single, ddp = torch.load(single_out), torch.load(ddp_out)
    differences = {name: float((tensor - ddp["state"][name]).abs().max()) for name, tensor in single["state"].items()}
    max_difference = max(differences.values())
    largest = max(float(t.abs().max()) for t in single["state"].values())
    worst = max(differences, key=differences.get)
    steps = args.epochs * args.n_samples // args.batch_size
    print(f"{args.model}, {args.n_samples} samples (60, 25), {args.epochs} epoch(s) of global batch {args.batch_size} "
          f"({steps} steps), RMSprop, dropout 0, {args.threads} torch thread(s) per process")
    print(f"  1 process:               training {single['seconds']:6.1f} s ({t1 - t0:.1f} s with data and start-up)")
    print(f"  {args.world_size} processes (DDP, gloo): training {ddp['seconds']:6.1f} s ({t2 - t1:.1f} s with spawning)")
    print(f"  largest weight difference: {max_difference:.3g} (in {worst}; largest weight {largest:.3g})")
    result = {**info, "model": args.model, "world_size": args.world_size, "backend": "gloo",
              "n_samples": args.n_samples, "global_batch": args.batch_size, "epochs": args.epochs, "steps": steps,
              "max_weight_difference": max_difference, "largest_weight": largest,
              "single_train_s": round(single["seconds"], 2), "ddp_train_s": round(ddp["seconds"], 2),
              "single_wall_s": round(t1 - t0, 2), "ddp_wall_s": round(t2 - t1, 2),
              "samples_seen": [single["n_seen"], ddp["n_seen"]], "load_avg_before": round(load_before, 2),
              "cpus": os.cpu_count()}
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
