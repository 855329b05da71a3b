"""Reading request bodies safely: media type, size bound while streaming, read deadline, JSON.

Shared by every ingest route, canonical and vendor alike.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request

from services.core.http import ApiError
from services.ingest.deps import Limits

# Ask clients that overran a limit to open a new connection: the rest of their body is unread.
_CLOSE = {"Connection": "close"}


def require_json(headers: Headers) -> None:
    """415 unless the body is declared as JSON (UTF-8, the only encoding JSON allows)."""
    media_type, _, params = headers.get("content-type", "").partition(";")
    media_type = media_type.strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json")
    charset = _param(params, "charset")
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise ApiError(415, "unsupported_media_type", "JSON bodies must be UTF-8 encoded")


def require_media_type(headers: Headers, *allowed: str) -> None:
    """415 unless the Content-Type is one of `allowed` (for vendor formats such as form posts)."""
    media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in allowed:
        raise ApiError(415, "unsupported_media_type", f"Content-Type must be {' or '.join(allowed)}")


def _param(params: str, name: str) -> str | None:
    for part in params.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"')
    return None


def check_declared_length(headers: Headers, limits: Limits) -> None:
    """Refuse an honestly declared oversize body before reading a byte of it."""
    declared = headers.get("content-length")
    if declared is None:
        return
    if not declared.isdigit():
        raise ApiError(
            400, "invalid_request", "Content-Length must be a non-negative integer", headers=_CLOSE
        )
    if int(declared) > limits.max_body_bytes:
        raise _too_large(limits)


async def read_body(request: Request, limits: Limits) -> bytes:
    """The whole body, never more than `max_body_bytes` and never slower than `body_read_timeout_s`.

    The declared Content-Length is not trusted: the bound is enforced on the bytes actually received.
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
            headers=_CLOSE,
        ) from None
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected", "the client went away before sending the body") from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limits: Limits) -> ApiError:
    return ApiError(
        413, "payload_too_large", f"the body must be at most {limits.max_body_bytes} bytes", headers=_CLOSE
    )


def parse_json(body: bytes) -> Any:
    """orjson on the raw bytes: rejects invalid UTF-8, lone surrogates, numbers out of range, depth > 1024."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            400, "invalid_json", "the body is not valid UTF-8 JSON", [{"field": None, "reason": exc.msg}]
        ) from None
