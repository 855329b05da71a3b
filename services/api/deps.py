"""What API routes get from the app: the engine, the caller's key checked for a scope, the window.

Every read of a domain filters by `KeyInfo.tenant`: a key never sees another tenant's rows, and a
row of another tenant answers exactly like a row that does not exist (404).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import Histogram
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.reads import Reads
from services.api.windows import WindowError, WindowSpec, parse_window
from services.core.auth import Directory
from services.core.http import ApiError
from services.core.observability import LATENCY_BUCKETS
from services.core.tenancy import KeyInfo

ROLLUP_READ_SECONDS = Histogram(
    "salesloop_api_rollup_read_seconds",
    "Time to read the rollups behind one answer (one database round trip)",
    ["query"],
    buckets=LATENCY_BUCKETS,
)


@contextmanager
def rollup_read(query: str) -> Iterator[None]:
    """Time a rollup read; `query` is a fixed name per call site (rep_metrics, team_metrics, ...)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        ROLLUP_READ_SECONDS.labels(query).observe(time.perf_counter() - start)


# The dependencies are coroutines: plain functions would be sent to the thread pool on every request.
async def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


async def _directory(request: Request) -> Directory:
    directory: Directory = request.app.state.directory
    return directory


async def _reads(request: Request) -> Reads:
    reads: Reads = request.app.state.reads
    return reads


EngineDep = Annotated[AsyncEngine, Depends(_engine)]
ReadsDep = Annotated[Reads, Depends(_reads)]
DirectoryDep = Annotated[Directory, Depends(_directory)]

_bearer = HTTPBearer(auto_error=False, description="An API key from `salesloop keys create`.")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


async def _key(
    directory: DirectoryDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> KeyInfo:
    if credentials is None:
        raise _unauthorized("an API key is required: Authorization: Bearer <key>")
    key = await directory.key(credentials.credentials)
    if key is None:
        raise _unauthorized("the API key is not valid or was revoked")
    return key


KeyDep = Annotated[KeyInfo, Depends(_key)]


def require_scope(*accepted: str) -> Callable[[KeyInfo], Awaitable[KeyInfo]]:
    """A dependency passing keys that hold any of `accepted` (or `admin`), refusing others with 403."""

    async def check(key: KeyDep) -> KeyInfo:
        if "admin" in key.scopes or not key.scopes.isdisjoint(accepted):
            return key
        raise ApiError(
            403,
            "forbidden",
            f"this key lacks the scope {' or '.join(accepted)}",
            [{"field": "scope", "reason": f"requires {' or '.join(accepted)}"}],
        )

    return check


RepsWriteKey = Annotated[KeyInfo, Depends(require_scope("reps:write"))]
RepsReadKey = Annotated[KeyInfo, Depends(require_scope("metrics:read", "reps:write"))]
MetricsReadKey = Annotated[KeyInfo, Depends(require_scope("metrics:read"))]
CoachingReadKey = Annotated[KeyInfo, Depends(require_scope("coaching:read"))]
HiringReadKey = Annotated[KeyInfo, Depends(require_scope("hiring:read"))]
HiringWriteKey = Annotated[KeyInfo, Depends(require_scope("hiring:write"))]
TrainingReadKey = Annotated[KeyInfo, Depends(require_scope("training:read"))]
DemandReadKey = Annotated[KeyInfo, Depends(require_scope("demand:read"))]
DemandWriteKey = Annotated[KeyInfo, Depends(require_scope("demand:write"))]


async def _window(
    from_: Annotated[
        str | None,
        Query(
            alias="from", description="First day, YYYY-MM-DD, inclusive (with `to`).", examples=["2026-10-01"]
        ),
    ] = None,
    to: Annotated[
        str | None,
        Query(description="Last day, YYYY-MM-DD, inclusive (with `from`).", examples=["2026-10-30"]),
    ] = None,
    window: Annotated[
        str | None,
        Query(
            description="The last N full days instead of from/to, e.g. `30d` (1d to 1096d). "
            "Default: the last 30 full days in the rep's (or the tenant's) timezone.",
            examples=["30d"],
        ),
    ] = None,
) -> WindowSpec:
    try:
        return parse_window(from_, to, window)
    except WindowError as exc:
        raise ApiError(
            422, "invalid_request", f"{exc.field} {exc.reason}", [{"field": exc.field, "reason": exc.reason}]
        ) from exc


WindowDep = Annotated[WindowSpec, Depends(_window)]


class ErrorDetail(BaseModel):
    field: str | None = None
    reason: str
    index: int | None = None


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail]


class ErrorBody(BaseModel):
    """Every error answer of the API."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "invalid_request",
                        "message": "from must not be after to",
                        "details": [{"field": "from", "reason": "must not be after to"}],
                    }
                }
            ]
        }
    )

    error: ErrorInfo


_ERROR_DESCRIPTIONS = {
    400: "The body is not JSON (or not UTF-8)",
    401: "Missing, unknown or revoked API key",
    403: "The key lacks the scope this route needs",
    404: "No such resource in the key's tenant",
    409: "Conflicts with existing data",
    422: "A parameter or body field is invalid; `details` names it",
    503: "Not ready",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the error answers a route can give."""
    return {s: {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[s]} for s in statuses}
