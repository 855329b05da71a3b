"""A deal's close date and forecast category through the HubSpot route, against the session's broker:
the close date is the day in the tenant's own time zone, and a value that is none answers 422 naming it.
(Canonical `deal.updated` events with these fields are in test_events.py; the mappings themselves in
sources/test_hubspot.py and sources/test_salesforce.py.)"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from hubspot.utils.signature import Signature
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.crm import SCHEMA_HEADER as CRM_SCHEMA_HEADER
from services.core.settings import DEV_SECRET_KEY
from services.core.tenancy import set_secret
from services.ingest.app import create_app
from tests.conftest import Stack
from tests.factories import TenantCtx, TenantFactory
from tests.ingest.harness import Topic, one_partition_topic, served

BASE = "http://127.0.0.1:8001"
SECRET = secrets.token_hex(16)
# 17:45 on 31 July in Los Angeles: already 1 August in UTC.
PICKED = datetime(2026, 8, 1, 0, 45, tzinfo=UTC)


@pytest.fixture(scope="module")
async def ingest(stack: Stack) -> AsyncIterator[tuple[httpx.AsyncClient, Topic]]:
    async with (
        one_partition_topic(stack, "deal-fields") as topic,
        served(create_app(topic.settings), BASE) as client,
    ):
        yield client, topic


async def _tenant(tenants: TenantFactory, engine: AsyncEngine, timezone: str) -> TenantCtx:
    t = await tenants.create(timezone=timezone)
    await set_secret(engine, DEV_SECRET_KEY, t.slug, "hubspot", SECRET)
    return t


def _notifications(occurred_at: datetime, **values: str) -> list[dict[str, Any]]:
    return [
        {
            "eventId": 4200000000 + i,
            "subscriptionId": 700020 + i,
            "portalId": 891472211,
            "appId": 7906213,
            "occurredAt": int(occurred_at.timestamp() * 1000),
            "subscriptionType": "deal.propertyChange",
            "attemptNumber": 0,
            "objectId": 19883472050,
            "propertyName": name,
            "propertyValue": value,
            "changeSource": "CRM_UI",
        }
        for i, (name, value) in enumerate(values.items())
    ]


async def _deliver(client: httpx.AsyncClient, slug: str, payload: list[dict[str, Any]]) -> httpx.Response:
    body = orjson.dumps(payload)
    url = f"{BASE}/webhooks/hubspot/{slug}"
    timestamp = str(int(datetime.now(UTC).timestamp() * 1000))
    signature = Signature.get_signature(
        SECRET, body.decode(), "v3", http_uri=url, http_method="POST", timestamp=timestamp
    )
    headers = {
        "content-type": "application/json",
        "X-HubSpot-Signature-v3": signature,
        "X-HubSpot-Request-Timestamp": timestamp,
    }
    return await client.post(f"/webhooks/hubspot/{slug}", content=body, headers=headers)


async def _updates(client: httpx.AsyncClient, topic: Topic, t: TenantCtx) -> list[dict[str, Any]]:
    """The CRM updates on the topic, up to a sentinel event posted now."""
    sentinel = f"sentinel-{secrets.token_hex(6)}"
    r = await client.post(
        f"/v1/events/{t.slug}",
        json={"event_id": sentinel, "type": "email.sent", "occurred_at": "2026-10-05T10:00:00Z"},
        headers={"Authorization": f"Bearer {t.ingest_key}"},
    )
    assert r.status_code == 202, r.text
    records = await topic.read_until(sentinel)
    found = [orjson.loads(rec.value) for rec in records if CRM_SCHEMA_HEADER in rec.headers]
    return [u for u in found if u["tenant"] == t.slug]


@pytest.mark.parametrize(("timezone", "day"), [("America/Los_Angeles", "2026-07-31"), ("UTC", "2026-08-01")])
async def test_a_hubspot_close_date_is_the_day_in_the_tenants_zone(
    ingest: tuple[httpx.AsyncClient, Topic],
    tenants: TenantFactory,
    engine: AsyncEngine,
    timezone: str,
    day: str,
) -> None:
    client, topic = ingest
    t = await _tenant(tenants, engine, timezone)
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    payload = _notifications(
        at, closedate=str(int(PICKED.timestamp() * 1000)), hs_manual_forecast_category="BEST_CASE"
    )
    r = await _deliver(client, t.slug, payload)
    assert (r.status_code, r.json()) == (202, {"accepted": 0, "ignored": 0})
    got = [
        (u["entity"], u["entity_id"], u["property"], u.get("value"), u["update_id"])
        for u in await _updates(client, topic, t)
    ]
    assert got == [
        (
            "deal",
            "19883472050",
            "close_date",
            day,
            "hubspot:891472211:4200000000:700020:19883472050:close_date",
        ),
        (
            "deal",
            "19883472050",
            "forecast_category",
            "best_case",
            "hubspot:891472211:4200000001:700021:19883472050:forecast_category",
        ),
    ]


async def test_a_value_that_is_no_close_date_or_category_is_refused_naming_it(
    ingest: tuple[httpx.AsyncClient, Topic], tenants: TenantFactory, engine: AsyncEngine
) -> None:
    client, _ = ingest
    t = await _tenant(tenants, engine, "Europe/Berlin")
    at = datetime.now(UTC) - timedelta(hours=1)
    for name, value in [("closedate", "end of the quarter"), ("hs_forecast_category", "MAYBE")]:
        r = await _deliver(client, t.slug, _notifications(at, amount="100", **{name: value}))
        assert r.status_code == 422, r.text
        (detail,) = r.json()["error"]["details"]
        assert (detail["field"], detail["index"]) == ("propertyValue", 1)
        assert detail["reason"].startswith("must be a")
