"""The forecast service: an HTTP API (FastAPI) around one served model, and its page.

Endpoints (the OpenAPI schema is at ``/openapi.json``):

- ``GET /health``, ``GET /models``: the service's state and the model's identity;
- ``POST /forecast``: samples as arrays with feature names (JSON);
- ``POST /forecast/kaggle``: Kaggle BigData Cup JSON lines (the body);
- ``POST /forecast/files``: uploaded SWAN-SF ``.csv`` and Kaggle ``.json``/``.jsonl`` files;
- ``GET /forecast/latest-regions``: when the service was given a source of today's regions;
- ``GET /``: the page (:mod:`flareseq.forecasting.page`).

Each forecast answer carries probabilities, labels at the model's validation threshold and
the model's identity; ``?series=true`` adds each sample's series (what the page plots).
Parsing and forecasting run in worker threads, so the event loop keeps answering.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import numpy as np
import orjson
import pandas as pd
from fastapi import Depends, FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from flareseq import __version__
from flareseq.data.dataset import FlareDataset
from flareseq.errors import FlareseqError
from flareseq.forecasting.guard import DEFAULT_LIMITS, LOOPBACK_HOSTS, Guard, ServiceLimits
from flareseq.forecasting.page import register_page
from flareseq.forecasting.payloads import (
    RequestError,
    dataset_from_arrays,
    dataset_from_files,
    dataset_from_kaggle_lines,
)
from flareseq.forecasting.schemas import (
    ErrorResponse,
    ForecastResponse,
    HealthResponse,
    ModelsResponse,
    arrays_schema,
)
from flareseq.forecasting.served_model import ServedModel

KAGGLE_MEDIA_TYPES = ("application/x-ndjson", "application/jsonl", "application/json", "text/plain")
_ERRORS = {status: {"model": ErrorResponse, "description": why} for status, why in (
    (400, "The body is not valid JSON, or the Host header is not this service's."),
    (401, "The token is missing or wrong (only when the service has one)."),
    (413, "The body, or the number of samples, is over the service's limit."),
    (415, "The body is not of a supported media type."),
    (422, "The samples do not fit the model: shape, feature names, values."),
)}


def create_app(model: ServedModel, *, limits: ServiceLimits = DEFAULT_LIMITS, token: str | None = None,
               allowed_hosts: frozenset[str] | None = LOOPBACK_HOSTS,
               latest_regions: Callable[[], FlareDataset] | None = None) -> FastAPI:
    """The service's ASGI application.

    Parameters
    ----------
    model : the served model (:func:`flareseq.forecasting.served_model.load_served_model`).
    limits : the largest body and batch a request may carry.
    token : when given, every request must carry it (see :mod:`flareseq.forecasting.guard`).
    allowed_hosts : host names requests may address (None: any; for a non-loopback binding).
    latest_regions : a function returning today's regions as a :class:`FlareDataset` (the
        "Today's Sun" data); when given, ``GET /forecast/latest-regions`` forecasts them and
        the page offers a button for it.
    """
    app = FastAPI(title="flareseq forecast service", version=__version__, docs_url=None, redoc_url=None,
                  description="Probabilities of an M- or X-class flare within 24 h for samples of "
                              "active-region magnetic parameters, from one trained flareseq model.",
                  dependencies=[Depends(_known_query_parameters)])
    app.add_middleware(Guard, token=token, allowed_hosts=allowed_hosts, max_body_bytes=limits.max_body_bytes)
    _register_errors(app)
    identity = model.identity.to_dict()

    @app.get("/health", response_model=HealthResponse, responses=_ERRORS)
    def health():
        return {"status": "ok", "model": model.identity.name, "run_id": model.identity.run_id,
                "latest_regions": latest_regions is not None}

    @app.get("/models", response_model=ModelsResponse, responses=_ERRORS)
    def models():
        return {"models": [identity]}

    @app.post("/forecast", response_model=ForecastResponse, responses=_ERRORS, openapi_extra={"requestBody": {
        "required": True, "content": {"application/json": {"schema": arrays_schema(
            list(model.feature_names), model.n_timesteps, limits.max_samples)}}}})
    async def forecast_arrays(request: Request, series: bool = False):
        """Forecast samples given as arrays with their feature names."""
        _require_media_type(request, ("application/json",))
        body = await request.body()
        dataset = await run_in_threadpool(dataset_from_arrays, body, model_features=model.feature_names,
                                          n_timesteps=model.n_timesteps, max_samples=limits.max_samples)
        return await _answer(model, identity, dataset, series)

    @app.post("/forecast/kaggle", response_model=ForecastResponse, responses=_ERRORS, openapi_extra={"requestBody": {
        "required": True, "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}})
    async def forecast_kaggle(request: Request, series: bool = False):
        """Forecast Kaggle BigData Cup JSON lines (one sample per line; ``classNum`` ignored)."""
        _require_media_type(request, KAGGLE_MEDIA_TYPES)
        body = await request.body()
        dataset = await run_in_threadpool(dataset_from_kaggle_lines, body, source="request body", field="body",
                                          model_features=model.feature_names, n_timesteps=model.n_timesteps,
                                          max_samples=limits.max_samples)
        return await _answer(model, identity, dataset, series)

    @app.post("/forecast/files", response_model=ForecastResponse, responses=_ERRORS)
    async def forecast_files(files: Annotated[list[UploadFile], File(
                                 min_length=1, description="SWAN-SF .csv files (one sample each) and Kaggle "
                                                           ".json/.jsonl files")],
                             series: bool = False):
        """Forecast uploaded files: SWAN-SF samples and Kaggle JSON lines."""
        contents = [(f.filename, await f.read()) for f in files]
        dataset = await run_in_threadpool(dataset_from_files, contents, model_features=model.feature_names,
                                          n_timesteps=model.n_timesteps, max_samples=limits.max_samples)
        return await _answer(model, identity, dataset, series)

    if latest_regions is not None:
        @app.get("/forecast/latest-regions", response_model=ForecastResponse, responses={**_ERRORS, 503: {
            "model": ErrorResponse, "description": "The source of today's regions failed."}})
        async def forecast_latest_regions(series: bool = False):
            """Forecast today's active regions (the service's source of them)."""
            try:
                dataset = await run_in_threadpool(latest_regions)
            except FlareseqError as exc:
                raise RequestError(f"the latest regions are not available: {exc}", field=None, status=503) from None
            return await _answer(model, identity, dataset, series)

    register_page(app)
    return app


async def _answer(model: ServedModel, identity: dict, dataset: FlareDataset, series: bool) -> Response:
    content = await run_in_threadpool(forecast_body, model, identity, dataset, series=series)
    return Response(content, media_type="application/json")


def forecast_body(model: ServedModel, identity: dict, dataset: FlareDataset, *, series: bool = False) -> bytes:
    """The JSON of a forecast answer (:class:`~flareseq.forecasting.schemas.ForecastResponse`)."""
    probability, label = model.predict(dataset)
    meta = dataset.meta
    regions = meta["region"].astype(object).where(meta["region"].notna(), None).tolist()
    starts, ends = _iso_times(meta["start"]), _iso_times(meta["end"])
    values = None
    if series:  # (n, F, T), contiguous: each series one run of memory
        values = np.ascontiguousarray(dataset.select_features(list(model.feature_names)).X.transpose(0, 2, 1))
    forecasts = []
    for i in range(dataset.n_samples):
        item = {"id": str(dataset.ids[i]), "probability": float(probability[i]), "label": int(label[i]),
                "region": None if regions[i] is None else str(regions[i]), "start": starts[i], "end": ends[i]}
        if values is not None:
            item["series"] = {name: values[i, j] for j, name in enumerate(model.feature_names)}
        forecasts.append(item)
    return orjson.dumps({"model": identity, "threshold": model.threshold, "n_samples": dataset.n_samples,
                         "n_flare": int(np.sum(label)), "forecasts": forecasts}, option=orjson.OPT_SERIALIZE_NUMPY)


def _iso_times(column: pd.Series) -> list[str | None]:
    times = pd.to_datetime(column, errors="coerce")
    return [None if pd.isna(t) else t.isoformat() for t in times]


def _known_query_parameters(request: Request) -> None:
    """Refuse a query parameter the endpoint does not take (``?seris=true`` would otherwise
    be ignored without a word)."""
    route = request.scope.get("route")
    known = {p.alias for p in getattr(getattr(route, "dependant", None), "query_params", [])}
    unknown = [k for k in request.query_params if k not in known]
    if unknown:
        takes = f"it takes {', '.join(sorted(known))}" if known else "it takes none"
        raise RequestError(f"unknown query parameter {unknown[0][:60]!r}; {takes}.", field=unknown[0][:60])


def _require_media_type(request: Request, accepted: tuple[str, ...]) -> None:
    found = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if found not in accepted:
        raise RequestError(f"expected a body of media type {' or '.join(accepted)}, found "
                           f"{found[:60] or 'no Content-Type header'}; set the header 'Content-Type: {accepted[0]}'.",
                           field="Content-Type", status=415)


def _register_errors(app: FastAPI) -> None:
    def error(status: int, detail: str, field: str | None, headers=None) -> Response:
        return Response(orjson.dumps({"detail": detail, "field": field}), status_code=status,
                        media_type="application/json", headers=headers)

    @app.exception_handler(RequestError)
    async def request_error(request, exc: RequestError):
        return error(exc.status, str(exc), exc.field)

    @app.exception_handler(FlareseqError)
    async def flareseq_error(request, exc: FlareseqError):
        return error(422, str(exc), None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail), getattr(exc, "field", None), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        # Only the first problem: the answer stays small whatever the request.
        first = exc.errors()[0]
        path = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "header")]
        field = (path[0] + "".join(f"[{p}]" for p in path[1:])) if path else None
        if first.get("type") == "missing":
            return error(422, f"missing field {field!r}, which is required.", field)
        found = repr(first.get("input"))
        found = "" if "input" not in first else f"; found {found[:60]}{'...' if len(found) > 60 else ''}"
        return error(422, f"field {field!r}: {first.get('msg', 'invalid')}{found}.", field)
