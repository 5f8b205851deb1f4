"""Training and inference throughput of every architecture, against Keras 3 / TensorFlow.

    python benchmarks/train.py                 # all six models, 2 threads, (60, 25), batch 256
    python benchmarks/train.py --models lstm --batches 20 --repeats 2
    python benchmarks/train.py --emulate-isa avx2   # as on an AVX2-only CPU (benchmarks/machine.py)
    python benchmarks/train.py --device cuda --no-keras --models lstm stacked-lstm

For each registered LSTM architecture and two settings, the study's (dropout 0.2, recurrent
dropout 0.2: the time loop in C, ``flareseq._lstm``, its copy for the CPU's instruction set;
on a GPU an autograd loop) and without recurrent dropout (torch's fused kernel), it
measures:

* training samples/s: one epoch of flareseq's real loop (`flareseq.training.loop.train_model`,
  RMSprop, BCE, per-epoch metrics) over `--batches` batches of random data, against
  `model.fit` of the same architecture in Keras 3 on TensorFlow (RMSprop, binary
  cross-entropy, accuracy and recall metrics as the study compiled it), same data, batch,
  thread count;
* inference samples/s: `predict_logits` vs `model.predict`, same batch size;
* ``cpu-ratio``: the training ratio in samples per CPU-second of each framework's process
  (all its threads), which a shared machine distorts much less than wall time; with one
  thread on an idle machine it equals the wall-time ratio (with more threads it also
  charges spin-waiting).

Each figure is the best of `--repeats` runs (the machine is shared: the best run is the one
least disturbed), after a warm-up epoch; flareseq's and Keras's runs alternate, so both see
the same load. Keras runs in a child process of this script that answers requests (its own
thread pools: TensorFlow and torch in one process disturb each other). TensorFlow comes with
the optional extra (`pip install 'flareseq[bench]'`); without it the Keras column is
skipped and said so.

Recurrent-dropout paths (``--no-paths`` skips): one KerasLSTM layer's forward and backward
on one (256, 60, F) batch, in thread CPU time (what a loaded machine distorts least), one
thread, best of 7, the paths interleaved: each copy of the C loop this CPU runs (avx512,
avx2, generic), the autograd loop, and the fused kernel without recurrent dropout (the
floor). On a GPU: wall time of the autograd loop and the fused kernel.

The CPU model and its vector flags (``cpu``, ``cpu_flags``), the time loop that trained
(``rd_loop``) and torch's kernel level (``torch_cpu_capability``) are in the output and in
``RESULT``. ``--emulate-isa avx2`` (or ``generic``) re-runs the script with the instruction
sets above that switched off in torch, oneDNN, MKL and flareseq (see benchmarks/machine.py).

GFLOP/s: an LSTM step costs 2 * 4H * (I + H) FLOPs per sample for its two matmuls (4 gates,
H units, I inputs); a sample costs that times T steps per layer, plus the small dense
layers. Training counts x3 (forward, and a backward pass of about twice the forward's
matmul work). Peak = cores x clock x FLOPs per cycle per core, where FLOPs per cycle = 2
(an FMA is two FLOPs) x fp32 lanes per vector (16 with AVX-512, 8 with AVX2, from the CPU
flags) x FMA units per core (`--fma-units`, default 2: AMD Zen 4/5 and Intel server cores
have two vector FMA pipes); the clock is `cpu MHz` of /proc/cpuinfo (under a hypervisor
that is the nominal/TSC clock; turbo can be higher, so the peak is a nominal figure).

The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time

import numpy as np
from machine import cpu_info, cpu_line, emulate_isa

MODEL_NAMES = ("lstm", "stacked-lstm", "embed-lstm", "tied-stacked-lstm", "embed-stacked-lstm",
               "embed-tied-stacked-lstm")
SETTINGS = {"study": 0.2, "no-rd": 0.0}  # recurrent dropout of each setting (dropout stays 0.2)


def _data(n: int, timesteps: int, features: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, timesteps, features)).astype(np.float32)
    y = (rng.random(n) < 0.16).astype(np.int8)
    return X, y


# -- FLOPs and peak -----------------------------------------------------------------------
def flops_per_sample(name: str, timesteps: int, features: int) -> float:
    """Forward FLOPs of one sample (matmuls only; element-wise work is ignored)."""
    from flareseq.models import build_model
    from flareseq.models.recurrent import KerasLSTM

    model = build_model(name, features)
    total = 0.0
    for module in model.modules():
        if isinstance(module, KerasLSTM):
            total += 2 * 4 * module.hidden_size * (module.input_size + module.hidden_size) * timesteps
    if getattr(model, "embedding", None) is not None:
        e = model.embedding
        total += 2 * e.in_features * e.out_features * timesteps + 2 * e.in_features * e.out_features  # + decoder
    total += 2 * model.head.in_features
    return total


def peak_gflops(threads: int, fma_units: int, info: dict) -> tuple[float, str]:
    flags = set(info["cpu_flags"])
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    ghz = (info["cpu_mhz"] or float("nan")) / 1000
    per_cycle = 2 * lanes * fma_units
    peak = threads * ghz * per_cycle
    how = (f"{threads} cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle (2 per FMA x {lanes} fp32 lanes "
           f"x {fma_units} FMA units) = {peak:.0f} GFLOP/s")
    return peak, how


# -- torch --------------------------------------------------------------------------------
class TorchRunner:
    """flareseq's side: the real training loop and batched prediction."""

    def __init__(self, args, X, y):
        import torch

        torch.set_num_threads(args.threads)
        self.args, self.X, self.y = args, X, y
        self.device = torch.device(args.device)

    def prepare(self, name: str, recurrent_dropout: float) -> None:
        import torch

        from flareseq.models import build_model
        from flareseq.training.loop import train_model
        from flareseq.training.settings import TrainingSettings

        torch.manual_seed(0)
        self.model = build_model(name, self.X.shape[2], {"recurrent_dropout": recurrent_dropout}).to(self.device)
        self.settings = TrainingSettings(epochs=1, batch_size=self.args.batch_size, early_stopping=False,
                                         threshold_metric="")
        n = 2 * self.args.batch_size
        train_model(self.model, self.X[:n], self.y[:n], settings=self.settings, device=self.device, progress=False)
        self.repeat = 0

    def train(self) -> tuple[float, float, float]:
        """Samples per second of wall time, the loader's share, samples per CPU-second."""
        from flareseq.training.loop import train_model

        self.repeat += 1
        cpu = time.process_time()
        # the batch order follows settings.random_state: a new order per repeat
        settings = dataclasses.replace(self.settings, random_state=self.repeat)
        h = train_model(self.model, self.X, self.y, settings=settings, device=self.device, progress=False).history
        cpu = time.process_time() - cpu
        return len(self.X) / h["seconds"][0], h["data_seconds"][0] / h["seconds"][0], len(self.X) / cpu

    def infer(self) -> float:
        from flareseq.training.loop import predict_logits

        t = time.perf_counter()
        predict_logits(self.model, self.X, batch_size=self.args.batch_size, device=self.device)
        return len(self.X) / (time.perf_counter() - t)


