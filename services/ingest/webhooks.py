"""Vendor webhooks: `POST /webhooks/{hubspot,salesforce,twilio,aircall,sendgrid}/{tenant}`.

Each route runs the same steps with its vendor's pure adapter (services/ingest/sources): read the raw
body (signatures cover its exact bytes), verify it with the tenant's secret for that vendor, parse,
map with the tenant's options (services/core/source_settings.py), publish, and answer only once the
broker acknowledged every event. The broker wait is bounded by SALESLOOP_PRODUCE_TIMEOUT_S (5 s),
well inside the 10-15 s after which Twilio and HubSpot give up on a delivery.

An unknown tenant, or one without a secret for the vendor, is verified against a random decoy secret
and refused with the very answer a wrong signature gets: the routes tell nobody which tenants exist.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, Request, Response
from starlette.datastructures import Headers

from services.core.db import create_engine
from services.core.events import Attribution, Source
from services.core.http import ApiError
from services.core.observability import child
from services.core.settings import Settings
from services.core.source_settings import OptionsCache, SourceOptions
from services.core.tenancy import TenantInfo
from services.ingest import metrics
from services.ingest.auth import _plausible_slug
from services.ingest.body import read_body, require_json, require_media_type
from services.ingest.deps import Ingest
from services.ingest.producer import publish
from services.ingest.ratelimit import limiter_of
from services.ingest.routing import DataRouter
from services.ingest.sources import (
    ADAPTERS,
    Adapter,
    InboundRequest,
    MappingContext,
    Normalised,
    PayloadError,
    SignatureError,
    aircall,
    hubspot,
    salesforce,
    sendgrid,
    twilio,
)
from services.ingest.sources.common import public_url

log = logging.getLogger(__name__)

_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
_XML = ("text/xml", "application/xml")
_DEFAULT_OPTIONS = SourceOptions()


@dataclass(frozen=True)
class Webhooks:
    """What the vendor routes need: the ingest resources, the tenants' options, the public base URL."""

    ingest: Ingest
    options: OptionsCache
    public_base_url: str | None


@dataclass(frozen=True)
class Vendor:
    source: Source
    name: str
    adapter: Adapter
    content_type: Callable[[Headers], None]
    verify: Callable[[InboundRequest, str, SourceOptions], None]
    has_options: bool = False
    # False when a stored secret cannot be used at all (it is then treated as missing).
    usable_secret: Callable[[str], bool] = lambda _: True


def _form(headers: Headers) -> None:
    require_media_type(headers, _FORM)


def _xml(headers: Headers) -> None:
    require_media_type(headers, *_XML)


def _verify_hubspot(request: InboundRequest, secret: str, options: SourceOptions) -> None:
    hubspot.verify(request, secret, allow_legacy=options.legacy_signatures)


def _verify_salesforce(request: InboundRequest, secret: str, options: SourceOptions) -> None:
    salesforce.verify(request, secret, allowed_networks=options.allowed_networks)


def _verify_twilio(request: InboundRequest, secret: str, _: SourceOptions) -> None:
    twilio.verify(request, secret)


def _verify_aircall(request: InboundRequest, secret: str, _: SourceOptions) -> None:
    aircall.verify(request, secret)


def _verify_sendgrid(request: InboundRequest, secret: str, _: SourceOptions) -> None:
    sendgrid.verify(request, secret)


@lru_cache(maxsize=256)
def _sendgrid_key_usable(secret: str) -> bool:
    try:
        sendgrid.load_public_key(secret)
    except ValueError:
        log.warning("a tenant's SendGrid verification key is not an ECDSA P-256 public key")
        return False
    return True


VENDORS: dict[Source, Vendor] = {
    vendor.source: vendor
    for vendor in (
        Vendor(
            Source.HUBSPOT,
            "HubSpot",
            ADAPTERS[Source.HUBSPOT],
            require_json,
            _verify_hubspot,
            has_options=True,
        ),
        Vendor(
            Source.SALESFORCE,
            "Salesforce",
            ADAPTERS[Source.SALESFORCE],
            _xml,
            _verify_salesforce,
            has_options=True,
        ),
        Vendor(Source.TWILIO, "Twilio", ADAPTERS[Source.TWILIO], _form, _verify_twilio),
        Vendor(Source.AIRCALL, "Aircall", ADAPTERS[Source.AIRCALL], require_json, _verify_aircall),
        Vendor(
            Source.SENDGRID,
            "SendGrid",
            ADAPTERS[Source.SENDGRID],
            require_json,
            _verify_sendgrid,
            usable_secret=_sendgrid_key_usable,
        ),
    )
}


