"""Cached answers (services/api/kit/reads.py): served again while nothing was committed, never after.

The end-to-end test folds events through the real ingest and aggregator between two reads; the
in-process ones write rollups directly, as a rebuild or a CRM re-attribution does, without moving
the tenant's watermark.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.coaching.schemas import RepCoachingOut, TeamCoachingOut
from services.api.demand.schemas import ChannelsOut
from services.api.reps.schemas import RepMetricsOut
from services.core.tenancy import create_key
from tests.api.factories import RollupFactory, bearer
from tests.api.org import organisation
from tests.conftest import Services
from tests.factories import TenantFactory

PEERS = ("a", "b", "c", "d", "e", "f")
OCT = {"from": "2026-10-01", "to": "2026-10-30"}


def as_model_writes_it(model: type[BaseModel], body: dict[str, Any]) -> None:
    """The answer, built without the response model, is what the model itself would write."""
    parsed = model.model_validate({("from_" if k == "from" else k): v for k, v in body.items()})
    assert parsed.model_dump(mode="json", by_alias=True) == body


def cache_count(metrics: str, query: str, result: str) -> float:
    pattern = rf'salesloop_api_answer_cache_total\{{query="{query}",result="{result}"\}} (\S+)'
    found = re.search(pattern, metrics)
    return float(found.group(1)) if found else 0.0


async def test_an_event_folded_after_a_cached_read_shows_in_the_next_read(
    services: Services, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    yesterday = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)
    async with organisation(services, tenants, engine) as o:
        for i, rep in enumerate(PEERS):
            await o.rep(rep, team="east")
            for n in range(40):
                outcome = "connected" if n < 8 + i else "no_answer"
                o.event("call.completed", yesterday, rep_id=rep, direction="outbound", outcome=outcome)
        o.event("lead.created", yesterday, rep_id="a", contact_id="c1", channel="referral")
        await o.flush()

        reads = {
            "coaching_team": "/v1/coaching/team",
            "coaching_rep": "/v1/coaching/reps/a",
            "demand_channels": "/v1/demand/channels",
        }
        first = {name: await o.get(path) for name, path in reads.items()}
        cached = ("coaching_team", "coaching_group", "demand_channels")
        metrics = (await o.api.get("/metrics")).text
        hits = {name: cache_count(metrics, name, "hit") for name in cached}
        assert {name: await o.get(path) for name, path in reads.items()} == first
        metrics = (await o.api.get("/metrics")).text
        assert all(cache_count(metrics, name, "hit") > hits[name] for name in cached), "nothing was cached"

        # a connects on every call now: its connect rate leaves the bottom; one more referral lead.
        for _ in range(40):
            o.event("call.completed", yesterday, rep_id="a", direction="outbound", outcome="connected")
        o.event("lead.created", yesterday, rep_id="a", contact_id="c2", channel="referral")
        await o.flush()  # returns once the aggregator committed them

        now = await o.get(reads["coaching_rep"])
        assert first["coaching_rep"]["metrics"]["connect_rate"]["value"] == pytest.approx(8 / 40)
        assert now["metrics"]["connect_rate"]["value"] == pytest.approx(48 / 80)
        assert "connect_rate" in first["coaching_rep"]["focus"]
        assert "connect_rate" not in now["focus"]
        team = {r["rep_id"]: r["focus"] for r in (await o.get(reads["coaching_team"]))["reps"]}
        assert "connect_rate" not in team["a"]
        channels = await o.get(reads["demand_channels"])
        assert first["demand_channels"]["channels"]["referral"]["leads"] == 1
        assert channels["channels"]["referral"]["leads"] == 2


async def peers(tenants: TenantFactory, rollups: RollupFactory) -> str:
    """Six reps of one team with October dials and connects; a connects least."""
    t = await tenants.create()
    for i, rep in enumerate(PEERS):
        await rollups.rep(t.slug, rep, team="east")
        await rollups.day(t.slug, rep, date(2026, 10, 5), dials=40, connects=8 + i)
    await rollups.watermark(t.slug, datetime(2026, 10, 30, 12, tzinfo=UTC))
    return t.slug


async def tenants_key(engine: AsyncEngine, slug: str) -> str:
    return await create_key(engine, slug, ["metrics:read", "coaching:read", "demand:read", "reps:write"])


async def read(client: httpx.AsyncClient, key: str, path: str, **params: Any) -> dict[str, Any]:
    r = await client.get(path, params=params, headers=bearer(key))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_rollups_rewritten_without_a_new_watermark_show_at_once(
    client: httpx.AsyncClient, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    rollups = RollupFactory(engine)
    slug = await peers(tenants, rollups)
    key = await tenants_key(engine, slug)
    before = await read(client, key, "/v1/coaching/reps/a", **OCT)
    assert before == await read(client, key, "/v1/coaching/reps/a", **OCT)
    assert before["focus"] == ["connect_rate"]
    as_model_writes_it(RepCoachingOut, before)

    # What `salesloop rebuild` or a CRM owner change does: rollups move, the watermark does not.
    await rollups.day(slug, "a", date(2026, 10, 6), dials=10, connects=10)
    after = await read(client, key, "/v1/coaching/reps/a", **OCT)
    assert after["as_of"] == before["as_of"]
    assert after["metrics"]["connect_rate"]["value"] == pytest.approx(18 / 50)
    assert after["focus"] == []
    team = await read(client, key, "/v1/coaching/team", **OCT)
    as_model_writes_it(TeamCoachingOut, team)
    assert {r["rep_id"]: r["focus"] for r in team["reps"]}["a"] == []
    metrics = await read(client, key, "/v1/reps/a/metrics", **OCT)
    as_model_writes_it(RepMetricsOut, metrics)
    assert metrics["metrics"]["dials"] == 50


async def test_a_rep_deactivated_leaves_the_cached_team_view(
    client: httpx.AsyncClient, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    slug = await peers(tenants, RollupFactory(engine))
    key = await tenants_key(engine, slug)
    listed = [r["rep_id"] for r in (await read(client, key, "/v1/coaching/team", **OCT))["reps"]]
    assert listed == list(PEERS)
    r = await client.put("/v1/reps/f", json={"team": "east", "active": False}, headers=bearer(key))
    assert r.status_code == 200, r.text
    listed = [r["rep_id"] for r in (await read(client, key, "/v1/coaching/team", **OCT))["reps"]]
    assert listed == list(PEERS[:-1])
    # An inactive rep still gets its own view, against the active ones.
    gone = await read(client, key, "/v1/coaching/reps/f", **OCT)
    assert gone["metrics"]["connect_rate"]["peers"] == 5


async def test_new_spend_shows_in_the_next_channel_report(
    client: httpx.AsyncClient, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    t = await tenants.create()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO deal_facts (tenant, event_id, type, deal_id, channel, amount, occurred_at) "
                "VALUES (:t, 'w1', 'deal.won', 'd1', 'referral', 1000, '2026-10-05T12:00:00Z')"
            ),
            {"t": t.slug},
        )
    before = await read(client, t.api_key, "/v1/demand/channels", **OCT)
    as_model_writes_it(ChannelsOut, before)
    assert before["channels"]["referral"]["cac"] is None
    r = await client.put(
        "/v1/demand/spend",
        json={"channel": "referral", "month": "2026-10", "amount": "3100"},
        headers=bearer(t.api_key),
    )
    assert r.status_code == 201, r.text
    after = await read(client, t.api_key, "/v1/demand/channels", **OCT)
    assert after["channels"]["referral"]["spend"] == pytest.approx(3000.0)  # 30 of October's 31 days
    assert after["channels"]["referral"]["cac"] == pytest.approx(3000.0)


async def test_amounts_are_summed_exactly_before_they_become_floats(
    client: httpx.AsyncClient, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    rollups = RollupFactory(engine)
    t = await tenants.create()
    await rollups.rep(t.slug, "r1", quota_monthly=Decimal(1000))
    await rollups.day(t.slug, "r1", date(2026, 10, 5), deals_won=1, revenue_won=Decimal("1234.5678"))
    body = await read(client, t.api_key, "/v1/reps/r1/metrics", **OCT)
    assert body["metrics"]["revenue_won"] == 1234.5678
    assert body["metrics"]["quota_attainment"] == pytest.approx(1234.5678 / (1000 * 30 / (365.25 / 12)))
