"""The feedback API: FastAPI factory, lifespan, health routes and the per-domain routers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from services.api.auth import authenticate
from services.api.coaching.history_routes import router as coaching_history
from services.api.coaching.routes import router as coaching
from services.api.coaching.snapshots import Snapshotter
from services.api.contacts.routes import router as contacts
from services.api.conversations.routes import router as conversations
from services.api.demand.routes import router as demand
from services.api.economics.routes import router as economics
from services.api.hiring.routes import router as hiring
from services.api.kit.answers import example
from services.api.kit.errors import Conflict, DomainError, InvalidInput, NotFound
from services.api.kit.reads import AnswerCache, Reads
from services.api.kit.replica import ReplicaState, open_reads, replica_state
from services.api.kit.routing import EngineDep, ReadEngineDep, error_responses
from services.api.pipeline import gauges as pipeline_gauges
from services.api.pipeline.routes import router as pipeline
from services.api.planning.routes import router as planning
from services.api.quality.routes import router as quality
from services.api.reps.routes import router as reps
from services.api.training.routes import router as training
from services.core.auth import Directory
from services.core.db import create_engine
from services.core.http import (
    BODY_METHODS,
    NO_TELEMETRY,
    ApiError,
    BoundedBodies,
    RejectNul,
    error_body,
    install_error_handlers,
)
from services.core.observability import (
    RequestMetrics,
    RequestMetricsMiddleware,
    metrics_response,
    setup_logging,
)
from services.core.serving import serve
from services.core.settings import Settings

log = logging.getLogger(__name__)

# The Prometheus registry is process-wide: created once, shared by every app built in this process.
HTTP = RequestMetrics("api")

READY_TIMEOUT_S = 2.0

# The status of each kind of domain error (services/api/kit/errors.py); a DomainError of no listed
# kind is a bug, answered 500 by the catch-all handler.
STATUS: dict[type[DomainError], int] = {NotFound: 404, Conflict: 409, InvalidInput: 422}


class Health(BaseModel):
    model_config = example({"status": "ok"})

    status: str


class Readiness(Health):
    model_config = example(
        {"status": "ready", "replica": {"in_recovery": True, "replay_lag_s": 0.0, "replay_paused": False}}
    )

    replica: ReplicaState | None = Field(
        None, description="The read replica (SALESLOOP_READ_DATABASE_URL); absent without one"
    )


health = APIRouter(tags=["operations"])


@health.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@health.get(
    "/readyz",
    summary="Readiness: the database (and the read replica, if set) answers within 2 s",
    responses=error_responses(503),
    response_model_exclude_none=True,
)
async def readyz(engine: EngineDep, reading: ReadEngineDep) -> Readiness:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
    except (TimeoutError, OSError, SQLAlchemyError) as exc:
        log.warning("not ready: database unreachable", extra={"error": type(exc).__name__})
        raise ApiError(
            503, "not_ready", "the database is not reachable", headers={"Retry-After": "1"}
        ) from exc
    if reading is engine:
        return Readiness(status="ready")
    try:
        replica = await replica_state(reading, READY_TIMEOUT_S)
    except (TimeoutError, OSError, SQLAlchemyError) as exc:
        log.warning("not ready: read replica unreachable", extra={"error": type(exc).__name__})
        raise ApiError(
            503, "not_ready", "the read replica is not reachable", headers={"Retry-After": "1"}
        ) from exc
    return Readiness(status="ready", replica=replica)


@health.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus exposition",
    responses={
        200: {
            "content": {
                "text/plain": {
                    "example": 'salesloop_api_requests_total{method="GET",route="/v1/reps",status="200"} 3.0'
                }
            }
        }
    },
)
async def metrics() -> Response:
    return metrics_response()


async def domain_error(_: Request, exc: Exception) -> JSONResponse:
    """A domain error as the API's JSON error body, with the status of its kind."""
    assert isinstance(exc, DomainError)
    status = next(STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS)
    return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=status)


def _version() -> str:
    try:
        return version("salesloop")
    except PackageNotFoundError:
        return "0"


# The consumer domains, in the order the OpenAPI document lists them.
DOMAINS = (
    reps,
    coaching,
    coaching_history,
    conversations,
    hiring,
    training,
    demand,
    pipeline,
    economics,
    planning,
    quality,
    contacts,
)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings, "salesloop-api")
        app.state.engine = engine
        app.state.directory = Directory(engine, settings.keyring(), settings.auth_cache_ttl_s)
        # GET answers: SALESLOOP_READ_DATABASE_URL if set (services/api/kit/replica.py).
        app.state.read_engine, pool = await open_reads(settings, engine)
        app.state.reads = Reads(pool, AnswerCache())
        gauges = pipeline_gauges.start(app.state.reads, settings.pipeline_metrics_tenant_list())
        # The weekly coaching snapshots (services/api/coaching/snapshots.py).
        snapshotter = await Snapshotter.start(settings)
        log.info("api started")
        try:
            yield
        finally:
            await snapshotter.stop()
            if gauges is not None:
                gauges.cancel()
                await asyncio.gather(gauges, return_exceptions=True)
            await pool.close()
            if app.state.read_engine is not engine:
                await app.state.read_engine.dispose()
            await engine.dispose()
            log.info("api stopped")

    app = FastAPI(
        title="salesloop API",
        version=_version(),
        description="Per-rep and per-team feedback metrics from every buyer interaction. Authenticate "
        "with `Authorization: Bearer <key>`; a key sees its own tenant only. Errors are "
        '`{"error": {"code", "message", "details": [{"field", "reason"}]}}`. Every operation answers 431 '
        "to a request line and headers over 16 KiB, and 503 while the process holds its most "
        "connections; a write's key is checked before its body is read.",
        lifespan=lifespan,
        telemetry=NO_TELEMETRY,
        # A redirect to the path without its trailing slash would be built from the Host header.
        redirect_slashes=False,
    )
    install_error_handlers(app)
    app.add_exception_handler(DomainError, domain_error)
    # Innermost: a refusal here is still counted and timed by the metrics.
    app.add_middleware(BoundedBodies, limits=settings, authenticate=authenticate)
    app.add_middleware(RequestMetricsMiddleware, request_metrics=HTTP)
    app.add_middleware(RejectNul)
    app.include_router(health)
    for router in DOMAINS:
        app.include_router(router)
    _document_body_bounds(app)
    return app


def _document_body_bounds(app: FastAPI) -> None:
    """408 and 413 in the OpenAPI document of every operation that takes a body: `BoundedBodies`
    answers them alike for all, before any route runs."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    bounds = {
        "408": "The body was not received within SALESLOOP_BODY_READ_TIMEOUT_S (10 s)",
        "413": "The body is over SALESLOOP_MAX_BODY_BYTES (1 MiB)",
    }
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            for operations in generate()["paths"].values():
                for method, operation in operations.items():
                    if method.upper() in BODY_METHODS:
                        for status, description in bounds.items():
                            answer = {"description": description, "content": error}
                            operation["responses"].setdefault(status, answer)
        return generate()

    app.openapi = openapi  # type: ignore[method-assign]


def main(settings: Settings, host: str, port: int) -> None:
    setup_logging(settings.log_level)
    serve(create_app(settings), host, port, settings)
