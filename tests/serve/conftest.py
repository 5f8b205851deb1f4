"""Fixtures of the forecast-service tests (session-scoped: a test process trains the model once)."""

from __future__ import annotations

import pytest
from serve_helpers import TinyRun, serve, train_tiny_run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TinyRun:
    return train_tiny_run(tmp_path_factory.mktemp("serve-runs"))


@pytest.fixture(scope="session")
def served_model(tiny_run):
    from flareseq.forecasting.served_model import load_served_model

    return load_served_model(tiny_run.run_id, experiment=tiny_run.experiment, output_dir=tiny_run.output_dir)


@pytest.fixture(scope="session")
def service(served_model):
    """The service of the tiny run, with default limits and no token."""
    with serve(served_model) as server:
        yield server
