"""What the HTTP services share inside their apps: the JSON error format and error handlers (how they
are served, and the bounds on request heads: services/core/serving.py)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

# FastAPI's native OpenTelemetry looks up the global OpenTelemetry providers on every request, even
# when none is configured; the services report through Prometheus (/metrics) and their JSON logs.
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


class ApiError(Exception):
    """An error a client can act on: rendered as {"error": {"code", "message", "details"}}."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers


DATABASE_RETRY_AFTER_S = 5


def database_unavailable(message: str) -> ApiError:
    """503 with Retry-After: the database cannot answer right now, which is the server's fault, never
    the client's; the same request will do once it is back."""
    return ApiError(
        503, "database_unavailable", message, headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)}
    )


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


def validation_details(
    exc: ValidationError | RequestValidationError, index: int | None = None
) -> list[dict[str, Any]]:
    """One entry per bad field: `field` is a dotted path, `index` the event's position in a batch."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        entry: dict[str, Any] = {"field": ".".join(loc) or None, "reason": err.get("msg", "invalid")}
        if index is not None:
            entry["index"] = index
        out.append(entry)
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details), status_code=exc.status, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            error_body("invalid_request", "the request is not valid", validation_details(exc)),
            status_code=422,
        )

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(error_body("internal", "internal error"), status_code=500)


class RejectNul:
    """422 for a NUL character anywhere in the path or query string.

    Postgres text cannot hold NUL, so such a value would otherwise fail deep inside a query; no
    legitimate id, team or parameter contains one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope["path"] or b"%00" in scope["query_string"] or b"\x00" in scope["query_string"]
        ):
            body = error_body(
                "invalid_request",
                "the request is not valid",
                [{"field": None, "reason": "the path or query string must not contain NUL characters"}],
            )
            await JSONResponse(body, status_code=422)(scope, receive, send)
            return
        await self.app(scope, receive, send)
