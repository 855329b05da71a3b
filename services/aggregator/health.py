"""The aggregator's small HTTP side: /healthz, /readyz and /metrics, served in the consumer's event loop."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import ORJSONResponse
from starlette.responses import Response

from services.core.http import error_body, install_error_handlers
from services.core.observability import metrics_response
from services.core.serving import uvicorn_options
from services.core.settings import Settings


def health_app(ready: Callable[[], Awaitable[bool]]) -> FastAPI:
    app = FastAPI(
        title="salesloop aggregator", openapi_url=None, docs_url=None, redoc_url=None, redirect_slashes=False
    )
    install_error_handlers(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=None)
    async def readyz() -> dict[str, str] | ORJSONResponse:
        if await ready():
            return {"status": "ready"}
        return ORJSONResponse(
            error_body("not_ready", "the consumer has not started or Postgres is unreachable"),
            status_code=503,
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        return metrics_response()

    return app


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves SIGTERM/SIGINT to its host process (the consumer drains first)."""

    def __init__(self, app: Any, host: str, port: int, settings: Settings) -> None:
        super().__init__(
            uvicorn.Config(app, host=host, port=port, lifespan="off", **uvicorn_options(settings))
        )

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
