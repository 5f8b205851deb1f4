"""The model of a tracked run (or of a saved folder), as one :class:`Forecaster`.

Every command that forecasts (``predict``, ``evaluate``, ``forecast``, ``serve``) loads its
model here, so all of them forecast with the same object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

from flareseq.errors import FlareseqError
from flareseq.training.forecaster import Forecaster


@dataclass
class RunSplit:
    """What a tracked run was fitted and tested on: its data's content hash and the digests of
    its training, validation and test samples (``split/*.txt.gz``)."""

    run_id: str
    content_hash: str
    digests: dict[str, set[str]] = field(default_factory=dict)

    def seen(self) -> set[str]:
        """The samples the model learned from or was tuned on (training and validation)."""
        return self.digests.get("train", set()) | self.digests.get("validation", set())


def sample_keys(dataset) -> list[str]:
    """The digests :class:`RunSplit` holds, of a dataset's samples."""
    import numpy as np

    from flareseq.data.hashing import sample_digests

    labels = dataset.y if dataset.y is not None else np.full(dataset.n_samples, -1, dtype=np.int8)
    return [d.hex()[:32] for d in sample_digests(dataset.ids, labels, dataset.X)]


def load_run_split(run: str, *, experiment: str = "flareseq", tracking_uri: str = "",
                   output_dir: str | PathLike[str] = "runs") -> RunSplit | None:
    """The split of a tracked run; ``None`` for a saved folder (it records no split)."""
    if Path(run).is_dir():
        return None
    import gzip
    import tempfile

    import mlflow

    from flareseq.experiments.report import resolve_run_id
    from flareseq.experiments.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri, output_dir)
    client = mlflow.MlflowClient(uri)
    run_id = resolve_run_id(client, str(run), experiment, uri, hint="or give a saved model folder")
    split = RunSplit(run_id, client.get_run(run_id).data.params.get("data.content_hash", ""))
    with tempfile.TemporaryDirectory(prefix="flareseq-split-") as tmp:
        try:
            local = Path(client.download_artifacts(run_id, "split", tmp))
        except Exception:  # noqa: BLE001 - a run of a study layout, or of an older flareseq: no split
            return split
        for file in local.glob("*.txt.gz"):
            with gzip.open(file, "rt") as handle:
                split.digests[file.name.split(".")[0]] = {line.strip() for line in handle if line.strip()}
    return split


def load_forecaster(run: str | PathLike[str], *, experiment: str = "flareseq", tracking_uri: str = "",
                    output_dir: str | PathLike[str] = "runs") -> Forecaster:
    """The forecaster of ``run``: a saved model folder, or a run id or name in ``experiment``.

    Parameters
    ----------
    run : a folder holding ``forecaster.json`` (at any depth), a run id, or a run name.
    experiment : the MLflow experiment a run name is looked up in.
    tracking_uri, output_dir : the tracking store (``tracking_uri``, else
        ``MLFLOW_TRACKING_URI``, else ``output_dir/mlflow.db``).
    """
    folder = Path(run)
    if folder.is_dir():
        found = next(iter(sorted(folder.rglob("forecaster.json"))), None)
        if found is None:
            raise FlareseqError(f"{folder}: no saved flareseq model (forecaster.json) inside.")
        return Forecaster.load(found.parent)
    import mlflow

    from flareseq.experiments.report import resolve_run_id
    from flareseq.experiments.tracking import resolve_tracking_uri, use_tracking_uri

    uri = resolve_tracking_uri(tracking_uri, output_dir)
    use_tracking_uri(uri)
    run_id = resolve_run_id(mlflow.MlflowClient(uri), str(run), experiment, uri, hint="or give a saved model folder")
    found_run = mlflow.get_run(run_id)
    if found_run.data.tags.get("flareseq.role") == "rotation":
        raise FlareseqError(
            f"run {str(run)!r} is a {found_run.data.tags.get('flareseq.cv', 'K')}-fold rotation, made to verify a "
            f"configuration: it holds no single model. Use one fold's run (e.g. '{found_run.info.run_name}/fold1'), "
            "or train the configuration once without data.cv to forecast with it."
        )
    local = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model"))
    found = next(iter(sorted(local.rglob("forecaster.json"))), None)
    if found is None:
        raise FlareseqError(f"run {run_id} logged no flareseq model (its tracking.log_model was off?).")
    return Forecaster.load(found.parent)
