"""The planning routes in-process against the session's Postgres: bad parameters and too little
history answer 422 naming the field, a new tenant's fit is all `unknown`, a key needs
`economics:read` and sees its own tenant only."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.models import Rep
from services.core.tenancy import create_key
from tests.api.factories import bearer
from tests.factories import TenantCtx, TenantFactory

TODAY = datetime.now(UTC).date()
CAPACITY = "/v1/planning/capacity"


async def team(engine: AsyncEngine, tenant: str, hires: dict[str, tuple[date, date | None]]) -> None:
    rows = [
        {
            "tenant": tenant,
            "rep_id": r,
            "timezone": "UTC",
            "hired_at": h,
            "left_at": left,
            "quota_monthly": 5000,
        }
        for r, (h, left) in hires.items()
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(Rep).values(rows))


@pytest.fixture(scope="module")
async def small(tenants: TenantFactory, engine: AsyncEngine) -> TenantCtx:
    """Three reps, one hired last month, one who left a month ago; no events, no billing."""
    t = await tenants.create()
    await team(
        engine,
        t.slug,
        {
            "a": (TODAY - timedelta(days=400), None),
            "b": (TODAY - timedelta(days=30), None),
            "c": (TODAY - timedelta(days=300), TODAY - timedelta(days=31)),
        },
    )
    return t


async def error(client: httpx.AsyncClient, key: str, **params: Any) -> dict[str, Any]:
    r = await client.get(CAPACITY, params=params, headers=bearer(key))
    assert r.status_code == 422, r.text
    body: dict[str, Any] = r.json()["error"]
    return body


@pytest.mark.parametrize(
    ("params", "field", "reason"),
    [
        ({}, "target_bookings", "exactly one of target_new_mrr and target_bookings"),
        ({"target_bookings": 1, "target_new_mrr": 1}, "target_new_mrr", "exactly one"),
        ({"target_bookings": 0}, "query.target_bookings", "greater than 0"),
        ({"target_new_mrr": "nan"}, "query.target_new_mrr", ""),
        ({"target_bookings": 1, "months": 0}, "query.months", "greater than or equal to 1"),
        ({"target_bookings": 1, "months": 37}, "query.months", "less than or equal to 36"),
        ({"target_bookings": 1, "start": "2027-13"}, "start", "YYYY-MM"),
        ({"target_bookings": 1, "start": "2020-01"}, "start", "before the current month"),
        ({"target_bookings": 1, "start": f"{TODAY.year + 3}-01"}, "start", "within 24 months"),
    ],
)
async def test_bad_parameters_name_the_field(
    client: httpx.AsyncClient, small: TenantCtx, params: dict[str, Any], field: str, reason: str
) -> None:
    body = await error(client, small.api_key, **params)
    assert body["details"][0]["field"] == field
    assert reason in body["details"][0]["reason"]


async def test_too_little_history_is_refused_with_the_reason(
    client: httpx.AsyncClient, small: TenantCtx
) -> None:
    body = await error(client, small.api_key, target_bookings=100_000)
    assert body["code"] == "insufficient_history"
    assert body["details"] == [
        {
            "field": "ramp",
            "reason": "is measured from 0 reps with complete months of known numbers; "
            "a plan needs at least 10",
        }
    ]


async def test_fit_of_a_young_tenant_is_unknown(client: httpx.AsyncClient, small: TenantCtx) -> None:
    r = await client.get("/v1/planning/fit", headers=bearer(small.api_key))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (date.fromisoformat(body["to"]) - date.fromisoformat(body["from"])).days == 364
    assert [body[k]["light"] for k in ("product_market", "go_to_market", "scale")] == ["unknown"] * 3
    assert "0 customers" in body["product_market"]["reason"]
    assert body["scale"]["figures"]["failure_rate"] is None
    assert body["premature_scaling"] is False  # the team did not grow, whatever the lights say
    # a and c three months ago; a and b today.
    assert body["headcount"] == {"now": 2, "quarter_ago": 2, "growth": 0.0}
    r = await client.get("/v1/planning/fit", params={"window": "90d"}, headers=bearer(small.api_key))
    assert r.status_code == 200
    assert (date.fromisoformat(r.json()["to"]) - date.fromisoformat(r.json()["from"])).days == 89
    r = await client.get("/v1/planning/fit", params={"window": "x"}, headers=bearer(small.api_key))
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "window"


async def test_scope_and_tenant_isolation(
    client: httpx.AsyncClient, small: TenantCtx, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    other = await tenants.create()
    await team(engine, other.slug, {f"o{i}": (TODAY - timedelta(days=100 + i), None) for i in range(12)})
    mine = await client.get("/v1/planning/fit", headers=bearer(small.api_key))
    theirs = await client.get("/v1/planning/fit", headers=bearer(other.api_key))
    assert mine.json()["headcount"]["now"] == 2
    assert theirs.json()["headcount"]["now"] == 12
    # Another tenant's twelve reps do not make this tenant's ramp measurable.
    assert (await error(client, small.api_key, target_bookings=1))["code"] == "insufficient_history"
    narrow = await create_key(engine, small.slug, ["metrics:read", "demand:read"])
    for path in (CAPACITY, "/v1/planning/fit"):
        r = await client.get(path, params={"target_bookings": 1}, headers=bearer(narrow))
        assert r.status_code == 403
        assert "economics:read" in r.json()["error"]["message"]
