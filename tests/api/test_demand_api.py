"""Demand generation (SPEC 5.5) end to end: leads, touches and deals posted through ingest in an
awkward order, spend through the API, the channel report compared with a hand count."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.tenancy import create_key
from tests.api.org import Org, organisation
from tests.conftest import Services
from tests.factories import TenantFactory

# America/New_York: October 1-30 are the instants [1 Oct 04:00Z, 31 Oct 04:00Z).
OCT = {"from": "2026-10-01", "to": "2026-10-30"}


def utc(day: int, hour: int, minute: int = 0, month: int = 10) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def lead(org: Org, contact: str, at: datetime, channel: str | None) -> None:
    org.event(
        "lead.created", at, contact_id=contact, rep_id="r1", **({"channel": channel} if channel else {})
    )


def touch(org: Org, type_: str, contact: str, at: datetime) -> None:
    fields: dict[str, Any] = (
        {"direction": "outbound", "outcome": "connected"} if type_ == "call.completed" else {}
    )
    org.event(type_, at, contact_id=contact, rep_id="r1", **fields)


@pytest.fixture(scope="module")
async def org(services: Services, tenants: TenantFactory, engine: AsyncEngine) -> AsyncIterator[Org]:
    async with organisation(services, tenants, engine, timezone="America/New_York") as o:
        await o.rep("r1", team="east")
        # First the touches and one won deal, before any of their leads exists.
        created = utc(5, 10)
        touch(o, "email.sent", "c1", created - timedelta(hours=1))  # prospecting before the lead
        touch(o, "call.completed", "c1", created + timedelta(seconds=300))
        touch(o, "meeting.booked", "c1", created + timedelta(seconds=1200))
        touch(o, "email.sent", "c2", created + timedelta(seconds=540))
        touch(o, "meeting.booked", "c3", created + timedelta(seconds=900))
        touch(o, "call.completed", "c5", utc(1, 2, 1))
        touch(o, "call.completed", "c6", utc(10, 12, 2))
        o.event("deal.won", utc(28, 15), contact_id="c7", deal_id="d3", rep_id="r1", amount="2000")
        await o.flush()

        for contact in ("c1", "c2", "c3", "c4"):
            lead(o, contact, created, "organic_search")
        lead(o, "c5", utc(1, 2), "organic_search")  # 30 September in New York: outside
        lead(o, "c6", utc(10, 12), "paid_search")
        lead(o, "c7", utc(10, 12), "paid_search")
        lead(o, "c8", utc(12, 12), None)
        for contact, stage, at in [
            ("c1", "mql", utc(6, 12)),
            ("c2", "mql", utc(7, 12)),
            ("c5", "mql", utc(2, 12)),  # qualified inside the window, created before it
            ("c6", "mql", utc(11, 12)),
            ("c1", "sql", utc(8, 12)),
            ("c3", "mql", utc(31, 12)),  # 31 October: outside
        ]:
            o.event("lead.qualified", at, contact_id=contact, stage=stage, rep_id="r1")
        o.event("deal.created", utc(9, 12), contact_id="c1", deal_id="d1", rep_id="r1")
        o.event("deal.won", utc(20, 12), contact_id="c1", deal_id="d1", rep_id="r1", amount="10000")
        o.event("deal.lost", utc(21, 12), contact_id="c2", deal_id="d4", rep_id="r1")
        # The deal's own channel wins over its contact's.
        o.event("deal.created", utc(12, 12), contact_id="c6", deal_id="d2", rep_id="r1", channel="partner")
        o.event("deal.won", utc(25, 12), contact_id="c6", deal_id="d2", rep_id="r1", amount="5000")
        await o.flush()

        for channel, month, amount in [
            ("paid_search", "2026-10", "3100"),
            ("paid_search", "2026-09", "9999"),
            ("events", "2026-10", "620"),
        ]:
            r = await o.request(
                "PUT", "/v1/demand/spend", json={"channel": channel, "month": month, "amount": amount}
            )
            assert r.status_code == 201, r.text
        yield o


def channel(**values: Any) -> dict[str, Any]:
    zero: dict[str, Any] = {
        "leads": 0,
        "mqls": 0,
        "sqls": 0,
        "deals_created": 0,
        "deals_won": 0,
        "revenue_won": 0.0,
        "lead_to_deal": None,
        "lead_to_won": None,
        "revenue_per_lead": None,
        "speed_to_lead_median_s": None,
        "spend": None,
        "cac": None,
    }
    return zero | values


async def test_channels_by_hand(org: Org) -> None:
    body = await org.get("/v1/demand/channels", **OCT)
    assert (body["from"], body["to"]) == ("2026-10-01", "2026-10-30")
    assert body["as_of"] is not None
    assert body["channels"] == {
        # leads c1-c4 (c5 was created on 30 September local); MQLs c1, c2 and c5; SQL c1;
        # deal d1 has no channel: c1's lead is organic. Speeds 300 s, 540 s, 900 s (c4 untouched).
        "organic_search": channel(
            leads=4,
            mqls=3,
            sqls=1,
            deals_created=1,
            deals_won=1,
            revenue_won=10000.0,
            lead_to_deal=0.25,
            lead_to_won=0.25,
            revenue_per_lead=2500.0,
            speed_to_lead_median_s=540.0,
        ),
        # d2 was won without a channel (c6's lead: paid_search), and so was d3 before c7's lead
        # arrived at all. Spend: 30 of October's 31 days of 3100.
        "paid_search": channel(
            leads=2,
            mqls=1,
            deals_won=2,
            revenue_won=7000.0,
            lead_to_deal=0.0,
            lead_to_won=1.0,
            revenue_per_lead=3500.0,
            speed_to_lead_median_s=120.0,
            spend=pytest.approx(3000.0),
            cac=pytest.approx(1500.0),
        ),
        "partner": channel(deals_created=1),  # no leads: every per-lead rate is null, not 0
        "events": channel(spend=pytest.approx(600.0)),  # spend but nothing won: no cac
        "unattributed": channel(leads=1, lead_to_deal=0.0, lead_to_won=0.0, revenue_per_lead=0.0),
    }


async def test_a_window_without_data(org: Org) -> None:
    body = await org.get("/v1/demand/channels", **{"from": "2025-01-01", "to": "2025-01-31"})
    assert body["channels"] == {}


async def test_one_day_window_in_the_tenants_timezone(org: Org) -> None:
    # 5 October local is [5 Oct 04:00Z, 6 Oct 04:00Z): the four organic leads, nothing else.
    body = await org.get("/v1/demand/channels", **{"from": "2026-10-05", "to": "2026-10-05"})
    assert {"organic_search", "paid_search", "events"} <= set(body["channels"])  # spend is prorated
    assert not {"partner", "unattributed"} & set(body["channels"])
    assert body["channels"]["organic_search"]["leads"] == 4
    assert body["channels"]["paid_search"]["spend"] == pytest.approx(100.0)
    default = await org.get("/v1/demand/channels")
    yesterday = datetime.now(ZoneInfo("America/New_York")).date() - timedelta(days=1)
    assert (default["from"], default["to"]) == (str(yesterday - timedelta(days=29)), str(yesterday))


async def test_spend_is_replaced_not_added(org: Org) -> None:
    body = {"channel": "content", "month": "2026-10", "amount": "310"}
    assert (await org.request("PUT", "/v1/demand/spend", json=body)).status_code == 201
    r = await org.request("PUT", "/v1/demand/spend", json={**body, "amount": "62"})
    assert r.status_code == 200
    assert r.json() == {"channel": "content", "month": "2026-10", "amount": 62.0}
    report = await org.get("/v1/demand/channels", **OCT)
    assert report["channels"]["content"]["spend"] == pytest.approx(60.0)


async def test_spend_refusals(org: Org, engine: AsyncEngine) -> None:
    good = {"channel": "paid_search", "month": "2026-10", "amount": "1"}
    for bad, field in [
        ({**good, "channel": "billboards"}, "channel"),
        ({**good, "month": "2026-13"}, "month"),
        ({**good, "month": "2026-10-01"}, "month"),
        ({**good, "amount": "-5"}, "amount"),
        ({**good, "amount": "lots"}, "amount"),
        ({**good, "currency": "EUR"}, "currency"),
    ]:
        r = await org.request("PUT", "/v1/demand/spend", json=bad)
        assert r.status_code == 422, (bad, r.text)
        assert [d["field"] for d in r.json()["error"]["details"]] == [field], r.text
    reader = await create_key(engine, org.tenant.slug, ["demand:read"])
    assert (await org.request("PUT", "/v1/demand/spend", key=reader, json=good)).status_code == 403
    # Nothing of the refused writes arrived.
    report = await org.get("/v1/demand/channels", **OCT)
    assert report["channels"]["paid_search"]["spend"] == pytest.approx(3000.0)
