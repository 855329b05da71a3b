"""`GET /v1/data-quality` end to end: Aircall calls of known and unknown users, and one nobody took,
through the real webhook endpoint, the unassigned ones read back per source and identity."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.tenancy import create_key
from tests.api.org import AIRCALL_TOKEN, Org, organisation
from tests.conftest import Services
from tests.factories import TenantFactory


@pytest.fixture(scope="module")
async def org(services: Services, tenants: TenantFactory, engine: AsyncEngine) -> AsyncIterator[Org]:
    async with organisation(services, tenants, engine) as o:
        await o.rep("r1", team="east", aliases={"aircall_user_id": "1001"})
        # A canonical event without a rep is not a data-quality problem of a vendor identity.
        o.event("email.sent", datetime(2026, 10, 3, 9, tzinfo=UTC))
        await o.aircall_calls(
            [
                (1, 1001, datetime(2026, 10, 1, 15, tzinfo=UTC)),  # r1's: attributed
                (2, 2002, datetime(2026, 10, 2, 15, tzinfo=UTC)),
                (3, 2002, datetime(2026, 10, 9, 15, tzinfo=UTC)),
                (4, 2002, datetime(2026, 10, 5, 15, tzinfo=UTC)),
                (5, 3003, datetime(2026, 10, 7, 15, tzinfo=UTC)),
            ],
        )
        await missed_call(o, datetime(2026, 10, 6, 17, 30, tzinfo=UTC))
        # The identity gets its rep after the events: listed as resolving, until a rebuild.
        await o.rep("r2", team="east", aliases={"aircall_user_id": "3003"})
        yield o


async def missed_call(org: Org, ended: datetime) -> None:
    """An inbound call nobody took: Aircall's `call.ended` names no user, only the number it came
    in on."""
    at = int(ended.timestamp())
    call = {
        "id": 9,
        "started_at": at - 25,
        "answered_at": None,
        "ended_at": at,
        "duration": 25,
        "status": "done",
        "direction": "inbound",
        "raw_digits": "+1 646-555-0199",
        "voicemail": None,
        "missed_call_reason": "no_available_agent",
        "number": {"id": 441, "name": "Sales US", "digits": "+1 415-555-0100", "country": "US"},
        "user": None,
    }
    envelope = {"resource": "call", "event": "call.ended", "timestamp": at + 30, "token": AIRCALL_TOKEN}
    r = await org.ingest.post(
        f"/webhooks/aircall/{org.tenant.slug}",
        content=orjson.dumps({**envelope, "data": call}),
        headers={"Content-Type": "application/json"},
    )
    assert r.json() == {"accepted": 1, "ignored": 0}, r.text
    await org.flush(also_folded=1)


def alias(
    value: str, events: int, first: str, last: str, resolves_to: str | None, kind: str = "aircall_user_id"
) -> dict[str, Any]:
    return {
        "kind": kind,
        "value": value,
        "events": events,
        "first_seen": first,
        "last_seen": last,
        "resolves_to": resolves_to,
    }


async def test_unassigned_events_per_source_and_identity(org: Org) -> None:
    body = await org.get("/v1/data-quality")
    assert body["as_of"] == "2026-10-09T15:00:00Z"
    assert (body["unassigned_events"], body["unknown_aliases"]) == (5, 3)
    missed = "2026-10-06T17:30:00Z"
    assert body["sources"] == {
        "aircall": {
            "events": 5,
            "unknown_aliases": 3,
            "aliases": [
                alias("2002", 3, "2026-10-02T15:00:00Z", "2026-10-09T15:00:00Z", None),
                alias("3003", 1, "2026-10-07T15:00:00Z", "2026-10-07T15:00:00Z", "r2"),
                # The call nobody took, under the number it came in on.
                alias("+14155550100", 1, missed, missed, None, kind="phone"),
            ],
        }
    }
    metrics = await org.get("/v1/reps/r1/metrics", **{"from": "2026-10-01", "to": "2026-10-31"})
    assert metrics["metrics"]["dials"] == 1  # the known user's call went to its rep


async def test_limit_lists_fewer_identities_but_keeps_the_totals(org: Org) -> None:
    body = await org.get("/v1/data-quality", limit=1)
    assert (body["unassigned_events"], body["unknown_aliases"]) == (5, 3)
    assert [a["value"] for a in body["sources"]["aircall"]["aliases"]] == ["2002"]
    r = await org.request("GET", "/v1/data-quality", params={"limit": 0})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"].endswith("limit")


async def test_scopes_and_tenants(org: Org, engine: AsyncEngine, tenants: TenantFactory) -> None:
    for scopes, status in (
        (["metrics:read"], 200),
        (["admin"], 200),
        (["coaching:read", "demand:read"], 403),
    ):
        key = await create_key(engine, org.tenant.slug, scopes)
        assert (await org.request("GET", "/v1/data-quality", key=key)).status_code == status, scopes
    other = await tenants.create()
    r = await org.request("GET", "/v1/data-quality", key=other.api_key)
    assert r.json() == {"as_of": None, "unassigned_events": 0, "unknown_aliases": 0, "sources": {}}
