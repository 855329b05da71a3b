"""Vendor webhooks: `POST /webhooks/{vendor}/{tenant}` for every vendor in `sources.VENDORS`.

Every route runs the same steps with its vendor's pure adapter (services/ingest/sources): read the raw
body (signatures cover its exact bytes), verify it with the tenant's secret for that vendor and the
tenant's options for it (services/core/source_settings.py), parse, map, publish, and answer what the
vendor needs only once the broker acknowledged every event. The broker wait is bounded by
SALESLOOP_PRODUCE_TIMEOUT_S (5 s), well inside the 10-15 s after which Twilio and HubSpot give up on a
delivery. Nothing here names a vendor: what differs between them is in their `Vendor` records.

An unknown tenant, or one without a secret for the vendor, is verified against a random decoy secret
and refused with the very answer a wrong signature gets: the routes tell nobody which tenants exist.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

from fastapi import FastAPI, Request, Response

from services.core.db import create_engine
from services.core.http import ApiError
from services.core.observability import child
from services.core.settings import Settings
from services.core.source_settings import OptionsCache
from services.core.tenancy import TenantInfo
from services.ingest import metrics
from services.ingest.auth import _plausible_slug
from services.ingest.body import read_body, require_json, require_media_type
from services.ingest.deps import Ingest
from services.ingest.producer import publish
from services.ingest.ratelimit import limiter_of
from services.ingest.routing import DataRouter, Endpoint
from services.ingest.sources import VENDORS
from services.ingest.sources.common import (
    InboundRequest,
    MappingContext,
    Normalised,
    PayloadError,
    SignatureError,
)
from services.ingest.sources.kit import public_url
from services.ingest.sources.registry import JSON, Vendor

log = logging.getLogger(__name__)

AnyVendor = Vendor[Any, Any]


@dataclass(frozen=True)
class Webhooks:
    """What the vendor routes need: the ingest resources, the tenants' options, the public base URL."""

    ingest: Ingest
    options: OptionsCache
    public_base_url: str | None


async def receive(vendor: AnyVendor, tenant: str, request: Request, hooks: Webhooks) -> Response:
    """Verify, map and publish one delivery; the answer the vendor needs once the broker acked."""
    source, ingest = vendor.source, hooks.ingest
    with metrics.counted_rejections(source.value, tenant):
        _check_content_type(vendor, request)
        body = await read_body(request, ingest.limits)
        child(metrics.BODY_SIZE, source.value).observe(len(body))
        now = datetime.now(UTC)
        info, secret, options = await _credentials(vendor, tenant, hooks)
        inbound = InboundRequest(
            method=request.method,
            url=_public_url(request, hooks.public_base_url),
            headers=request.headers,
            body=body,
            now=now,
            client_ip=request.client.host if request.client else None,
        )
        info = _verify(vendor, inbound, secret, options, info)
        ctx = MappingContext(currency=info.currency, received_at=now, timezone=info.timezone)
        result = _normalise(vendor, body, ctx, options)
        limiter_of(request.app).admit(info.slug, len(result.events), source.value)
        accepted = await _deliver(ingest, info.slug, vendor, result)
    log.debug(
        "webhook accepted",
        extra={"tenant": info.slug, "source": source.value, "events": accepted, "ignored": result.ignored},
    )
    answer = vendor.answer
    return Response(
        answer.body(accepted, result.ignored), status_code=answer.status_code, media_type=answer.media_type
    )


def _check_content_type(vendor: AnyVendor, request: Request) -> None:
    if vendor.media_types == (JSON,):
        require_json(request.headers)
    else:
        require_media_type(request.headers, *vendor.media_types)


async def _credentials(
    vendor: AnyVendor, tenant: str, hooks: Webhooks
) -> tuple[TenantInfo | None, str | None, Any]:
    """The tenant, its secret for the vendor (None when missing or unusable) and its options for it."""
    directory = hooks.ingest.directory
    info = await directory.tenant(tenant) if _plausible_slug(tenant) else None
    secret = await directory.secret(tenant, vendor.source.value) if info is not None else None
    if secret is not None and not _usable(vendor, secret):
        secret = None
    if secret is None or vendor.settings is None:
        return info, secret, vendor.defaults
    return info, secret, await hooks.options.get(tenant, vendor.source.value, vendor.load_options)


@lru_cache(maxsize=256)
def _usable(vendor: AnyVendor, secret: str) -> bool:
    """False when the vendor cannot use the stored secret at all (it then counts as missing)."""
    if vendor.check_secret is None:
        return True
    try:
        vendor.check_secret(secret)
    except ValueError:
        log.warning("a tenant's secret for this vendor is not usable", extra={"source": vendor.source.value})
        return False
    return True


