"""Who may post canonical events: an ingest key of the tenant, or a Standard Webhooks signature.

Every failure that could tell whether a tenant exists answers the same 401 body.
"""

from __future__ import annotations

import base64
import binascii
import logging
from functools import lru_cache
from typing import TypeVar

from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook, WebhookVerificationError
from starlette.datastructures import Headers

from services.core.auth import Directory, bearer_token
from services.core.http import ApiError
from services.core.tenancy import TenantInfo
from services.ingest import metrics

log = logging.getLogger(__name__)

INGEST_SCOPES = frozenset({"ingest", "admin"})
WEBHOOK_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
WEBHOOK_SECRET_SOURCE = "webhooks"
# Long enough for a restarting database to come back, short enough not to stall senders.

T = TypeVar("T")


def unauthorized(source: str, reason: str) -> ApiError:
    metrics.AUTH_FAILURES.labels(source, reason).inc()
    return ApiError(
        401,
        "unauthorized",
        "missing or invalid credentials for this tenant",
        headers={"WWW-Authenticate": 'Bearer realm="salesloop"'},
    )


def credentials_kind(headers: Headers) -> str:
    """`bearer`, `webhook` or, when neither is complete, a 401 straight away (no body is read)."""
    if "authorization" in headers:
        return "bearer"
    present = [name in headers for name in WEBHOOK_HEADERS]
    if all(present):
        return "webhook"
    raise unauthorized("api", "missing_header" if any(present) else "missing_credentials")


async def authenticate_key(directory: Directory, tenant: str, authorization: str | None) -> TenantInfo:
    """The tenant of a valid key with the ingest scope; 401 for any other tenant, 403 without the scope."""
    token = bearer_token(authorization)
    if token is None or not (token.isascii() and token.isprintable()):
        raise unauthorized("api", "malformed_authorization")
    key = await directory.key(token)
    if key is None:
        raise unauthorized("api", "unknown_key")
    if key.tenant != tenant:
        raise unauthorized("api", "wrong_tenant")
    info = await directory.tenant(tenant)
    if info is None:
        raise unauthorized("api", "unknown_tenant")
    if not key.scopes & INGEST_SCOPES:
        metrics.AUTH_FAILURES.labels("api", "missing_scope").inc()
        raise ApiError(403, "forbidden", "this key lacks the ingest scope")
    return info


async def authenticate_webhook(
    directory: Directory, tenant: str, body: bytes, headers: Headers
) -> TenantInfo:
    """A Standard Webhooks signature over `body` with the tenant's `webhooks` secret, at most 5 min old."""
    info = await directory.tenant(tenant) if _plausible_slug(tenant) else None
    if info is None:
        raise unauthorized("api", "unknown_tenant")
    secret = await directory.secret(tenant, WEBHOOK_SECRET_SOURCE)
    if secret is None:
        raise unauthorized("api", "no_secret")
    verifier = _verifier(secret)
    if verifier is None:
        log.warning("the tenant's webhooks signing secret is not valid base64", extra={"tenant": tenant})
        raise unauthorized("api", "no_secret")
    signed = {name: headers[name] for name in WEBHOOK_HEADERS}
    signed["webhook-signature"] = readable_signatures(signed["webhook-signature"])
    try:
        # The library checks the 5-minute timestamp tolerance itself.
        verifier.verify(body, signed, json_parse=False)
    except WebhookVerificationError as exc:
        raise unauthorized("api", "stale_timestamp" if "timestamp" in str(exc) else "bad_signature") from None
    except ValueError:
        # Malformed signature lists or base64, and bodies that are not UTF-8 (the library decodes them).
        raise unauthorized("api", "bad_signature") from None
    return info


def readable_signatures(header: str) -> str:
    """The entries of a `webhook-signature` header that could match: `v1,` and base64.

    A sender lists one entry per secret while it rotates them, and the reference libraries skip the
    entries they cannot use; the Python package raises on the first without a comma or with bad
    base64, and would refuse a delivery whose valid entry comes after it. An empty result refuses.
    """
    return " ".join(entry for entry in header.split() if _readable(entry))


def _readable(entry: str) -> bool:
    version, _, signature = entry.partition(",")
    if version != "v1" or not signature:
        return False
    try:
        base64.b64decode(signature, validate=True)
    except ValueError:  # binascii.Error, and non-ASCII text
        return False
    return True


def _plausible_slug(slug: str) -> bool:
    """The slug rule of `tenancy.create_tenant`: anything else names no tenant and needs no look-up
    (and a NUL in it would make the database refuse the query)."""
    return 1 <= len(slug) <= 63 and slug.replace("-", "").replace("_", "").isalnum()


@lru_cache(maxsize=4096)
def _verifier(secret: str) -> Webhook | None:
    try:
        return Webhook(secret)
    except (EmptyWebhookSecretError, binascii.Error, ValueError):
        return None