def measure_rd_paths(device: str = "cpu", repeats: int = 7) -> dict:
    """Milliseconds for one layer's forward + backward, per path: thread CPU time on one
    thread on the CPU, wall time on a GPU."""
    import torch

    from flareseq.models import recurrent
    from flareseq.models.recurrent import KerasLSTM

    device = torch.device(device)
    on_gpu = device.type == "cuda"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out: dict = {}
    copies = [] if on_gpu else [name for name in recurrent.LOOP_CHOICES if name != "python"]
    try:
        for F, H in ((25, 32), (32, 32), (25, 25)):
            torch.manual_seed(0)
            x = torch.randn(256, 60, F, device=device)
            seq = KerasLSTM(F, H, recurrent_dropout=0.2, return_sequences=True).to(device).train()
            plain = KerasLSTM(F, H, recurrent_dropout=0.0, return_sequences=True).to(device).train()
            paths = {f"C {name}": (lambda name=name, seq=seq, x=x: seq._forward_masked(x, name)) for name in copies}
            paths.update({"autograd loop": lambda seq=seq, x=x: seq._forward_masked(x, "python"),
                          "fused, no rd": lambda plain=plain, x=x: plain(x)})
            best = {name: float("inf") for name in paths}
            for _ in range(repeats):
                for name, run in paths.items():  # interleaved: all paths see the same load
                    if on_gpu:
                        torch.cuda.synchronize()
                        started = time.perf_counter()
                        run().sum().backward()
                        torch.cuda.synchronize()
                        best[name] = min(best[name], time.perf_counter() - started)
                    else:
                        started = time.thread_time()
                        run().sum().backward()
                        best[name] = min(best[name], time.thread_time() - started)
            out[f"F{F}-H{H}"] = {name: round(1e3 * v, 2) for name, v in best.items()}
    finally:
        torch.set_num_threads(before)
    return out


