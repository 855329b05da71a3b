"""The ingest service: FastAPI factory, its lifespan (engine, directory, producer, vendor options) and
`salesloop ingest`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI, Response
from fastapi.responses import PlainTextResponse

from services.core.auth import Directory
from services.core.db import create_engine
from services.core.http import NO_TELEMETRY, error_body, install_error_handlers
from services.core.kafka import EventProducer
from services.core.observability import RequestMetricsMiddleware, metrics_response, setup_logging
from services.core.serving import serve
from services.core.settings import Settings
from services.ingest import metrics, routes, webhooks
from services.ingest.deps import Ingest, Limits, ProducerDep

log = logging.getLogger(__name__)

_JSON = "application/json"


def create_app(settings: Settings) -> FastAPI:
    limits = Limits.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings, "salesloop-ingest")
        producer = EventProducer(settings)
        try:
            await producer.start()
            directory = Directory(engine, settings.keyring(), settings.auth_cache_ttl_s)
            app.state.ingest = Ingest(directory, producer, limits)
            async with webhooks.resources(app, settings):
                log.info(
                    "ingest ready to serve",
                    extra={"topic": settings.events_topic, "idempotent_producer": producer.idempotent},
                )
                yield
        finally:
            await producer.stop()
            await engine.dispose()

    app = FastAPI(
        title="salesloop ingest",
        version="1",
        summary="Buyer events in: canonical JSON and vendor webhooks, verified, validated, onto Kafka.",
        lifespan=lifespan,
        telemetry=NO_TELEMETRY,
        # A redirect to the path without its trailing slash would be built from the Host header.
        redirect_slashes=False,
    )
    install_error_handlers(app)
    app.add_middleware(RequestMetricsMiddleware, request_metrics=metrics.HTTP)
    routes.router.install(app)
    webhooks.router.install(app)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> Response:
        """The process is alive."""
        return Response(b'{"status":"ok"}', media_type=_JSON)

    @app.get("/readyz", tags=["operations"])
    async def readyz(producer: ProducerDep) -> Response:
        """Ready when the broker answers and the events topic exists."""
        if await producer.ready():
            return Response(b'{"status":"ready"}', media_type=_JSON)
        body = error_body("not_ready", "the event broker is not reachable or the events topic is missing")
        return Response(orjson.dumps(body), status_code=503, media_type=_JSON)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def prometheus_metrics() -> Response:
        """Prometheus exposition."""
        return metrics_response()

    return app


def main(settings: Settings, host: str, port: int) -> None:
    setup_logging(settings.log_level)
    serve(create_app(settings), host, port, settings)
