"""Recording runs in MLflow, behind a small interface.

:class:`MlflowTracker` writes to any MLflow tracking URI; by default a local SQLite file
(``<output_dir>/mlflow.db``) with artifacts beside it, so nothing needs a server.
:class:`NullTracker` records nothing and lets library code run without MLflow.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from flareseq.data.store_files import process_alive
from flareseq.errors import FlareseqError

# MLflow asks for telemetry unless told otherwise; flareseq never sends it.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# MLflow draws a progress bar for every artifact download (a dozen per report).
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

MODEL_ARTIFACT = "model"
HOST_TAG, PID_TAG = "flareseq.host", "flareseq.pid"  # who runs a run: a dead process's run is marked KILLED
RUN_KEY_TAG = "flareseq.run_key"


ROLE_TAG = "flareseq.role"  # "rotation": the parent of K fold runs; "fold": one of them

MLFLOW_PARAM_LIMIT = 6000  # characters MLflow keeps of a param value


def resolve_tracking_uri(uri: str, output_dir: str | os.PathLike[str]) -> str:
    """The URI to use: the configured one, else ``MLFLOW_TRACKING_URI``, else a SQLite file
    in ``output_dir``."""
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    path = Path(output_dir).resolve() / "mlflow.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def use_tracking_uri(uri: str) -> None:
    """Point MLflow's fluent API at ``uri`` without touching ``MLFLOW_TRACKING_URI``.

    ``mlflow.set_tracking_uri`` also exports the URI to the environment (for subprocesses);
    left there, it would read as the user's choice in :func:`resolve_tracking_uri`, and a
    later run in the same process with another ``output_dir`` would write into this store.
    """
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


@contextlib.contextmanager
def store_lock(tracking_uri: str) -> Iterator[None]:
    """An exclusive lock beside a local SQLite store (``mlflow.db.lock``); no lock otherwise."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    database = Path(tracking_uri[len("sqlite:///"):])
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class NullTracker:
    """Records nothing (library use and tests of code that is not about tracking)."""

    tracking_uri = ""

    @contextlib.contextmanager
    def run(self, name: str, *, tags: Mapping[str, str] | None = None, parent_run_id: str | None = None):
        yield None

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...
    def log_history(self, history: Mapping[str, list[float]]) -> None: ...
    def log_artifact(self, path: str | os.PathLike[str], subdir: str | None = None) -> None: ...
    def log_model(self, model_dir: str | os.PathLike[str], *, shape, input_example) -> None: ...
    def set_tags(self, tags: Mapping[str, str]) -> None: ...