def rd_loop_of(device: str) -> str:
    """The recurrent-dropout time loop that trains float32 models on ``device``."""
    import torch

    from flareseq.models.recurrent import masked_loop_path

    x = torch.empty(1, 1, 1, device=device)
    return masked_loop_path(x)


# -- Keras --------------------------------------------------------------------------------
def keras_model(name: str, timesteps: int, features: int, recurrent_dropout: float):
    """The same six architectures in Keras 3, ties done with shared variables."""
    import keras
    from keras import layers, ops

    class TiedDense(layers.Layer):
        """Dense(F, relu) whose kernel is the embedding's kernel, transposed; own bias."""

        def __init__(self, source, **kwargs):
            super().__init__(**kwargs)
            self._source = lambda: source  # a function: not tracked, so the kernel is not listed twice

        def build(self, input_shape):
            self.bias = self.add_weight(shape=(self._source().kernel.shape[0],), initializer="zeros", name="bias")

        def call(self, x):
            return ops.relu(ops.matmul(x, ops.transpose(self._source().kernel)) + self.bias)

    class TiedLSTMCell(layers.LSTMCell):
        """An LSTM cell using another cell's kernel and recurrent kernel; own bias."""

        def __init__(self, source, **kwargs):
            super().__init__(source.units, **kwargs)
            self._source = lambda: source

        def build(self, input_shape):
            self.kernel = self._source().kernel
            self.recurrent_kernel = self._source().recurrent_kernel
            self.bias = self.add_weight(shape=(4 * self.units,), initializer="zeros", name="bias")
            self.built = True

    drop = {"dropout": 0.2, "recurrent_dropout": recurrent_dropout}
    inputs = keras.Input((timesteps, features))
    h = inputs
    embedding = None
    if name.startswith("embed"):
        embedding = layers.Dense(25, activation="relu")
        h = embedding(h)
    if name == "lstm":
        h = layers.LSTM(32, **drop)(h)
    elif name == "stacked-lstm":
        h = layers.LSTM(32, return_sequences=True, **drop)(h)
        h = layers.LSTM(32, **drop)(h)
    elif name == "embed-lstm":
        h = layers.LSTM(25, **drop)(h)
    elif name in ("tied-stacked-lstm", "embed-tied-stacked-lstm"):
        first = layers.LSTM(25, return_sequences=True, **drop)
        h = first(h)
        h = layers.RNN(TiedLSTMCell(first.cell, **drop))(h)
    elif name == "embed-stacked-lstm":
        h = layers.LSTM(25, return_sequences=True, **drop)(h)
        h = layers.LSTM(25, **drop)(h)
    if embedding is not None:
        h = TiedDense(embedding)(h)
    outputs = layers.Dense(1, activation="sigmoid")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.RMSprop(1e-3), loss="binary_crossentropy",
                  metrics=["accuracy", keras.metrics.Recall()])
    return model