def _verify(
    vendor: AnyVendor,
    request: InboundRequest,
    secret: str | None,
    options: Any,
    info: TenantInfo | None,
) -> TenantInfo:
    """The tenant, once the request verified with its secret; 401 (or 422) otherwise."""
    # Without a usable secret the decoy is checked, so the refusal looks like any bad signature.
    missing = None if secret is not None else ("unknown_tenant" if info is None else "no_secret")
    try:
        vendor.verify(request, secret or _decoy(vendor), options)
    except SignatureError as exc:
        raise _unauthorized(vendor, exc, missing) from None
    except PayloadError as exc:
        raise _invalid(vendor, exc) from None
    if missing is not None or info is None:
        raise _unauthorized(vendor, SignatureError("signature does not match"), missing)
    return info


def _normalise(vendor: AnyVendor, body: bytes, ctx: MappingContext, options: Any) -> Normalised:
    try:
        return vendor.map(vendor.parse(body), ctx, options)
    except PayloadError as exc:
        raise _invalid(vendor, exc) from None


async def _deliver(ingest: Ingest, tenant: str, vendor: AnyVendor, result: Normalised) -> int:
    """Publish the events (with their vendor rep identities) and the CRM entity updates of one delivery;
    returns how many events the broker acknowledged."""
    if not result.events and not result.entity_updates:
        return 0
    events = [item.event for item in result.events]
    aliases = [item.rep_alias for item in result.events]
    return await publish(
        ingest.producer, tenant, vendor.source, events, aliases, result.entity_updates, vendor.attribution
    )


def _public_url(request: Request, base_url: str | None) -> str:
    """What the vendor signed: SALESLOOP_PUBLIC_BASE_URL behind a proxy, else the URL as requested."""
    url = request.url
    return public_url(
        scheme=url.scheme, host=url.netloc, path=url.path, query=url.query, port=url.port, base_url=base_url
    )


def reason_code(reason: str) -> str:
    """A short code for an adapter's SignatureError reason: the metric label and the client's hint."""
    if reason.startswith("missing"):
        return "missing_credentials"
    if "older than" in reason:
        return "stale_timestamp"
    if "in the future" in reason:
        return "future_timestamp"
    if "timestamp" in reason.lower():
        return "malformed_timestamp"
    if "allowed networks" in reason:
        return "address_not_allowed"
    return "bad_signature"


def _unauthorized(vendor: AnyVendor, exc: SignatureError, counted_as: str | None) -> ApiError:
    code = reason_code(exc.reason)
    metrics.AUTH_FAILURES.labels(vendor.source.value, counted_as or code).inc()
    return ApiError(
        401,
        "unauthorized",
        f"the request could not be verified with this tenant's {vendor.name} secret",
        [{"field": None, "reason": exc.reason, "code": code}],
    )


def _invalid(vendor: AnyVendor, exc: PayloadError) -> ApiError:
    return ApiError(
        422,
        "invalid_payload",
        f"the {vendor.name} payload is not valid; nothing was accepted",
        [exc.detail()],
    )


# Decoys are made once per vendor (a SendGrid decoy is a fresh EC key) and never change.
@cache
def _decoy(vendor: AnyVendor) -> str:
    """A secret no tenant has and no sender can sign with, in the vendor's format."""
    return vendor.decoy()


# ---------------------------------------------------------------------------------------------- routes

_ERRORS = {
    401: "the signature or token does not verify with the tenant's secret, or no such tenant (one body)",
    408: "the body was sent too slowly",
    413: "the body is over the size limit",
    415: "the Content-Type is not the vendor's",
    422: "the payload is malformed: `details` names the field (and `index` within a vendor batch)",
    429: "over the tenant's rate limit (events per second); the vendor retries after `Retry-After`",
    503: "the broker did not acknowledge; the vendor retries",
}


def _endpoint(vendor: AnyVendor) -> Endpoint:
    """The route's endpoint: `receive` for this vendor."""

    async def webhook(request: Request, tenant: str) -> Response:
        hooks: Webhooks = request.app.state.webhooks
        return await receive(vendor, tenant, request, hooks)

    webhook.__name__ = f"{vendor.source.value}_webhook"
    webhook.__doc__ = vendor.description
    return webhook


@asynccontextmanager
async def resources(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """`app.state.webhooks`, once the app's lifespan has created the ingest resources."""
    # Options are read rarely (cached per tenant), so a small pool of their own is enough.
    engine = create_engine(settings, "salesloop-ingest", pool_size=2)
    try:
        options = OptionsCache(engine, settings.auth_cache_ttl_s)
        app.state.webhooks = Webhooks(app.state.ingest, options, settings.public_base_url)
        yield
    finally:
        await engine.dispose()


def _router() -> DataRouter:
    router = DataRouter()
    for vendor in VENDORS:
        answer = vendor.answer
        router.add(
            vendor.path,
            _endpoint(vendor),
            status_code=answer.status_code,
            tags=["webhooks"],
            summary=f"{vendor.name} webhook",
            description=vendor.description,
            responses={
                answer.status_code: {"description": answer.description},
                **{status: {"description": text} for status, text in _ERRORS.items()},
            },
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {media: {"schema": {}} for media in vendor.media_types},
                }
            },
        )
    return router


# One route per vendor (`router.install(app)`); their resources come from `resources`.
router = _router()
