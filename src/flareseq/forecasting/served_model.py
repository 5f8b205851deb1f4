"""The one model a forecast service serves, and what identifies it to its users.

The model is loaded once, at start, by :func:`flareseq.experiments.run_models.load_forecaster`
(the object ``flareseq predict`` forecasts with), and every forecast goes through its
:meth:`~flareseq.training.forecaster.Forecaster.predict`. Loading reads JSON, safetensors and
npz files only: no pickle, and no Python from the artifact (MLflow's pyfunc loader would run
the logged model code, so it is never used here).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np

from flareseq.data.dataset import FlareDataset
from flareseq.training.forecaster import Forecaster

# The scores a user weighs a model by: validation (where its threshold was chosen) and test.
IDENTITY_METRICS = ("tss", "hss2", "bss", "roc_auc", "pr_auc", "brier", "precision", "recall", "f1", "accuracy",
                    "n", "event_rate")


@dataclass(frozen=True)
class ModelIdentity:
    """Who the served model is: its run (when it came from one) or its files' hash.

    Attributes
    ----------
    name : the run's name, or the saved forecaster's own name.
    kind : ``"model"`` or ``"baseline"``.
    source : ``"run"`` (an MLflow run) or ``"folder"`` (a saved forecaster folder).
    run_id, run_name, experiment : the MLflow run, when ``source == "run"``.
    data_content_hash : the content hash of the data the run was trained on (its
        ``data.content_hash`` param), when known.
    model_sha256 : SHA-256 over the saved forecaster's files, when served from a folder.
    threshold : the decision threshold chosen on validation data.
    calibrated : whether probabilities are calibrated (the threshold is then on that scale).
    feature_names, n_timesteps, layout : what a sample must look like.
    metrics : validation and test scores logged with the run (``val_tss``, ``test_tss``, ...).
    """

    name: str
    kind: str
    source: str
    threshold: float
    calibrated: bool
    feature_names: tuple[str, ...]
    n_timesteps: int
    layout: str
    run_id: str | None = None
    run_name: str | None = None
    experiment: str | None = None
    data_content_hash: str | None = None
    model_sha256: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["feature_names"] = list(self.feature_names)
        return values


class ServedModel:
    """A forecaster and its identity; forecasts one request at a time.

    Parameters
    ----------
    forecaster : the model, as :func:`~flareseq.experiments.run_models.load_forecaster` gave it.
    identity : what :meth:`identity` reports.
    """

    def __init__(self, forecaster: Forecaster, identity: ModelIdentity) -> None:
        self.forecaster = forecaster
        self.identity = identity
        # The estimators are not documented as thread-safe (a torch module, a fitted scaler),
        # and the server runs requests in a thread pool: one forecast at a time.
        self._lock = threading.Lock()

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.forecaster.feature_names

    @property
    def n_timesteps(self) -> int:
        return self.forecaster.n_timesteps

    @property
    def threshold(self) -> float:
        return self.forecaster.threshold

    def predict(self, dataset: FlareDataset) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and 0/1 labels at the model's threshold (``Forecaster.predict``)."""
        with self._lock:
            return self.forecaster.predict(dataset)


def load_served_model(run_or_folder: str | PathLike[str], *, experiment: str = "flareseq", tracking_uri: str = "",
                      output_dir: str | PathLike[str] = "runs") -> ServedModel:
    """The model of a saved forecaster folder or of a tracked run, with its identity.

    Parameters are those of :func:`flareseq.experiments.run_models.load_forecaster`. A run is
    resolved to its id first, so that the identity and the model come from the same run even
    when a run name is given and a newer run of that name finishes meanwhile.
    """
    from flareseq.experiments.run_models import load_forecaster

    folder = Path(run_or_folder)
    if folder.is_dir():
        forecaster = load_forecaster(folder)
        return ServedModel(forecaster, _identity(forecaster, source="folder", model_sha256=_folder_sha256(folder)))
    import mlflow

    from flareseq.experiments.report import resolve_run_id
    from flareseq.experiments.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri, output_dir)
    client = mlflow.MlflowClient(uri)
    run_id = resolve_run_id(client, str(run_or_folder), experiment, uri, hint="or give a saved model folder")
    forecaster = load_forecaster(run_id, experiment=experiment, tracking_uri=uri, output_dir=output_dir)
    run = client.get_run(run_id)
    found = client.get_experiment(run.info.experiment_id)
    scores = run.data.metrics
    metrics = {f"{split}_{m}": float(scores[f"{split}_{m}"])
               for split in ("val", "test") for m in IDENTITY_METRICS if f"{split}_{m}" in scores}
    return ServedModel(forecaster, _identity(
        forecaster, source="run", run_id=run_id, run_name=run.info.run_name, experiment=found.name if found else None,
        data_content_hash=run.data.params.get("data.content_hash"), metrics=metrics))


def _identity(forecaster: Forecaster, **known) -> ModelIdentity:
    return ModelIdentity(
        name=known.get("run_name") or forecaster.name or "flareseq model", kind=forecaster.kind,
        threshold=float(forecaster.threshold), calibrated=forecaster.calibrator is not None,
        feature_names=tuple(forecaster.feature_names), n_timesteps=int(forecaster.n_timesteps),
        layout=forecaster.layout, **known)


def _folder_sha256(folder: Path) -> str:
    """SHA-256 over the relative paths and contents of the forecaster folder that
    ``load_forecaster`` loads (the first ``forecaster.json`` found, as it does)."""
    found = next(iter(sorted(folder.rglob("forecaster.json"))), None)
    root = found.parent if found is not None else folder
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        # name and size before the bytes, so that no two folders hash alike by shifting bytes
        digest.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()
