"""Load test of the forecast service: requests/s and latency, single samples and batches of 256.

    python benchmarks/serve.py                        # trains a small LSTM (25 features) first
    python benchmarks/serve.py --model RUN_OR_FOLDER  # an existing model
    python benchmarks/serve.py --single-requests 100 --batch-requests 10 --seconds 20

It starts ``flareseq serve`` as a user would (a child process on 127.0.0.1, a free port) and
sends, from this process, pre-encoded requests over keep-alive connections:

* ``single``: one sample as arrays (``POST /forecast``, 60 x 25 values);
* ``batch256``: 256 samples as arrays;
* ``kaggle_single`` and ``kaggle_batch256``: the same as Kaggle JSON lines
  (``POST /forecast/kaggle``), parsed by flareseq's reader.

Each kind runs twice: one client (latency of a lone user: p50/p99 of request round trips)
and ``--concurrency`` clients (throughput: requests/s and samples/s, and the latency under
that load). Every phase is bounded by its request count and by ``--seconds``.

The baseline, measured in the same run on the same samples: ``Forecaster.predict`` called
in this process (what the service wraps, loaded the same way), before and after the
service's phases (the lower p50 counts: the less disturbed); ``overhead_x`` = the service's
single-client p50 / the direct call's p50, i.e. what HTTP, JSON and the checks add.

Client and server share the machine's cores (2 here), so every figure is lower than on a
machine where they do not; the load average is recorded before and after. The CPU model
and vector flags are printed; the last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def cpu_line() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split()) if "flags" in text else set()
    vector = [f for f in ("avx512f", "avx512_bf16", "avx2", "fma", "sse4_2") if f in flags]
    return f"CPU: {model.group(1) if model else 'unknown'}; {os.cpu_count()} CPUs; vector flags: {' '.join(vector)}"


def load_average() -> float:
    return os.getloadavg()[0]


def train_model(folder: Path) -> tuple[str, Path]:
    """A small default LSTM (hidden 32, the study's basic model) on 25 synthetic features,
    tracked in ``folder``; returns its run id."""
    from flareseq.experiments.config import RunConfig
    from flareseq.experiments.runner import make_tracker, run

    config = RunConfig.from_dict({
        "name": "bench-serve", "data": {"synthetic_samples": 1000},
        "training": {"epochs": 2, "batch_size": 128, "early_stopping": False},
        "verification": {"n_bootstrap": 0},
        "tracking": {"output_dir": str(folder), "experiment": "bench-serve", "plots": False},
    })
    return run(config, tracker=make_tracker(config), progress=False).run_id, folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model: str, output_dir: str, experiment: str, port: int) -> subprocess.Popen:
    import requests

    command = [sys.executable, "-m", "flareseq", "serve", "--model", model, "--port", str(port),
               "--output-dir", output_dir, "--experiment", experiment]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
            return process
        except requests.ConnectionError:
            if process.poll() is not None:
                raise SystemExit(f"flareseq serve exited with {process.returncode}: {' '.join(command)}") from None
            time.sleep(0.3)
    process.kill()
    raise SystemExit("flareseq serve did not answer within 120 s")


def bodies(dataset, feature_names) -> tuple[bytes, bytes, bytes, bytes]:
    """Pre-encoded request bodies: arrays for 1 and 256 samples, Kaggle lines for 1 and 256."""
    import orjson

    from flareseq.data.schema import KAGGLE_PARAMETERS

    def arrays(n):
        X = dataset.select_features(list(feature_names)).X[:n]
        return orjson.dumps({"feature_names": list(feature_names), "X": X}, option=orjson.OPT_SERIALIZE_NUMPY)

    def lines(n):
        out = []
        for i in range(n):
            values = {p: {str(t): (None if np.isnan(v) else float(v)) for t, v in enumerate(dataset.X[i, :, j])}
                      for j, p in enumerate(KAGGLE_PARAMETERS)}
            out.append(orjson.dumps({"id": i, "values": values}))
        return b"\n".join(out) + b"\n"

    return arrays(1), arrays(256), lines(1), lines(256)


def run_phase(url: str, body: bytes, content_type: str, *, clients: int, n_requests: int,
              seconds: float) -> dict:
    """``n_requests`` POSTs (or as many as ``seconds`` allow) from ``clients`` threads."""
    import requests

    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(n_requests))
    deadline = time.monotonic() + seconds
    failures = []

    def client():
        session = requests.Session()
        while time.monotonic() < deadline:
            with lock:
                if next(counter, None) is None:
                    return
            started = time.perf_counter()
            response = session.post(url, data=body, headers={"Content-Type": content_type}, timeout=120)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                failures.append(response.status_code)
                return
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{url}: answered {failures[0]}")
    ms = np.array(latencies) * 1000
    return {"requests": len(latencies), "seconds": round(wall, 3), "requests_per_s": round(len(latencies) / wall, 2),
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def direct_predict(forecaster, dataset, n: int, repeats: int) -> float:
    """p50 ms of ``Forecaster.predict`` on ``n`` samples, in this process."""
    part = dataset.subset(np.arange(n))
    forecaster.predict(part)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        forecaster.predict(part)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a saved model folder or run id (default: train a small LSTM first)")
    parser.add_argument("--output-dir", default="", help="tracking store of --model's run (default: runs)")
    parser.add_argument("--experiment", default="flareseq", help="experiment of --model's run name")
    parser.add_argument("--concurrency", type=int, default=4, help="clients of the throughput phases (default 4)")
    parser.add_argument("--single-requests", type=int, default=300, help="requests per single-sample phase")
    parser.add_argument("--batch-requests", type=int, default=30, help="requests per batch phase")
    parser.add_argument("--seconds", type=float, default=30, help="time limit of each phase (default 30 s)")
    args = parser.parse_args(argv)

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    print(cpu_line())
    load_before = load_average()
    from flareseq.data.synthetic import synthetic_dataset
    from flareseq.experiments.run_models import load_forecaster

    with tempfile.TemporaryDirectory(prefix="flareseq-bench-serve-") as tmp:
        if args.model:
            model, output_dir, experiment = args.model, args.output_dir or "runs", args.experiment
        else:
            print("training a small LSTM (hidden 32, 25 features, 1000 synthetic samples, 2 epochs)...",
                  file=sys.stderr)
            model, _ = train_model(Path(tmp))
            output_dir, experiment = tmp, "bench-serve"
        forecaster = load_forecaster(model, experiment=experiment, output_dir=output_dir)
        dataset = synthetic_dataset(256, seed=1)
        # the baseline before and after the service's phases; the lower p50 (the less disturbed) counts
        direct_before = {1: direct_predict(forecaster, dataset, 1, 200),
                         256: direct_predict(forecaster, dataset, 256, 20)}
        single, batch, kaggle_single, kaggle_batch = bodies(dataset, forecaster.feature_names)
        port = free_port()
        server = start_server(model, output_dir, experiment, port)
        url = f"http://127.0.0.1:{port}"
        try:
            phases = {}
            kinds = [("single", "/forecast", single, "application/json", args.single_requests, 1),
                     ("batch256", "/forecast", batch, "application/json", args.batch_requests, 256),
                     ("kaggle_single", "/forecast/kaggle", kaggle_single, "application/x-ndjson",
                      args.single_requests, 1),
                     ("kaggle_batch256", "/forecast/kaggle", kaggle_batch, "application/x-ndjson",
                      args.batch_requests, 256)]
            for name, path, body, content_type, n, samples in kinds:
                run_phase(url + path, body, content_type, clients=1, n_requests=3, seconds=args.seconds)  # warm-up
                alone = run_phase(url + path, body, content_type, clients=1, n_requests=n, seconds=args.seconds)
                loaded = run_phase(url + path, body, content_type, clients=args.concurrency, n_requests=n,
                                   seconds=args.seconds)
                phases[name] = {"samples_per_request": samples, "body_bytes": len(body), "one_client": alone,
                                f"{args.concurrency}_clients": loaded,
                                "samples_per_s": round(loaded["requests_per_s"] * samples, 1)}
                print(f"{name:>16}: {len(body) / 1e3:8.1f} kB  one client p50 {alone['p50_ms']:7.1f} ms "
                      f"p99 {alone['p99_ms']:7.1f} ms ({alone['requests_per_s']:6.1f} req/s) | "
                      f"{args.concurrency} clients {loaded['requests_per_s']:6.1f} req/s "
                      f"({phases[name]['samples_per_s']:8.0f} samples/s) p50 {loaded['p50_ms']:7.1f} ms "
                      f"p99 {loaded['p99_ms']:7.1f} ms")
        finally:
            server.terminate()
            server.wait(timeout=30)
        direct = {"single_p50_ms": round(min(direct_before[1], direct_predict(forecaster, dataset, 1, 200)), 3),
                  "batch256_p50_ms": round(min(direct_before[256], direct_predict(forecaster, dataset, 256, 20)), 3)}
    for name, key in (("single", "single_p50_ms"), ("batch256", "batch256_p50_ms")):
        phases[name]["direct_predict_p50_ms"] = direct[key]
        phases[name]["overhead_x"] = round(phases[name]["one_client"]["p50_ms"] / direct[key], 2)
        print(f"{name:>16}: Forecaster.predict in process p50 {direct[key]:.2f} ms; the service's one-client p50 is "
              f"{phases[name]['overhead_x']:.2f}x that")
    load_after = load_average()
    print(f"load average {load_before:.2f} before, {load_after:.2f} after; torch threads in the server: default")
    result = {"benchmark": "serve", "cpu": cpu_line(), "load_before": load_before, "load_after": load_after,
              "concurrency": args.concurrency, "phases": phases}
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
