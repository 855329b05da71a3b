"""What routes declare: the app's resources they take, shared path and query parameters, and the
error answers they document.

The dependencies are coroutines: plain functions would be sent to the thread pool on every request.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.kit.answers import example
from services.api.kit.reads import Reads
from services.api.kit.windows import WindowSpec, parse_window


async def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


async def _read_engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.read_engine
    return engine


async def _reads(request: Request) -> Reads:
    reads: Reads = request.app.state.reads
    return reads


# The primary: writes, and reads a write depends on.
EngineDep = Annotated[AsyncEngine, Depends(_engine)]
# GET answers read through the SQLAlchemy engine: the read replica if one is set, else the primary
# (services/api/kit/replica.py). The read pool of `ReadsDep` connects to the same server.
ReadEngineDep = Annotated[AsyncEngine, Depends(_read_engine)]
ReadsDep = Annotated[Reads, Depends(_reads)]

RepId = Annotated[str, Path(min_length=1, max_length=200, description="The tenant's own id of the rep")]
Team = Annotated[str, Path(min_length=1, max_length=200, description="Team name, as set on its reps")]


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
    return parse_window(from_, to, window)


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

    model_config = example(
        {
            "error": {
                "code": "invalid_request",
                "message": "from must not be after to",
                "details": [{"field": "from", "reason": "must not be after to"}],
            }
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
