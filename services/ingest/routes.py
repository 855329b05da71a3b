"""`POST /v1/events/{tenant}`: canonical BuyerEvents from any client that holds a key or a signing secret."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import Request, Response

from services.core.events import Source
from services.core.observability import child
from services.ingest import metrics
from services.ingest.auth import authenticate_key, authenticate_webhook, credentials_kind
from services.ingest.body import parse_json, read_body, require_json
from services.ingest.canonical import events_from_payload
from services.ingest.deps import ingest_of
from services.ingest.producer import publish
from services.ingest.ratelimit import limiter_of
from services.ingest.routing import DataRouter

log = logging.getLogger(__name__)

router = DataRouter()

_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": text}
    for status, text in {
        202: '`{"accepted": n}`, once the broker acknowledged every event',
        400: "the body is not UTF-8 JSON (`invalid_json`)",
        401: "missing or bad key or signature, or unknown tenant (one body for all)",
        403: "the key lacks the `ingest` scope",
        408: "the body was sent too slowly",
        413: "the body is over the size limit",
        415: "Content-Type is not application/json",
        422: "invalid event(s), nothing accepted: one `details` entry per bad field, with the event `index`",
        429: "over the tenant's rate limit (events per second); nothing accepted, retry after `Retry-After`",
        503: "the broker did not acknowledge; retry after `Retry-After` seconds",
    }.items()
}


@router.post(
    "/v1/events/{tenant}",
    status_code=202,
    summary='One BuyerEvent, or a batch {"events": [...]}',
    responses=_RESPONSES,
)
async def post_events(request: Request, tenant: str) -> Response:
    """Authenticated by `Authorization: Bearer <ingest key>` or by Standard Webhooks headers."""
    headers = request.headers
    ingest = ingest_of(request)
    directory, limits = ingest.directory, ingest.limits
    limiter = limiter_of(request.app)
    with metrics.counted_rejections(Source.API.value, tenant):
        require_json(headers)
        if credentials_kind(headers) == "bearer":
            info = await authenticate_key(directory, tenant, headers.get("authorization"))
            limiter.check(info.slug, Source.API.value)
            body = await read_body(request, limits)
        else:
            # The signature covers the body, so it is read first, whatever the tenant.
            body = await read_body(request, limits)
            info = await authenticate_webhook(directory, tenant, body, headers)
        child(metrics.BODY_SIZE, Source.API.value).observe(len(body))
        events = events_from_payload(parse_json(body), info.currency, limits.max_batch_events, body)
        limiter.admit(info.slug, len(events), Source.API.value)
        accepted = await publish(ingest.producer, info.slug, Source.API, events)
    log.debug("events accepted", extra={"tenant": info.slug, "events": accepted})
    return Response(orjson.dumps({"accepted": accepted}), status_code=202, media_type="application/json")
