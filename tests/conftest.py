"""Shared fixtures: paths to the real data (skipped when absent) and small synthetic sets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

REPO_ROOT = Path(__file__).resolve().parents[1]
# 12 real SWAN-SF samples (MIT), committed so that the tests needing real samples never skip
SWAN_SAMPLES = Path(__file__).resolve().parent / "data" / "swan-sf-samples"
SHARED_DATA = Path(os.environ.get("FLARESEQ_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it skip with the reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (set FLARESEQ_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def swan_samples() -> Path:
    """The 12 real SWAN-SF samples in both layouts (tests/data/swan-sf-samples)."""
    return SWAN_SAMPLES


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests (``pytestmark = pytest.mark.usefixtures(...)``):
    tiny tensors gain nothing from threads, and under `pytest -n 2` on two shared cores two
    OpenMP pools per worker spin against each other (10x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_terminal_summary(terminalreporter):
    """List the files tests wrote for people to look at (``record_property("artifact", path)``),
    e.g. the forecast page's screenshot; with xdist too, since properties travel with reports."""
    found = sorted({(report.nodeid, value) for reports in terminalreporter.stats.values() for report in reports
                    if getattr(report, "when", None) == "call"
                    for name, value in getattr(report, "user_properties", ()) if name == "artifact"})
    if found:
        terminalreporter.write_sep("-", "files written by tests")
        for nodeid, path in found:
            terminalreporter.write_line(f"{path}  ({nodeid})")


@pytest.fixture
def file_server():
    """A real HTTP server on 127.0.0.1 serving in-memory files (tests/http_file_server.py)."""
    from http_file_server import start_file_server

    state, stop = start_file_server()
    yield state
    stop()


@pytest.fixture(scope="session")
def device():
    """The torch device of the model tests: ``FLARESEQ_TEST_DEVICE`` (default ``cpu``; a GPU
    machine runs them with ``cuda``, as benchmarks/gpu_check.sh does). Skips with the reason
    when that device is absent. On a GPU, float32 stays IEEE float32 (cuDNN and cuBLAS would
    use TF32, a 10-bit mantissa, on Ampere and later: tolerances are for float32)."""
    import torch

    name = os.environ.get("FLARESEQ_TEST_DEVICE", "cpu")
    try:
        chosen = torch.device(name)
    except RuntimeError:
        pytest.fail(f"FLARESEQ_TEST_DEVICE={name!r} is not a torch device (expected cpu or cuda[:N])")
    if chosen.type != "cuda":
        yield chosen
        return
    if not torch.cuda.is_available():
        pytest.skip(f"FLARESEQ_TEST_DEVICE={name} but CUDA is not available on this machine")
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield chosen
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
