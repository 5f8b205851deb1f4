"""Helpers of the forecast-service tests: a tiny tracked run, and the service on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

# Three features keep the fuzzed requests small (60 x 3 values per sample); Kaggle and
# SWAN-SF uploads carry all 25, of which the model takes its three.
FEATURES = ["TOTUSJH", "USFLUX", "R_VALUE"]
TOKEN = "test-token-0123456789abcdef"


@dataclass(frozen=True)
class TinyRun:
    output_dir: Path
    experiment: str
    run_id: str


def train_tiny_run(output_dir: Path, experiment: str = "serve-test") -> TinyRun:
    """One small run on synthetic data, tracked in a SQLite MLflow store in ``output_dir``."""
    from flareseq.experiments.config import RunConfig
    from flareseq.experiments.runner import make_tracker, run

    config = RunConfig.from_dict({
        "name": "tiny", "data": {"synthetic_samples": 300, "features": FEATURES},
        "training": {"epochs": 1, "batch_size": 64, "early_stopping": False, "n_threads": 1},
        "model": {"params": {"hidden_size": 8}},
        "verification": {"n_bootstrap": 0},
        "tracking": {"output_dir": str(output_dir), "experiment": experiment, "plots": False},
    })
    result = run(config, tracker=make_tracker(config), progress=False)
    return TinyRun(output_dir, experiment, result.run_id)


class LiveServer:
    """The service on 127.0.0.1 (a free port) in a thread of the test process: real HTTP."""

    def __init__(self, app) -> None:
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve(model, **options) -> LiveServer:
    """A :class:`LiveServer` of ``create_app(model, **options)`` (use as a context manager)."""
    from flareseq.forecasting.service import create_app

    return LiveServer(create_app(model, **options))
