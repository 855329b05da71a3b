"""Who is calling: the bearer key, checked for the scope a route needs.

Every read of a domain filters by `KeyInfo.tenant`: a key never sees another tenant's rows, and a
row of another tenant answers exactly like a row that does not exist (404).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.core.auth import Directory, bearer_token
from services.core.http import ApiError
from services.core.tenancy import KeyInfo

_bearer = HTTPBearer(auto_error=False, description="An API key from `salesloop keys create`.")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(request: Request) -> KeyInfo:
    """The key of the request; 401 without a valid one. Also checked before a request body is read
    (services.core.http.BoundedBodies), so that nobody without a key gets a body read."""
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise _unauthorized("an API key is required: Authorization: Bearer <key>")
    directory: Directory = request.app.state.directory
    key = await directory.key(token)
    if key is None:
        raise _unauthorized("the API key is not valid or was revoked")
    return key


async def _key(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> KeyInfo:
    # `_bearer` documents the scheme in the OpenAPI document; `authenticate` reads the header.
    return await authenticate(request)


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
ConversationsReadKey = Annotated[KeyInfo, Depends(require_scope("conversations:read"))]
HiringReadKey = Annotated[KeyInfo, Depends(require_scope("hiring:read"))]
HiringWriteKey = Annotated[KeyInfo, Depends(require_scope("hiring:write"))]
TrainingReadKey = Annotated[KeyInfo, Depends(require_scope("training:read"))]
DemandReadKey = Annotated[KeyInfo, Depends(require_scope("demand:read"))]
DemandWriteKey = Annotated[KeyInfo, Depends(require_scope("demand:write"))]
PipelineReadKey = Annotated[KeyInfo, Depends(require_scope("pipeline:read"))]
PipelineWriteKey = Annotated[KeyInfo, Depends(require_scope("pipeline:write"))]
EconomicsReadKey = Annotated[KeyInfo, Depends(require_scope("economics:read"))]
EconomicsWriteKey = Annotated[KeyInfo, Depends(require_scope("economics:write"))]