def keras_worker(args, X, y) -> None:
    """Child process: answers one JSON request per line on stdin with one JSON line."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.keras.utils.set_random_seed(0)
    model = None
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["what"] == "prepare":
            model = keras_model(request["name"], X.shape[1], X.shape[2], request["recurrent_dropout"])
            n = 2 * args.batch_size
            model.fit(X[:n], y[:n], batch_size=args.batch_size, epochs=1, verbose=0)
            model.predict(X[: args.batch_size], batch_size=args.batch_size, verbose=0)
            reply = {"n_parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables))}
        elif request["what"] == "train":
            t, cpu = time.perf_counter(), time.process_time()
            model.fit(X, y, batch_size=args.batch_size, epochs=1, verbose=0)
            reply = {"rate": len(X) / (time.perf_counter() - t), "cpu_rate": len(X) / (time.process_time() - cpu)}
        else:
            t = time.perf_counter()
            model.predict(X, batch_size=args.batch_size, verbose=0)
            reply = {"rate": len(X) / (time.perf_counter() - t)}
        print(json.dumps(reply), flush=True)


class KerasRunner:
    """Talks to :func:`keras_worker` in a child process (TensorFlow and torch in one process
    disturb each other's thread pools)."""

    def __init__(self, args):
        command = [sys.executable, __file__, "--worker", "keras", "--threads", str(args.threads), "--batch-size",
                   str(args.batch_size), "--batches", str(args.batches), "--timesteps", str(args.timesteps),
                   "--features", str(args.features)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"}
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self._read()

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the Keras worker stopped; see its messages above")
        return json.loads(line)

    def ask(self, **request) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def make_keras_runner(args) -> KerasRunner | None:
    import importlib.util

    if args.no_keras:
        return None
    if importlib.util.find_spec("tensorflow") is None:
        print("TensorFlow is not installed: the Keras column is skipped "
              "(pip install 'flareseq[bench]' installs tensorflow==2.21.0).", file=sys.stderr)
        return None
    return KerasRunner(args)


def measure(args, X, y) -> tuple[dict, dict | None]:
    """Both frameworks, model by model, their repeats interleaved so both see the same load."""
    ours, theirs = {}, None
    torch_runner = TorchRunner(args, X, y)
    keras_runner = make_keras_runner(args)
    if keras_runner is not None:
        theirs = {}
    for name in args.models:
        for setting, rd in SETTINGS.items():
            key = f"{name}/{setting}"
            torch_runner.prepare(name, rd)
            n_params = keras_runner.ask(what="prepare", name=name, recurrent_dropout=rd)["n_parameters"] \
                if keras_runner else None
            train, share, cpu, infer, k_train, k_cpu, k_infer = [], [], [], [], [], [], []
            for _ in range(args.repeats):
                rate, data_share, cpu_rate = torch_runner.train()
                train.append(rate)
                share.append(data_share)
                cpu.append(cpu_rate)
                if keras_runner:
                    reply = keras_runner.ask(what="train")
                    k_train.append(reply["rate"])
                    k_cpu.append(reply["cpu_rate"])
            for _ in range(args.repeats):
                infer.append(torch_runner.infer())
                if keras_runner:
                    k_infer.append(keras_runner.ask(what="infer")["rate"])
            ours[key] = {"train": max(train), "infer": max(infer), "data_share": float(np.median(share)),
                         "train_cpu": max(cpu)}
            line = f"  {name:<24} {setting:<6} flareseq train {max(train):>8,.0f}/s infer {max(infer):>8,.0f}/s"
            if keras_runner:
                theirs[key] = {"train": max(k_train), "infer": max(k_infer), "n_parameters": n_params,
                               "train_cpu": max(k_cpu)}
                line += f" | keras train {max(k_train):>8,.0f}/s infer {max(k_infer):>8,.0f}/s ({n_params} parameters)"
            print(line, file=sys.stderr)
    if keras_runner:
        keras_runner.close()
    return ours, theirs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=40, help="batches per timed epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=60)
    parser.add_argument("--features", type=int, default=25)
    parser.add_argument("--fma-units", type=int, default=2, help="vector FMA units per core (for the peak)")
    parser.add_argument("--no-keras", action="store_true", help="skip the Keras column")
    parser.add_argument("--no-paths", action="store_true", help="skip the recurrent-dropout paths section")
    parser.add_argument("--device", default="cpu", help="torch device of flareseq's side (cpu, cuda)")
    parser.add_argument("--emulate-isa", choices=["avx2", "generic"],
                        help="re-run as on a CPU without the instruction sets above this (benchmarks/machine.py)")
    parser.add_argument("--worker", choices=["keras"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    X, y = _data(args.batches * args.batch_size, args.timesteps, args.features)
    if args.worker == "keras":
        keras_worker(args, X, y)
        return 0
    emulate_isa(args.emulate_isa, sys.argv[1:] if argv is None else argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here")
    info = cpu_info()
    rd_loop = rd_loop_of(args.device)
    print(cpu_line(info), file=sys.stderr)
    print(f"torch {torch.__version__}, kernels {torch.backends.cpu.get_cpu_capability()}; device {args.device}; "
          f"recurrent-dropout loop: {rd_loop}", file=sys.stderr)

    print(f"training/inference throughput: {len(X)} samples of ({args.timesteps}, {args.features}), batch "
          f"{args.batch_size}, {args.threads} threads, best of {args.repeats}", file=sys.stderr)
    load_before = os.getloadavg()[0]
    if load_before > (os.cpu_count() or 1):
        # Measured here at load 6 on 2 cores: lstm training 1.4k/s with OpenMP's default
        # spin-waiting, 6.5k/s with OMP_WAIT_POLICY=PASSIVE (a spinning thread waits on one
        # that is descheduled). TensorFlow's thread pool does not spin like that.
        print(f"warning: load average {load_before:.1f} exceeds the {os.cpu_count()} CPUs: torch's OpenMP threads "
              "spin-wait and lose badly on an oversubscribed machine; figures will be unfair to flareseq. "
              f"OMP_WAIT_POLICY is {os.environ.get('OMP_WAIT_POLICY', 'unset')} (PASSIVE helps under load).",
              file=sys.stderr)
    ours, keras = measure(args, X, y)
    paths = None if args.no_paths else measure_rd_paths(args.device)
    peak, how = peak_gflops(args.threads, args.fma_units, info)
    print(f"\n{cpu_line(info)}\nrecurrent-dropout loop that trained: {rd_loop}; torch kernels "
          f"{torch.backends.cpu.get_cpu_capability()}; device {args.device}")
    print(f"peak: {how}")
    header = (f"{'model':<24} {'setting':<6} {'train/s':>9} {'keras/s':>9} {'ratio':>6} {'cpu-ratio':>9} {'GFLOP/s':>8}"
              f" {'%peak':>6} {'infer/s':>9} {'keras/s':>9} {'ratio':>6} {'data%':>6}")
    print(header)
    result: dict = {**info, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
                    "device": args.device, "rd_loop": rd_loop,
                    "threads": args.threads, "batch_size": args.batch_size, "timesteps": args.timesteps,
                    "features": args.features, "peak_gflops": round(peak, 1),
                    "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "models": {}}
    for key, row in ours.items():
        name, setting = key.split("/")
        flops = flops_per_sample(name, args.timesteps, args.features)
        gflops = 3 * flops * row["train"] / 1e9
        k = (keras or {}).get(key)
        ratio = row["train"] / k["train"] if k else None
        cpu_ratio = row["train_cpu"] / k["train_cpu"] if k else None
        infer_ratio = row["infer"] / k["infer"] if k else None
        print(f"{name:<24} {setting:<6} {row['train']:>9,.0f} {k['train'] if k else float('nan'):>9,.0f} "
              f"{ratio or float('nan'):>6.2f} {cpu_ratio or float('nan'):>9.2f} {gflops:>8.1f} {100 * gflops / peak:>6.2f} "
              f"{row['infer']:>9,.0f} "
              f"{k['infer'] if k else float('nan'):>9,.0f} {infer_ratio or float('nan'):>6.2f} "
              f"{100 * row['data_share']:>6.1f}")
        entry = result["models"].setdefault(name, {})
        entry[setting] = {
            "train_samples_per_s": round(row["train"]), "infer_samples_per_s": round(row["infer"]),
            "keras_train_samples_per_s": round(k["train"]) if k else None,
            "keras_infer_samples_per_s": round(k["infer"]) if k else None,
            "ratio_vs_keras": round(ratio, 2) if ratio else None,
            "cpu_ratio_vs_keras": round(cpu_ratio, 2) if cpu_ratio else None,
            "infer_ratio_vs_keras": round(infer_ratio, 2) if infer_ratio else None,
            "train_gflops": round(gflops, 2), "data_share": round(row["data_share"], 4),
        }
        if setting == "study":
            entry["ratio_vs_keras"] = entry[setting]["ratio_vs_keras"]
            entry["cpu_ratio_vs_keras"] = entry[setting]["cpu_ratio_vs_keras"]
            entry["train_samples_per_s"] = entry[setting]["train_samples_per_s"]
    if paths is not None:
        clock = "wall time on the GPU" if args.device.startswith("cuda") else "thread CPU time, 1 thread"
        print(f"\nrecurrent-dropout paths: one layer, forward + backward of a (256, 60, F) batch, ms of {clock}, "
              "best of 7")
        for shape, row in paths.items():
            print(f"  {shape:<8} " + "  ".join(f"{name} {ms:6.1f}" for name, ms in row.items()))
        result["rd_paths_ms"] = paths
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
