"""Standard Webhooks signatures on `POST /v1/events/{tenant}` (services/ingest/auth.py).

A `webhook-signature` header lists space-separated `v1,<base64>` entries (one per secret while a
sender rotates it); one that matches is enough, and the reference libraries skip entries they cannot
read. Signatures are made with the `standardwebhooks` package's own `Webhook.sign`.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import cast

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY
from standardwebhooks.webhooks import Webhook
from starlette.datastructures import Headers

from services.core.auth import Directory
from services.core.http import ApiError
from services.core.tenancy import TenantInfo
from services.ingest.app import create_app
from services.ingest.auth import authenticate_webhook
from tests.conftest import Stack
from tests.factories import TenantFactory
from tests.ingest.harness import metric, one_partition_topic, served

SECRET = "whsec_" + base64.b64encode(b"k" * 24).decode()
OTHER = "whsec_" + base64.b64encode(b"o" * 24).decode()
TENANT = TenantInfo("acme", "USD", "UTC")
FAILURES = "salesloop_ingest_auth_failures_total"
BODY = orjson.dumps({"event_id": "call-1", "type": "call.completed", "occurred_at": "2026-11-20T10:00:00Z"})


class OneTenant:
    """The directory as authenticate_webhook sees it: `acme`, with SECRET as its signing secret."""

    async def tenant(self, slug: str) -> TenantInfo | None:
        return TENANT if slug == TENANT.slug else None

    async def secret(self, tenant: str, source: str) -> str | None:
        return SECRET if (tenant, source) == (TENANT.slug, "webhooks") else None


def headers(signature: str | None = None, *, secret: str = SECRET, age: timedelta = timedelta(0)) -> Headers:
    """Standard Webhooks headers for BODY; `signature` replaces the header, `{valid}` in it the entry."""
    sent_at = datetime.now(UTC) - age
    valid = Webhook(secret).sign("msg_1", sent_at, BODY.decode())
    return Headers(
        {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": valid if signature is None else signature.format(valid=valid),
        }
    )


async def verified(h: Headers) -> TenantInfo:
    return await authenticate_webhook(cast(Directory, OneTenant()), TENANT.slug, BODY, h)


# Entries the reference libraries skip, around and between the valid one.
ACCEPTED = {
    "alone": "{valid}",
    "empty v1 first": "v1, {valid}",
    "no comma first": "garbage {valid}",
    "other version": "v1a,xxx {valid}",
    "two spaces": "v1,AAAA  {valid}",
    "leading and trailing spaces": " {valid} ",
    "not base64 first": "v1,not-base64! {valid}",
    "two commas first": "v1,a,b {valid}",
    "after the valid one": "{valid} garbage v1,",
    "v2 and no comma around": "v2,abc garbage {valid} v1,%%%",
    "tab between": "garbage\t{valid}",
    "not ascii first": "v1,\u00e9t\u00e9 {valid}",
}


@pytest.mark.parametrize("signature", ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_one_valid_entry_verifies_whatever_else_the_header_lists(signature: str) -> None:
    assert await verified(headers(signature)) == TENANT


# Built when the test runs: a header signed at collection time may be minutes old by then.
REFUSED: dict[str, tuple[Callable[[], Headers], str]] = {
    "only malformed entries": (lambda: headers("garbage v1, v1a,xxx  v1,not-base64!"), "bad_signature"),
    "empty": (lambda: headers(""), "bad_signature"),
    "wrong secret beside garbage": (lambda: headers("garbage {valid}", secret=OTHER), "bad_signature"),
    "another body's signature": (
        lambda: headers("garbage v1," + Webhook(SECRET).sign("msg_2", datetime.now(UTC), "{}").split(",")[1]),
        "bad_signature",
    ),
    "stale": (lambda: headers("garbage {valid}", age=timedelta(minutes=6)), "stale_timestamp"),
    "future": (lambda: headers("garbage {valid}", age=-timedelta(minutes=6)), "stale_timestamp"),
}


@pytest.mark.parametrize(("spoiled", "reason"), REFUSED.values(), ids=REFUSED.keys())
async def test_without_a_valid_entry_the_answer_is_401(spoiled: Callable[[], Headers], reason: str) -> None:
    labels = {"source": "api", "reason": reason}
    before = REGISTRY.get_sample_value(FAILURES, labels) or 0.0
    with pytest.raises(ApiError) as refused:
        await verified(spoiled())
    assert (refused.value.status, refused.value.code) == (401, "unauthorized")
    assert REGISTRY.get_sample_value(FAILURES, labels) == before + 1


@pytest.fixture(scope="module")
async def ingest(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        one_partition_topic(stack, "standard-webhooks") as topic,
        served(create_app(topic.settings)) as client,
    ):
        yield client


async def test_the_events_route_takes_a_header_with_a_malformed_entry(
    ingest: httpx.AsyncClient, tenants: TenantFactory
) -> None:
    t = await tenants.create()
    body = orjson.dumps(
        {
            "event_id": f"call-{secrets.token_hex(4)}",
            "type": "call.completed",
            "occurred_at": "2026-11-20T10:00:00Z",
        }
    )
    sent_at = datetime.now(UTC)
    valid = Webhook(t.webhook_secret).sign("msg_1", sent_at, body.decode())
    signed = {
        "content-type": "application/json",
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(sent_at.timestamp())),
    }
    r = await ingest.post(
        f"/v1/events/{t.slug}", content=body, headers={**signed, "webhook-signature": f"garbage  {valid} v1,"}
    )
    assert (r.status_code, r.json()) == (202, {"accepted": 1})
    before = await metric(ingest, FAILURES, source="api", reason="bad_signature")
    r = await ingest.post(
        f"/v1/events/{t.slug}", content=body, headers={**signed, "webhook-signature": "garbage v1,"}
    )
    assert r.status_code == 401
    after = await metric(ingest, FAILURES, source="api", reason="bad_signature")
    assert after == before + 1
