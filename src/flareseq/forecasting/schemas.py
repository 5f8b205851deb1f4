"""The forecast service's messages, as pydantic models: they make its OpenAPI schema.

Request bodies are checked by :mod:`flareseq.forecasting.payloads` (bounded work and one
clear error for any body), not by these models; the models describe them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from flareseq.forecasting.payloads import VALUE_LIMIT


class ErrorResponse(BaseModel):
    """Every 4xx answer: what was wrong, and where in the request."""

    detail: str = Field(description="One paragraph: what was expected, what was found, how to fix it.")
    field: str | None = Field(None, description="Where in the request: 'X[0][3]', 'feature_names', 'files[1]', "
                                                "'body', 'Authorization', a query parameter.")


class ModelInfo(BaseModel):
    """The served model's identity."""

    name: str
    kind: str = Field(description="'model' or 'baseline'.")
    source: str = Field(description="'run' (an MLflow run) or 'folder' (a saved forecaster folder).")
    threshold: float = Field(description="Decision threshold, chosen on the run's validation data.")
    calibrated: bool
    feature_names: list[str] = Field(description="The features a sample must have.")
    n_timesteps: int = Field(description="The length of a sample's series.")
    layout: str
    run_id: str | None = None
    run_name: str | None = None
    experiment: str | None = None
    data_content_hash: str | None = Field(None, description="Content hash of the data the run trained on.")
    model_sha256: str | None = Field(None, description="SHA-256 of the saved forecaster's files (folder source).")
    metrics: dict[str, float | None] = Field(default_factory=dict, description="Validation and test scores of the "
                                                                               "run (val_tss, test_tss, ...).")


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class HealthResponse(BaseModel):
    status: str = Field(description="'ok' when the model is loaded and the service answers.")
    model: str = Field(description="The served model's name.")
    run_id: str | None = None
    latest_regions: bool = Field(description="Whether GET /forecast/latest-regions is offered.")


class Forecast(BaseModel):
    id: str = Field(description="The sample's id (given, Kaggle 'id', SWAN-SF file name, or its position).")
    probability: float = Field(description="Probability of an M- or X-class flare in the 24 h after the window.")
    label: int = Field(description="1 when probability >= threshold, else 0.")
    region: str | None = Field(None, description="HARP number, when the input names it (SWAN-SF).")
    start: str | None = Field(None, description="Window start (ISO 8601), when known.")
    end: str | None = Field(None, description="Window end (ISO 8601), when known.")
    series: dict[str, list[float | None]] | None = Field(
        None, description="With ?series=true: the sample's values per model feature (null where missing).")


class ForecastResponse(BaseModel):
    model: ModelInfo
    threshold: float
    n_samples: int
    n_flare: int = Field(description="How many samples are forecast to flare (label 1).")
    forecasts: list[Forecast]


class ArraysRequest(BaseModel):
    """Samples as arrays (schema only: see :func:`flareseq.forecasting.payloads.dataset_from_arrays`)."""

    model_config = ConfigDict(extra="forbid")

    feature_names: list[str] = Field(min_length=1, description="One name per value of a time step; must include "
                                                               "every feature of the model (others are ignored).")
    X: list[list[list[float | None]]] = Field(
        min_length=1, description="Samples, shape (n_samples, n_timesteps, len(feature_names)); null for missing.")
    ids: list[str] | None = Field(None, description="One id per sample, as many as samples in X (default: "
                                                    "their positions).")


def arrays_schema(feature_names: list[str], n_timesteps: int, max_samples: int) -> dict:
    """ArraysRequest's JSON schema for the served model: its features (in any order), its
    sequence length, the batch limit. The service also takes extra features (ignored); the
    schema states the plain case, so that every request valid by it is accepted."""
    schema = ArraysRequest.model_json_schema()
    names = schema["properties"]["feature_names"]
    names["items"] = {"type": "string", "enum": list(feature_names)}
    names["minItems"] = names["maxItems"] = len(feature_names)
    names["uniqueItems"] = True
    x = schema["properties"]["X"]
    x["maxItems"] = max_samples
    x["items"]["minItems"] = x["items"]["maxItems"] = n_timesteps
    x["items"]["items"]["minItems"] = x["items"]["items"]["maxItems"] = len(feature_names)
    x["items"]["items"]["items"]["anyOf"][0].update(minimum=-VALUE_LIMIT, maximum=VALUE_LIMIT)
    ids = schema["properties"]["ids"]["anyOf"][0]
    ids["items"]["maxLength"] = 200
    return schema