async def receive(vendor: Vendor, tenant: str, request: Request, hooks: Webhooks) -> Response:
    """Verify, map and publish one delivery; the answer the vendor needs once the broker acked."""
    source, ingest = vendor.source, hooks.ingest
    with metrics.counted_rejections(source.value, tenant):
        vendor.content_type(request.headers)
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
        result = _normalise(vendor, body, _mapping_context(info.currency, now, options))
        limiter_of(request.app).admit(info.slug, len(result.events), source.value)
        accepted = await _deliver(ingest, info.slug, source, result)
    log.debug(
        "webhook accepted",
        extra={"tenant": info.slug, "source": source.value, "events": accepted, "ignored": result.ignored},
    )
    if source is Source.SALESFORCE:
        return Response(salesforce.ack_response(), status_code=200, media_type=salesforce.ACK_CONTENT_TYPE)
    return Response(
        orjson.dumps({"accepted": accepted, "ignored": result.ignored}), status_code=202, media_type=_JSON
    )


async def _credentials(
    vendor: Vendor, tenant: str, hooks: Webhooks
) -> tuple[TenantInfo | None, str | None, SourceOptions]:
    directory = hooks.ingest.directory
    info = await directory.tenant(tenant) if _plausible_slug(tenant) else None
    secret = await directory.secret(tenant, vendor.source.value) if info is not None else None
    if secret is not None and not vendor.usable_secret(secret):
        secret = None
    if secret is None or not vendor.has_options:
        return info, secret, _DEFAULT_OPTIONS
    return info, secret, await hooks.options.get(tenant, vendor.source.value)


def _verify(
    vendor: Vendor,
    request: InboundRequest,
    secret: str | None,
    options: SourceOptions,
    info: TenantInfo | None,
) -> TenantInfo:
    """The tenant, once the request verified with its secret; 401 (or 422) otherwise."""
    # Without a usable secret the decoy is checked, so the refusal looks like any bad signature.
    missing = None if secret is not None else ("unknown_tenant" if info is None else "no_secret")
    try:
        vendor.verify(request, secret or _decoy(vendor.source), options)
    except SignatureError as exc:
        raise _unauthorized(vendor, exc, missing) from None
    except PayloadError as exc:
        raise _invalid(vendor, exc) from None
    if missing is not None or info is None:
        raise _unauthorized(vendor, SignatureError("signature does not match"), missing)
    return info


def _normalise(vendor: Vendor, body: bytes, ctx: MappingContext) -> Normalised:
    try:
        return vendor.adapter.to_events(vendor.adapter.parse(body), ctx)
    except PayloadError as exc:
        raise _invalid(vendor, exc) from None


async def _deliver(ingest: Ingest, tenant: str, source: Source, result: Normalised) -> int:
    """Publish the events (with their vendor rep identities) and the CRM entity updates of one delivery;
    returns how many events the broker acknowledged."""
    if not result.events and not result.entity_updates:
        return 0
    events = [item.event for item in result.events]
    aliases = [item.rep_alias for item in result.events]
    attribution: Attribution | None = "crm_entity" if source is Source.HUBSPOT else None
    return await publish(ingest.producer, tenant, source, events, aliases, result.entity_updates, attribution)


