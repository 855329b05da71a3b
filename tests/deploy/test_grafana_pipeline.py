"""Every SQL query of the Pipeline and forecast dashboard, expanded as Grafana expands it, runs as the
read-only role Grafana uses and returns the numbers of deals sent through the real pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Services
from tests.deploy import grafana, grafana_sql, traffic
from tests.deploy.tooling import DASHBOARDS
from tests.factories import TenantCtx, TenantFactory

BY_STAGE = "Open pipeline by stage"
COVERAGE = "Forecast coverage: this quarter and the next"
STAGES = "Stages: conversion and days in stage"
SLIPPED = "Slipped from this quarter"
STALE = "Stale deals"


@dataclass(frozen=True)
class Org:
    tenant: TenantCtx
    now: datetime
    first: date  # of the current quarter (UTC, the tenant's timezone)
    last: date


def quarter_bounds(today: date) -> tuple[date, date]:
    first = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    following = date(first.year + 1, 1, 1) if first.month == 10 else date(first.year, first.month + 3, 1)
    return first, following - timedelta(days=1)


def deal(event_id: str, type_: str, at: datetime, rep: str, deal_id: str, **fields: Any) -> dict[str, Any]:
    return traffic.event(event_id, type_, at, rep, deal_id=deal_id, **fields)


def org_events(now: datetime, first: date, last: date) -> list[dict[str, Any]]:
    """Six deals of a1 (team alpha, quota 10,000 a month) and b1 (beta, 5,000): d1 pushed out of the
    quarter, d2 lost in it (its discovery stay, ending now, is that stage's p90), d3 open in discovery
    for fewer days but without activity, d4 new with a call, d5 won last quarter through
    proposal (1 day) and negotiation (1 day), d6 won in the quarter."""
    t0 = datetime.combine(first, time(12), UTC) - timedelta(days=30)
    recent = now - timedelta(minutes=2)
    day = timedelta(days=1)
    return [
        deal("d1-c", "deal.created", t0, "a1", "d1", amount="1000", close_date=str(first + 10 * day)),
        deal("d1-s", "deal.stage_changed", t0 + timedelta(hours=1), "a1", "d1", stage="proposal"),
        deal("d1-u", "deal.updated", recent, "a1", "d1", close_date=str(last + 20 * day)),
        deal("d2-c", "deal.created", t0, "a1", "d2", amount="2000", close_date=str(first + 5 * day)),
        deal("d2-s", "deal.stage_changed", t0, "a1", "d2", stage="discovery"),
        deal("d2-l", "deal.lost", recent, "a1", "d2"),
        deal("d3-c", "deal.created", t0, "b1", "d3", amount="3000", close_date=str(last), contact_id="c3"),
        deal("d3-s", "deal.stage_changed", t0 + 5 * day, "b1", "d3", stage="discovery"),
        deal("d4-c", "deal.created", now - 3 * day, "a1", "d4", amount="4000", close_date=str(last),
             contact_id="c4"),
        deal("d4-s", "deal.stage_changed", now - 3 * day, "a1", "d4", stage="proposal"),
        traffic.event("c4-call", "call.completed", now - day, "a1", contact_id="c4", direction="outbound",
                      outcome="connected", duration_s=300),
        deal("d5-c", "deal.created", t0, "a1", "d5", amount="500"),
        deal("d5-s1", "deal.stage_changed", t0, "a1", "d5", stage="proposal"),
        deal("d5-s2", "deal.stage_changed", t0 + day, "a1", "d5", stage="negotiation"),
        deal("d5-w", "deal.won", t0 + 2 * day, "a1", "d5", amount="500"),
        deal("d6-c", "deal.created", t0, "b1", "d6", amount="600"),
        deal("d6-w", "deal.won", recent, "b1", "d6", amount="600"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
async def org(services: Services, tenants: TenantFactory, engine: AsyncEngine) -> Org:
    t = await tenants.create(prefix="grafp")
    now = datetime.now(UTC)
    first, last = quarter_bounds(now.date())
    events = org_events(now, first, last)
    async with (
        httpx.AsyncClient(base_url=services.api_url, timeout=10) as api,
        httpx.AsyncClient(base_url=services.ingest_url, timeout=10) as ingest,
    ):
        await traffic.put_rep(api, t, "a1", name="A1", team="alpha", quota_monthly=10000)
        await traffic.put_rep(api, t, "b1", name="B1", team="beta", quota_monthly=5000)
        stages = {
            "stages": [{"name": n, "probability": None} for n in ("discovery", "proposal", "negotiation")]
        }
        r = await api.put("/v1/pipeline/stages", json=stages, headers=traffic.bearer(t.api_key))
        assert r.status_code == 200, r.text
        await traffic.post_events(ingest, t, events)
    await traffic.wait_folded(engine, t.slug, len(events))
    return Org(t, now, first, last)


def dashboard() -> grafana.Dashboard:
    return grafana.load(DASHBOARDS / "pipeline-forecast.json")


async def panel_rows(
    reader: asyncpg.Connection, org: Org, teams: list[str]
) -> dict[str, list[asyncpg.Record]]:
    values: dict[str, grafana.VariableValue] = {"tenant": org.tenant.slug, "team": teams, "stale_days": "14"}
    start, end = org.now - timedelta(days=120), datetime.now(UTC)
    return await grafana_sql.panel_rows(reader, dashboard(), values, start, end)


def test_the_dashboard_reads_only_what_the_role_may_select() -> None:
    board = dashboard()
    assert {p["datasource"]["uid"] for p in grafana.panels(board)} == {"salesloop-postgres"}
    read = grafana_sql.tables_read(board)
    ctes = {"stays", "quarters", "open", "won", "quota", "p90"}
    assert {"pipeline_deals", "deal_stage_stays", "deal_changes", "contact_activity"} <= read
    granted = grafana_sql.granted_tables()
    assert read - ctes <= granted, read - ctes - granted


async def test_every_panel_returns_the_deals_numbers(reader: asyncpg.Connection, org: Org) -> None:
    rows = await panel_rows(reader, org, ["alpha", "beta"])
    assert all(rows.values()), [title for title, found in rows.items() if not found]

    by_stage = {r["stage"]: r for r in rows[BY_STAGE]}
    assert [r["stage"] for r in rows[BY_STAGE]] == ["discovery", "proposal"]  # the tenant's order
    assert (by_stage["proposal"]["open_deals"], by_stage["proposal"]["open_amount"]) == (2, Decimal(5000))
    assert (by_stage["discovery"]["open_deals"], by_stage["discovery"]["open_amount"]) == (1, Decimal(3000))

    current, following = rows[COVERAGE]
    quota = Decimal(45000)  # (10,000 + 5,000) x 3
    assert (current["open_deals"], current["open_amount"], current["won"]) == (2, Decimal(7000), Decimal(600))
    assert current["coverage"] == pytest.approx(Decimal(7000) / (quota - 600))
    assert current["quarter"] == f"{org.first.year}-Q{(org.first.month - 1) // 3 + 1}"
    assert (following["open_amount"], following["won"]) == (Decimal(1000), 0)
    assert following["coverage"] == pytest.approx(Decimal(1000) / quota)

    stages = {r["stage"]: r for r in rows[STAGES]}
    proposal = stages["proposal"]  # d1, d4, d5 entered it; d5 advanced and was won, in 1 day
    assert (proposal["entered"], proposal["advanced"]) == (3, 1)
    assert proposal["p90_days_in_stage"] == pytest.approx(1.0)
    assert stages["negotiation"]["won_from_stage"] == 1

    slipped = {r["deal_id"]: r for r in rows[SLIPPED]}
    assert set(slipped) == {"d1", "d2"}
    assert (slipped["d1"]["reason"], slipped["d2"]["reason"]) == ("close_date_moved", "lost")
    assert slipped["d1"]["previous_close_date"] == org.first + timedelta(days=10)

    stale = {r["deal_id"]: r for r in rows[STALE]}
    assert set(stale) == {"d1", "d3", "d4"}  # past proposal's 1 day, or (d3) 30 days without activity
    assert (stale["d4"]["over_p90"], stale["d4"]["no_activity"]) == (True, False)
    assert (stale["d3"]["over_p90"], stale["d3"]["no_activity"]) == (False, True)  # discovery: no p90
    assert float(stale["d4"]["days_in_stage"]) == pytest.approx(3.0, abs=0.01)


async def test_a_team_selection_narrows_the_panels(reader: asyncpg.Connection, org: Org) -> None:
    rows = await panel_rows(reader, org, ["beta"])
    current, following = rows[COVERAGE]
    assert (current["open_amount"], current["won"]) == (Decimal(3000), Decimal(600))
    assert current["coverage"] == pytest.approx(Decimal(3000) / (Decimal(15000) - 600))
    assert following["coverage"] == 0
    assert [r["deal_id"] for r in rows[STALE]] == ["d3"]
    assert rows[SLIPPED] == []
