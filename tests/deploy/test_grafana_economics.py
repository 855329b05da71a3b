"""Every SQL query of the Unit economics dashboard, expanded as Grafana expands it, runs as the
read-only role Grafana uses and returns the figures of a small billing history worked out by hand,
the same figures GET /v1/economics/summary gives for the range."""

from __future__ import annotations

from datetime import UTC, datetime
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

MOVEMENTS = "MRR movements by month"
PAYBACK = "CAC payback by channel"
START, END = datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC)  # 92 days


def at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T12:00:00+00:00")


def sub(event_id: str, type_: str, day: str, account: str, mrr: str, contact: str | None) -> dict[str, Any]:
    return traffic.event(event_id, type_, at(day), account_id=account, mrr=mrr, contact_id=contact)


# Leads: c1 and c2 came by referral, c3 by paid_social; A4 and A5 name no contact with a lead.
EVENTS = [
    traffic.event("l1", "lead.created", at("2026-01-05"), contact_id="c1", channel="referral"),
    traffic.event("l2", "lead.created", at("2026-06-05"), contact_id="c2", channel="referral"),
    traffic.event("l3", "lead.created", at("2026-07-05"), contact_id="c3", channel="paid_social"),
    sub("a5-s", "subscription.started", "2026-03-01", "A5", "80", None),
    sub("a1-s", "subscription.started", "2026-05-10", "A1", "100", "c1"),
    sub("a5-c", "subscription.canceled", "2026-06-01", "A5", "0", None),
    sub("a1-x", "subscription.changed", "2026-07-15", "A1", "150", "c1"),  # expansion 50
    sub("a2-s", "subscription.started", "2026-07-20", "A2", "200", "c2"),  # new 200
    sub("a3-s", "subscription.started", "2026-08-05", "A3", "50", "c3"),  # new 50
    sub("a4-s", "subscription.started", "2026-08-10", "A4", "300", "c4"),  # new 300
    sub("a4-x", "subscription.changed", "2026-09-01", "A4", "250", "c4"),  # contraction 50
    sub("a3-c", "subscription.canceled", "2026-09-10", "A3", "0", "c3"),  # churn 50
    sub("a5-r", "subscription.started", "2026-09-15", "A5", "80", None),  # reactivation 80
]


@pytest.fixture(scope="module")
async def tenant(services: Services, tenants: TenantFactory, engine: AsyncEngine) -> TenantCtx:
    t = await tenants.create(prefix="grafe")
    async with (
        httpx.AsyncClient(base_url=services.api_url, timeout=10, headers=traffic.bearer(t.api_key)) as api,
        httpx.AsyncClient(base_url=services.ingest_url, timeout=10) as ingest,
    ):
        # 10 a day from before the range, 20 a day from 1 August; 5 a day of other sales cost.
        await traffic.put_rep(api, t, "r1", name="R1", hired_at="2026-01-01", monthly_cost="304.375")
        await traffic.put_rep(api, t, "r2", name="R2", hired_at="2026-08-01", monthly_cost="608.75")
        settings = {"gross_margin": "0.5", "sales_cost_monthly": "152.1875"}
        assert (await api.put("/v1/economics/settings", json=settings)).status_code in (200, 201)
        for channel, month, amount in [
            ("referral", "2026-06", 3000),  # before the range
            ("referral", "2026-07", 3100),
            ("paid_social", "2026-08", 6200),
            ("paid_social", "2026-10", 3100),  # after it
        ]:
            body = {"channel": channel, "month": month, "amount": amount}
            assert (await api.put("/v1/demand/spend", json=body)).status_code in (200, 201)
        await traffic.post_events(ingest, t, EVENTS)
    await traffic.wait_folded(engine, t.slug, len(EVENTS))
    return t


def dashboard() -> grafana.Dashboard:
    return grafana.load(DASHBOARDS / "economics.json")


def test_the_dashboard_reads_only_what_the_role_may_select() -> None:
    board = dashboard()
    assert {p["datasource"]["uid"] for p in grafana.panels(board)} == {"salesloop-postgres"}
    read = grafana_sql.tables_read(board)
    ctes = {"t", "w", "monthly", "latest", "accounts", "per_channel", "spend", "sales", "rows"}
    assert {"mrr_movements", "subscription_accounts", "channel_spend", "leads", "reps"} <= read
    granted = grafana_sql.granted_tables()
    assert read - ctes <= granted, read - ctes - granted


async def test_every_panel_returns_the_hand_worked_figures(
    reader: asyncpg.Connection, tenant: TenantCtx, services: Services
) -> None:
    rows = await grafana_sql.panel_rows(reader, dashboard(), {"tenant": tenant.slug}, START, END)

    months = {r["month"]: r for r in rows[MOVEMENTS]}
    assert list(months) == ["2026-07", "2026-08", "2026-09"]
    columns = ("new", "expansion", "reactivation", "contraction", "churned", "mrr_end")
    assert [months["2026-07"][c] for c in columns] == [200, 50, 0, 0, 0, 350]  # A1 150 + A2 200
    assert [months["2026-08"][c] for c in columns] == [350, 0, 0, 0, 0, 700]
    assert [months["2026-09"][c] for c in columns] == [0, 0, 80, -50, -50, 680]

    # Sales cost over the 92 days: r1 10 x 92 + r2 20 x 61 + 5 x 92 = 2,600, shared by 3 new customers.
    # ARPA at the end: referral (A1 150, A2 200) 175, unattributed (A4 250, A5 80) 165; paid_social
    # has no customer left, so no payback.
    share = Decimal(2600) / 3
    payback = {r["channel"]: r for r in rows[PAYBACK]}
    assert [r["channel"] for r in rows[PAYBACK]] == ["unattributed", "referral", "paid_social"]
    expected = {
        "referral": (1, 175, 3100, 3100 + share, (3100 + share) / Decimal("87.5")),
        "unattributed": (1, 165, 0, share, share / Decimal("82.5")),
        "paid_social": (1, None, 6200, 6200 + share, None),
    }
    api = await _summary(services, tenant)
    for channel, (new, arpa, spend, cac, months_) in expected.items():
        row = payback[channel]
        assert (row["new_customers"], row["arpa"], row["spend"]) == (new, arpa, spend), channel
        assert row["cac"] == pytest.approx(cac, abs=Decimal("0.01")), channel
        if months_ is None:
            assert row["payback_months"] is None
            continue
        assert row["payback_months"] == pytest.approx(months_, abs=Decimal("0.01")), channel
        # The API's definitions give the same numbers.
        figures = api["channels"][channel]
        assert figures["cac"] == pytest.approx(float(cac), abs=0.01), channel
        assert figures["cac_payback_months"] == pytest.approx(float(months_), abs=0.01), channel


async def _summary(services: Services, t: TenantCtx) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=services.api_url, timeout=10) as api:
        r = await api.get(
            "/v1/economics/summary",
            params={"from": "2026-07-01", "to": "2026-09-30"},
            headers=traffic.bearer(t.api_key),
        )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body