def _mapping_context(currency: str, now: datetime, options: SourceOptions) -> MappingContext:
    chosen = {
        "hubspot_won_stages": options.won_stages,
        "hubspot_lost_stages": options.lost_stages,
        "salesforce_mql_statuses": options.mql_statuses,
        "salesforce_sql_statuses": options.sql_statuses,
    }
    # Options left unset keep the adapters' defaults.
    changes: dict[str, Any] = {name: value for name, value in chosen.items() if value is not None}
    return MappingContext(
        currency=currency, received_at=now, channel_overrides=options.channel_overrides, **changes
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


def _unauthorized(vendor: Vendor, exc: SignatureError, counted_as: str | None) -> ApiError:
    code = reason_code(exc.reason)
    metrics.AUTH_FAILURES.labels(vendor.source.value, counted_as or code).inc()
    return ApiError(
        401,
        "unauthorized",
        f"the request could not be verified with this tenant's {vendor.name} secret",
        [{"field": None, "reason": exc.reason, "code": code}],
    )


def _invalid(vendor: Vendor, exc: PayloadError) -> ApiError:
    return ApiError(
        422,
        "invalid_payload",
        f"the {vendor.name} payload is not valid; nothing was accepted",
        [exc.detail()],
    )


@cache
def _decoy(source: Source) -> str:
    """A secret no tenant has and no sender can sign with, in the vendor's format."""
    if source is Source.SENDGRID:
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(der).decode()
    if source is Source.SALESFORCE:
        return "00D" + secrets.token_hex(8)[:15]
    return secrets.token_urlsafe(32)


# ---------------------------------------------------------------------------------------------- routes


def _hooks(request: Request) -> Webhooks:
    hooks: Webhooks = request.app.state.webhooks
    return hooks


async def hubspot_webhook(request: Request, tenant: str) -> Response:
    """HubSpot app webhooks (CRM contact and deal subscriptions), signed with `X-HubSpot-Signature-v3`."""
    return await receive(VENDORS[Source.HUBSPOT], tenant, request, _hooks(request))


async def salesforce_webhook(request: Request, tenant: str) -> Response:
    """Salesforce Outbound Messages (Lead, Opportunity, Task, Event); answers the SOAP acknowledgement."""
    return await receive(VENDORS[Source.SALESFORCE], tenant, request, _hooks(request))


async def twilio_webhook(request: Request, tenant: str) -> Response:
    """Twilio Voice status callbacks, signed with `X-Twilio-Signature`."""
    return await receive(VENDORS[Source.TWILIO], tenant, request, _hooks(request))


async def aircall_webhook(request: Request, tenant: str) -> Response:
    """Aircall call webhooks, authenticated by the `token` in the body."""
    return await receive(VENDORS[Source.AIRCALL], tenant, request, _hooks(request))


async def sendgrid_webhook(request: Request, tenant: str) -> Response:
    """SendGrid signed Event Webhook (ECDSA P-256)."""
    return await receive(VENDORS[Source.SENDGRID], tenant, request, _hooks(request))


_ROUTES = {
    Source.HUBSPOT: (hubspot_webhook, (_JSON,)),
    Source.SALESFORCE: (salesforce_webhook, _XML),
    Source.TWILIO: (twilio_webhook, (_FORM,)),
    Source.AIRCALL: (aircall_webhook, (_JSON,)),
    Source.SENDGRID: (sendgrid_webhook, (_JSON,)),
}
_ERRORS = {
    401: "the signature or token does not verify with the tenant's secret, or no such tenant (one body)",
    408: "the body was sent too slowly",
    413: "the body is over the size limit",
    415: "the Content-Type is not the vendor's",
    422: "the payload is malformed: `details` names the field (and `index` within a vendor batch)",
    429: "over the tenant's rate limit (events per second); the vendor retries after `Retry-After`",
    503: "the broker did not acknowledge; the vendor retries",
}


def _responses(source: Source) -> dict[int | str, dict[str, Any]]:
    if source is Source.SALESFORCE:
        ok: dict[int | str, dict[str, Any]] = {
            200: {"description": "the SOAP `<Ack>true</Ack>`, once the broker acknowledged"}
        }
    else:
        ok = {202: {"description": '`{"accepted": n, "ignored": m}`, once the broker acknowledged'}}
    return {**ok, **{status: {"description": text} for status, text in _ERRORS.items()}}


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
    for source, (endpoint, media_types) in _ROUTES.items():
        router.add(
            f"/webhooks/{source.value}/{{tenant}}",
            endpoint,
            status_code=200 if source is Source.SALESFORCE else 202,
            tags=["webhooks"],
            summary=f"{VENDORS[source].name} webhook",
            responses=_responses(source),
            openapi_extra={
                "requestBody": {"required": True, "content": {media: {"schema": {}} for media in media_types}}
            },
        )
    return router


# The five vendor routes (`router.install(app)`); their resources come from `resources`.
router = _router()
