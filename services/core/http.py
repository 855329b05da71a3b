"""What the HTTP services share inside their apps: the JSON error format, error handlers and the bounds
on request bodies (how they are served, and the bounds on request heads: services/core/serving.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details), status_code=exc.status, headers=exc.headers
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

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


class BodyLimits(Protocol):
    """How large a request body may be and how long it may take to arrive (`Settings` has both)."""

    @property
    def max_body_bytes(self) -> int: ...

    @property
    def body_read_timeout_s(self) -> float: ...


def check_declared_length(headers: Headers, limits: BodyLimits) -> None:
    """Refuse an honestly declared oversize body before reading a byte of it."""
    declared = headers.get("content-length")
    if declared is None:
        return
    if not declared.isdigit():
        raise ApiError(400, "invalid_request", "Content-Length must be a non-negative integer")
    if int(declared) > limits.max_body_bytes:
        raise _too_large(limits)


async def read_body(request: Request, limits: BodyLimits) -> bytes:
    """The whole body, never more than `max_body_bytes` and never slower than `body_read_timeout_s`.

    The declared Content-Length is not trusted: the bound is enforced on the bytes actually received.
    A refusal leaves the rest of the body unread; the server then ends the connection once it has
    answered (services/core/serving.py).
    """
    check_declared_length(request.headers, limits)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.body_read_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_body_bytes:
                    raise _too_large(limits)
                if chunk:
                    chunks.append(chunk)
    except TimeoutError:
        raise ApiError(
            408,
            "request_timeout",
            f"the request body was not received within {limits.body_read_timeout_s:g} s",
        ) from None
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected", "the client went away before sending the body") from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limits: BodyLimits) -> ApiError:
    return ApiError(413, "payload_too_large", f"the body must be at most {limits.max_body_bytes} bytes")


Authenticate = Callable[[Request], Awaitable[object]]
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BoundedBodies:
    """Every request body of an app, read here before the app sees the request: the caller's
    credentials checked first (`authenticate` raises an `ApiError` to refuse), then the body read
    within `limits` (`read_body`) and handed on whole.

    For apps whose routes read the body the framework's way (FastAPI reads it before it resolves any
    dependency, so before the key is checked); ingest's routes call `read_body` themselves, where each
    route's credentials allow it.
    """

    def __init__(self, app: ASGIApp, limits: BodyLimits, authenticate: Authenticate) -> None:
        self.app = app
        self.limits = limits
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            await self.authenticate(request)
            body = await read_body(request, self.limits)
        except ApiError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` for an app whose body was read already: the body, then what the client sends next
    (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