class MlflowTracker:
    """Writes runs of one experiment to an MLflow tracking store."""

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        import logging

        import mlflow

        # MLflow's INFO lines (schema migrations, input validation) would drown the run log.
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        self._mlflow = mlflow
        self.tracking_uri = tracking_uri
        # Two processes starting on a brand-new SQLite store race in MLflow's schema set-up
        # ("index ... already exists") and in creating the experiment: one at a time.
        with store_lock(tracking_uri):
            use_tracking_uri(tracking_uri)
            existing = mlflow.get_experiment_by_name(experiment)
            if existing is None:
                # Keep artifacts next to a SQLite store rather than in the current directory.
                location = None
                if tracking_uri.startswith("sqlite:///"):
                    location = (Path(tracking_uri[len("sqlite:///"):]).parent / "artifacts").resolve().as_uri()
                self.experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
            else:
                self.experiment_id = existing.experiment_id
        self.experiment = experiment

    def mark_dead_runs(self) -> list[str]:
        """Mark this experiment's RUNNING runs whose process on this host has ended (killed,
        out of memory, a lost machine) as KILLED, with the reason as a tag; returns their names.

        Runs record their host and process id when they start; a run of another host, or of a
        process that is still alive, is left as it is.
        """
        import socket

        client = self._mlflow.MlflowClient(self.tracking_uri)
        dead = []
        for run in client.search_runs([self.experiment_id], filter_string="attributes.status = 'RUNNING'"):
            tags = run.data.tags
            pid = tags.get(PID_TAG, "")
            if tags.get(HOST_TAG) != socket.gethostname() or not pid.isdigit() or process_alive(int(pid)):
                continue
            client.set_tag(run.info.run_id, "error", f"its process {pid} ended without finishing the run "
                                                     "(killed?); marked KILLED when the experiment resumed")
            client.set_terminated(run.info.run_id, status="KILLED")
            dead.append(run.info.run_name)
        return dead

    @contextlib.contextmanager
    def run(
        self, name: str, *, tags: Mapping[str, str] | None = None, parent_run_id: str | None = None
    ) -> Iterator[Any]:
        """A run that ends FINISHED, or FAILED (with the error as a tag) if the body raises."""
        import socket

        mlflow = self._mlflow
        all_tags = {**(tags or {}), HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        active = mlflow.start_run(run_name=name, experiment_id=self.experiment_id, tags=all_tags,
                                  nested=parent_run_id is not None)
        try:
            yield active
        except BaseException as exc:
            mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
            mlflow.end_run(status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        else:
            mlflow.end_run(status="FINISHED")

    def log_params(self, params: Mapping[str, Any]) -> None:
        items = {k: str(v)[:MLFLOW_PARAM_LIMIT] for k, v in params.items()}
        keys = list(items)
        for start in range(0, len(keys), 100):  # MLflow takes at most 100 params per batch
            self._mlflow.log_params({k: items[k] for k in keys[start:start + 100]})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        finite = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
        if finite:
            self._mlflow.log_metrics(finite, step=step)

    def log_history(self, history: Mapping[str, list[float]]) -> None:
        """Per-epoch metrics, one MLflow step per epoch."""
        n_epochs = max((len(v) for v in history.values()), default=0)
        for epoch in range(n_epochs):
            self.log_metrics({k: v[epoch] for k, v in history.items() if epoch < len(v)}, step=epoch)

    def log_artifact(self, path: str | os.PathLike[str], subdir: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self._mlflow.log_artifacts(str(path), artifact_path=subdir)
        else:
            self._mlflow.log_artifact(str(path), artifact_path=subdir)

    def log_model(self, model_dir: str | os.PathLike[str], *, shape, input_example) -> None:
        """The saved model as an MLflow pyfunc model (see :mod:`flareseq.experiments.pyfunc`), with its
        signature (raw samples ``(n, n_timesteps, n_features)`` in, ``shape`` being the last
        two; probability and label out) and an input example of a few raw samples (or none)."""
        from flareseq.experiments import pyfunc as serving

        n_timesteps, n_features = shape
        with warnings.catch_warnings():
            # No example is a deliberate choice (a model of the study's windows forecasts no raw
            # samples; the signature is given): MLflow's advice to add one would only be noise.
            warnings.filterwarnings("ignore", message="An input example was not provided", category=UserWarning)
            self._mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=serving.__file__,
                artifacts={"flareseq_model": str(model_dir)},
                signature=serving.signature(n_timesteps, n_features),
                input_example=input_example,
                # Stated, not inferred: inference imports the model in a subprocess (seconds).
                pip_requirements=serving.requirements(),
            )

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._mlflow.set_tags(dict(tags))


def runs_frame(tracking_uri: str, experiment: str) -> pd.DataFrame:
    """The runs of an experiment as the report's table (one row per run, newest kept per name)."""
    import mlflow

    use_tracking_uri(tracking_uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        raise FlareseqError(f"no experiment {experiment!r} in the tracking store {tracking_uri}.")
    runs = mlflow.search_runs(experiment_ids=[found.experiment_id], output_format="list", order_by=["start_time DESC"])
    rows, seen = [], set()
    for run in runs:
        name = run.info.run_name
        tags, params, m = run.data.tags, run.data.params, run.data.metrics
        if tags.get(ROLE_TAG) == "fold":
            continue  # a rotation's fold: its parent's row carries the mean, sd and per-fold values
        if name in seen:
            continue  # a rerun (after a failure) supersedes the older attempt
        seen.add(name)
        row: dict[str, Any] = {
            "run_id": run.info.run_id, "name": name, "architecture": tags.get("architecture", ""),
            "kind": tags.get("kind", "model"), "status": run.info.status,
            "threshold_metric": tags.get("threshold_metric", ""), "calibrated": tags.get("calibrated", "False"),
            "calibration": tags.get("calibration", ""), "class_weighted": tags.get("class_weighted", "False"),
            "reweighting": tags.get("reweighting", ""), "split_leaky": tags.get("split_leaky", "False"),
            "leaky": tags.get("leaky", "False"), "layout": tags.get("layout", ""),
            "n_folds": int(tags["flareseq.cv"]) if tags.get("flareseq.cv", "").isdigit() else None,
            "ci_resampling": tags.get("ci_resampling", ""),
            "ci_level": float(params.get("verification.confidence_level", "nan")),
            "config": _describe(params), "error": tags.get("error", ""),
            "data_hash": params.get("data.content_hash", ""), "data_source": params.get("data.source", ""),
        }
        for key in ("n_train", "n_validation", "n_test", "pcc", "pcc_125", "threshold", "threshold_sd"):
            if key in m:
                row[key] = m[key]
        row["n_val"] = m.get("n_validation")
        for key, value in m.items():
            if key.startswith(("val_", "test_", "ref_", "pooled_", "threshold_fold")):
                row[key] = value
        rows.append(row)
    return pd.DataFrame(rows)


def _describe(params: dict[str, str]) -> str:
    keys = ("training.epochs", "training.steps_per_epoch", "training.class_weight", "training.loss",
            "training.calibration", "prep.missing", "prep.layout", "data.cv")
    optional = ("training.calibration", "data.cv")  # shown only when set
    return ", ".join(f"{k.split('.')[-1]}={params[k]}" for k in keys
                     if k in params and not (k in optional and params[k] in ("", "0")))

