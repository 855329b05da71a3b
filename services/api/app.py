"""The feedback API: FastAPI factory, lifespan, health routes and the per-domain routers."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, FastAPI
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import SQLAlchemyError

from services.api.deps import EngineDep, error_responses
from services.api.reads import AnswerCache, ReadPool, Reads
from services.core.auth import Directory
from services.core.db import create_engine
from services.core.http import NO_TELEMETRY, ApiError, RejectNul, install_error_handlers, serve
from services.core.observability import (
    RequestMetrics,
    RequestMetricsMiddleware,
    metrics_response,
    setup_logging,
)
from services.core.settings import Settings

log = logging.getLogger(__name__)

# The Prometheus registry is process-wide: created once, shared by every app built in this process.
HTTP = RequestMetrics("api")

READY_TIMEOUT_S = 2.0

# Consumer domains, each a package whose `routes` module exposes `router`. A domain not (yet)
# deployed is skipped; one that exists but fails to import stops the service.
DOMAINS = ("reps", "coaching", "hiring", "training", "demand", "quality")


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: str


health = APIRouter(tags=["operations"])


@health.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@health.get(
    "/readyz",
    response_model=Health,
    summary="Readiness: the database answers within 2 s",
    responses=error_responses(503),
)
async def readyz(engine: EngineDep) -> Health:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
    except (TimeoutError, OSError, SQLAlchemyError) as exc:
        log.warning("not ready: database unreachable", extra={"error": type(exc).__name__})
        raise ApiError(
            503, "not_ready", "the database is not reachable", headers={"Retry-After": "1"}
        ) from exc
    return Health(status="ready")


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


def domain_routers() -> list[APIRouter]:
    routers = []
    for domain in DOMAINS:
        package = f"services.api.{domain}"
        if importlib.util.find_spec(package) is None or importlib.util.find_spec(f"{package}.routes") is None:
            continue
        router = importlib.import_module(f"{package}.routes").router
        if not isinstance(router, APIRouter):
            raise TypeError(f"{package}.routes.router is not an APIRouter")
        routers.append(router)
    return routers


def _version() -> str:
    try:
        return version("salesloop")
    except PackageNotFoundError:
        return "0"


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings, "salesloop-api")
        app.state.engine = engine
        app.state.directory = Directory(
            engine, settings.secret_key.get_secret_value(), settings.auth_cache_ttl_s
        )
        pool = await ReadPool.open(settings)
        app.state.reads = Reads(pool, AnswerCache())
        log.info("api started")
        try:
            yield
        finally:
            await pool.close()
            await engine.dispose()
            log.info("api stopped")

    app = FastAPI(
        title="salesloop API",
        version=_version(),
        description="Per-rep and per-team feedback metrics from every buyer interaction. Authenticate "
        "with `Authorization: Bearer <key>`; a key sees its own tenant only. Errors are "
        '`{"error": {"code", "message", "details": [{"field", "reason"}]}}`.',
        lifespan=lifespan,
        telemetry=NO_TELEMETRY,
    )
    install_error_handlers(app)
    app.add_middleware(RequestMetricsMiddleware, request_metrics=HTTP)
    app.add_middleware(RejectNul)
    app.include_router(health)
    for router in domain_routers():
        app.include_router(router)
    return app


def main(settings: Settings, host: str, port: int) -> None:
    setup_logging(settings.log_level)
    serve(create_app(settings), host, port)
