"""Reading request bodies safely: media type, then the body within the size and time bounds every
service shares (`read_body`, services/core/http.py), then JSON.

Shared by every ingest route, canonical and vendor alike.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.datastructures import Headers

from services.core.http import ApiError
from services.core.http import read_body as read_body


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


def parse_json(body: bytes) -> Any:
    """orjson on the raw bytes: rejects invalid UTF-8, lone surrogates, numbers out of range, depth > 1024."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            400, "invalid_json", "the body is not valid UTF-8 JSON", [{"field": None, "reason": exc.msg}]
        ) from None
