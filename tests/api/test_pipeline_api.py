"""Pipeline and forecast (SPEC 5.8) on a small organisation whose folded rows are written directly:
every field of every read worked out by hand (percentiles with numpy), then the stage order and
probabilities a tenant sets, the filters, and the refusals.

The organisation, relative to today (B: today - 25 days; M: the month that holds today - 75 days,
Mn its n-th day, L its last, T0 its first midnight; as_of: today 00:00 UTC - 1 h). Close dates are
listed as they changed.

  deal owner  created    stays (days after creation, or dates)   end        amount  close dates
  d1   r1     B          qualify 0-2, demo 2-5, proposal 5-9     won +9     1000
  d2   r1     B+1        qualify 0-3, demo 3-9                   lost +9    2000
  d3   r2     B+2        qualify 0-1, proposal 1-                open       3000    M10 (commit)
  d4   r2     B+3        demo 0-1.5, qualify 1.5-                open       4000    M20, L, L (best_case)
  d5   r3     400 d ago  qualify 0-10, demo 10-                  open       5000    L+1
  d6   r1     B+4        qualify 0-2, demo 2-3, qualify 3 to     open       -       M1
                         today-3, demo from today-3
  d7   r1>r2  B+5        qualify 0-1 (r1), demo 1-7 (r2)         won +7     700
  d8   -      B+6        -                                       lost +1    50
  d9   r1     M2         qualify 0-4                             won +4     2500
  d10  r3     380 d ago  legal 0-                                open       800     M28 (pipeline)
  s1   r1     T0-10      demo 0-                                 open       6000    M14, L+20
  s2   r2     T0-30      -                                       lost T0+10 1500    M3, M20
  s3   r1     T0-20      -                                       open       100     L+5, L+40
  s4   r1     T0-5       -                                       open       200     M1, L+1, M2
  s5   r3     T0-3       -                                       open       -       L+3 and M7 at T0, L+10
  s6   r2     T0-15      -                                       won L+2    900     M5, L+2
  s7   r2     T0-15      -                                       lost T0-1  300     M5

Reps: r1 (east, quota 10000), r2 (east, 5000), r3 (west, none).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client import REGISTRY
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.kit.reads import AnswerCache, ReadPool, Reads
from services.api.pipeline import gauges
from services.api.pipeline.history import HistoryCache, StageHistory
from services.core.models import ContactActivity, DealChange, DealStageStay, PipelineDeal
from services.core.tenancy import create_key
from tests.api.factories import RollupFactory, bearer
from tests.api.org import organisation
from tests.conftest import Services, Stack
from tests.factories import TenantCtx, TenantFactory

DAY = timedelta(days=1)
_ids = itertools.count()


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


@dataclass
class Deal:
    """A deal as the fold would leave it; `stays`: (stage, entered, owner at entry)."""

    deal_id: str
    rep_id: str | None
    created_at: datetime | None
    stays: Sequence[tuple[str, datetime, str | None]] = ()
    closed: tuple[str, datetime] | None = None
    amount: str | None = None
    close_dates: Sequence[tuple[datetime, str | None]] = ()
    category: str | None = None
    contact_id: str | None = None
    created_rep_id: str | None = None
    change_ids: Sequence[str] = field(default_factory=list)

    def stay_rows(self, tenant: str) -> Iterator[dict[str, Any]]:
        ends = [s[1] for s in self.stays[1:]] + [self.closed[1] if self.closed else None]
        nexts = [s[0] for s in self.stays[1:]] + [self.closed[0] if self.closed else None]
        for i, (stage, entered, rep) in enumerate(self.stays):
            yield {
                "tenant": tenant, "deal_id": self.deal_id, "entered_at": entered, "stage": stage,
                "left_at": ends[i], "next": nexts[i], "rep_id": rep, "deal_created_at": self.created_at,
                "reached_later": list(dict.fromkeys(s[0] for s in self.stays[i + 1 :])),
                "won_after": self.closed is not None and self.closed[0] == "won",
            }  # fmt: skip

    def deal_row(self, tenant: str) -> dict[str, Any]:
        current = self.close_dates[-1][1] if self.close_dates else None
        moments = [t for t in (self.created_at, self.closed and self.closed[1]) if t]
        moments += [s[1] for s in self.stays] + [c[0] for c in self.close_dates]
        last = self.stays[-1] if self.stays else None
        return {
            "tenant": tenant, "deal_id": self.deal_id, "rep_id": self.rep_id,
            "created_rep_id": self.created_rep_id or self.rep_id, "contact_id": self.contact_id,
            "created_at": self.created_at, "status": self.closed[0] if self.closed else "open",
            "closed_at": self.closed[1] if self.closed else None, "stage": last[0] if last else None,
            "stage_entered_at": last[1] if last else None,
            "amount": None if self.amount is None else Decimal(self.amount),
            "close_date": None if current is None else date.fromisoformat(current[:10]),
            "forecast_category": self.category, "updated_at": max(moments),
        }  # fmt: skip

    def change_rows(self, tenant: str) -> Iterator[dict[str, Any]]:
        ids = list(self.change_ids) or [f"c{next(_ids):05d}" for _ in self.close_dates]
        for change_id, (at, value) in zip(ids, self.close_dates, strict=True):
            yield {
                "tenant": tenant, "deal_id": self.deal_id, "change_id": change_id, "at": at,
                "kind": "close_date", "value": value, "rep_id": None,
            }  # fmt: skip


async def store(
    engine: AsyncEngine, tenant: str, deals: Sequence[Deal], activity: dict[str, datetime]
) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(PipelineDeal), [d.deal_row(tenant) for d in deals])
        stays = [row for d in deals for row in d.stay_rows(tenant)]
        await conn.execute(insert(DealStageStay), stays)
        changes = [row for d in deals for row in d.change_rows(tenant)]
        await conn.execute(insert(DealChange), changes)
        rows = [{"tenant": tenant, "contact_id": c, "last_activity_at": at} for c, at in activity.items()]
        await conn.execute(insert(ContactActivity), rows)


@dataclass(frozen=True)
class World:
    tenant: TenantCtx
    today: date
    b: datetime  # today - 25 days, 00:00 UTC
    t0: datetime  # 00:00 UTC of the first day of month M
    m_first: date
    m_last: date
    as_of: datetime

    @property
    def month(self) -> str:
        return f"{self.m_first.year:04d}-{self.m_first.month:02d}"

    @property
    def window(self) -> dict[str, str]:
        return {"from": str(self.today - 30 * DAY), "to": str(self.today - DAY)}


def organisation_deals(w: World) -> tuple[list[Deal], dict[str, datetime]]:
    b, t0, today = w.b, w.t0, midnight(w.today)
    m, last = w.m_first, w.m_last
    old5, old10 = today - 400 * DAY, today - 380 * DAY

    def d(days: float, when: datetime = b) -> datetime:
        return when + timedelta(days=days)

    def on(day: date) -> str:
        return day.isoformat()

    deals = [
        Deal("d1", "r1", b, [("qualify", b, "r1"), ("demo", d(2), "r1"), ("proposal", d(5), "r1")],
             ("won", d(9)), "1000"),
        Deal("d2", "r1", d(1), [("qualify", d(1), "r1"), ("demo", d(4), "r1")], ("lost", d(10)), "2000"),
        Deal("d3", "r2", d(2), [("qualify", d(2), "r2"), ("proposal", d(3), "r2")], None, "3000",
             [(d(2), on(m + 9 * DAY))], "commit", "c3"),
        Deal("d4", "r2", d(3), [("demo", d(3), "r2"), ("qualify", d(4.5), "r2")], None, "4000",
             [(d(3), on(m + 19 * DAY)), (d(4), on(last)), (d(5), on(last) + "T00:00:00Z")],
             "best_case", "c4"),
        Deal("d5", "r3", old5, [("qualify", old5, "r3"), ("demo", d(10, old5), "r3")], None, "5000",
             [(old5, on(last + DAY))]),
        Deal("d6", "r1", d(4), [("qualify", d(4), "r1"), ("demo", d(6), "r1"), ("qualify", d(7), "r1"),
                                ("demo", today - 3 * DAY, "r1")], None, None, [(d(4), on(m))], None, "c6"),
        Deal("d7", "r2", d(5), [("qualify", d(5), "r1"), ("demo", d(6), "r2")], ("won", d(12)), "700",
             created_rep_id="r1"),
        Deal("d8", None, d(6), [], ("lost", d(7)), "50"),
        Deal("d9", "r1", d(1, t0), [("qualify", d(1, t0), "r1")], ("won", d(5, t0)), "2500"),
        Deal("d10", "r3", old10, [("legal", old10, "r3")], None, "800", [(old10, on(m + 27 * DAY))],
             "pipeline", "c10"),
        Deal("s1", "r1", d(-10, t0), [("demo", d(-10, t0), "r1")], None, "6000",
             [(d(-10, t0), on(m + 13 * DAY)), (d(5, t0), on(last + 20 * DAY))]),
        Deal("s2", "r2", d(-30, t0), [], ("lost", d(10, t0)), "1500",
             [(d(-30, t0), on(m + 2 * DAY)), (d(-1, t0), on(m + 19 * DAY))]),
        Deal("s3", "r1", d(-20, t0), [], None, "100",
             [(d(-20, t0), on(last + 5 * DAY)), (d(3, t0), on(last + 40 * DAY))]),
        Deal("s4", "r1", d(-5, t0), [], None, "200",
             [(d(-5, t0), on(m)), (d(2, t0), on(last + DAY)), (d(4, t0), on(m + DAY))]),
        # Two changes at T0 itself: the larger change id holds (in M), then it is pushed.
        Deal("s5", "r3", d(-3, t0), [], None, None,
             [(t0, on(last + 3 * DAY)), (t0, on(m + 6 * DAY)), (d(3, t0), on(last + 10 * DAY))],
             contact_id="c5", change_ids=["u:a", "u:b", "u:c"]),
        Deal("s6", "r2", d(-15, t0), [], ("won", d(2, midnight(last))), "900",
             [(d(-15, t0), on(m + 4 * DAY)), (d(3, t0), on(last + 2 * DAY))]),
        Deal("s7", "r2", d(-15, t0), [], ("lost", d(-1, t0)), "300", [(d(-15, t0), on(m + 4 * DAY))]),
    ]  # fmt: skip
    activity = {"c3": today - DAY, "c6": today - 20 * DAY, "c10": today - 5 * DAY}
    return deals, activity


@pytest.fixture(scope="module")
async def world(engine: AsyncEngine, tenants: TenantFactory) -> World:
    today = datetime.now(UTC).date()
    m_first = (today - 75 * DAY).replace(day=1)
    m_last = (m_first + 32 * DAY).replace(day=1) - DAY
    t = await tenants.create()
    w = World(
        t,
        today,
        midnight(today - 25 * DAY),
        midnight(m_first),
        m_first,
        m_last,
        midnight(today) - timedelta(hours=1),
    )
    rollups = RollupFactory(engine)
    await rollups.rep(t.slug, "r1", team="east", quota_monthly=Decimal(10000))
    await rollups.rep(t.slug, "r2", team="east", quota_monthly=Decimal(5000))
    await rollups.rep(t.slug, "r3", team="west")
    await rollups.watermark(t.slug, w.as_of)
    await store(engine, t.slug, *organisation_deals(w))
    return w


async def get(client: httpx.AsyncClient, w: World, path: str, **params: Any) -> Any:
    r = await client.get(f"/v1/pipeline/{path}", params=params, headers=bearer(w.tenant.api_key))
    assert r.status_code == 200, r.text
    return r.json()


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q))


def stage(name: str, position: int, entered: int, advanced: int, won: int, days: Sequence[float],
          open_now: int, probability: float | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "stage": name, "position": position, "probability": probability, "entered": entered,
        "advanced": advanced, "conversion": advanced / entered if entered else None, "won": won,
        "won_from_stage": won / entered if entered else None,
        "median_days_in_stage": pct(days, 50) if days else None,
        "p90_days_in_stage": pct(days, 90) if days else None, "open_now": open_now,
    }  # fmt: skip


QUALIFY_DAYS = [2, 3, 1, 2, 15, 1]  # d1, d2, d3, d6 twice, d7
DEMO_DAYS = [3, 6, 1.5, 1, 6]  # d1, d2, d4, d6, d7


class approx:
    """Equal to a JSON value whose floats are within a relative 1e-12 of `expected`'s."""

    def __init__(self, expected: Any) -> None:
        self.expected = expected

    def __eq__(self, actual: object) -> bool:
        return _close(actual, self.expected)

    def __repr__(self) -> str:
        return repr(self.expected)


def _close(actual: Any, expected: Any) -> bool:
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == expected.keys()
            and all(_close(actual[k], v) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(_close(a, e) for a, e in zip(actual, expected, strict=True))
        )
    if isinstance(expected, float) and isinstance(actual, int | float) and not isinstance(actual, bool):
        return actual == pytest.approx(expected, rel=1e-12)
    return (bool(actual == expected) and type(actual) is type(expected)) or (
        isinstance(expected, int) and isinstance(actual, float) and actual == expected
    )


async def test_stages_over_deals_created_in_the_window(client: httpx.AsyncClient, world: World) -> None:
    body = await get(client, world, "stages", **world.window)
    assert body == {
        **world.window,
        "as_of": world.as_of.isoformat().replace("+00:00", "Z"),
        "configured": False,
        "rep_id": None,
        "team": None,
        # The order stages were first entered: d5's qualify and demo, d10's legal, d3's proposal.
        "stages": approx([
            stage("qualify", 0, 6, 5, 2, QUALIFY_DAYS, 1),  # d4 entered it last: no advance
            stage("demo", 1, 5, 2, 2, DEMO_DAYS, 3),  # d4 went back: no advance; open: d5, d6, s1
            stage("legal", 2, 0, 0, 0, [], 1),  # entered only by d10, 380 days ago
            stage("proposal", 3, 2, 1, 1, [4], 1),
        ]),
    }  # fmt: skip


async def test_stages_of_a_rep_or_team(client: httpx.AsyncClient, world: World) -> None:
    mine = await get(client, world, "stages", rep_id="r1", **world.window)
    # d7 entered qualify with r1 and demo with r2; open now: d6 and s1.
    assert mine["stages"] == approx([
        stage("qualify", 0, 4, 4, 2, [2, 3, 2, 15, 1], 0),
        stage("demo", 1, 3, 1, 1, [3, 6, 1], 2),
        stage("legal", 2, 0, 0, 0, [], 0),
        stage("proposal", 3, 1, 1, 1, [4], 0),
    ])  # fmt: skip
    west = await get(client, world, "stages", team="west", **world.window)
    assert [(s["entered"], s["open_now"]) for s in west["stages"]] == [(0, 0), (0, 1), (0, 1), (0, 0)]
    nobody = await get(client, world, "stages", team="nobody", **world.window)
    assert [(s["entered"], s["open_now"]) for s in nobody["stages"]] == [(0, 0)] * 4


def velocity(
    won: int, lost: int, revenue: float, cycles: Sequence[float], opportunities: int
) -> dict[str, Any]:
    rate = won / (won + lost) if won + lost else None
    size = revenue / won if won else None
    cycle = float(np.median(cycles)) if cycles else None
    speed = opportunities * rate * size / cycle if rate is not None and size is not None and cycle else None
    return {
        "won": won, "lost": lost, "win_rate": rate, "avg_deal_size": size, "cycle_days_median": cycle,
        "opportunities": opportunities, "velocity_per_day": speed,
    }  # fmt: skip


async def test_velocity_per_rep_and_team(client: httpx.AsyncClient, world: World) -> None:
    total = velocity(2, 2, 1700, [9, 7], 7)
    assert total["velocity_per_day"] == 7 * 0.5 * 850 / 8
    body = await get(client, world, "velocity", **world.window)
    assert body["group"] == "rep"
    assert body["groups"] == approx([
        {"key": "r1", **velocity(1, 1, 1000, [9], 4)},  # d1 won, d2 lost; created d1, d2, d6, d7
        {"key": "r2", **velocity(1, 0, 700, [7], 2)},  # d7, won with r2; created d3, d4
        {"key": "r3", **velocity(0, 0, 0, [], 0)},
        {"key": None, **velocity(0, 1, 0, [], 1)},  # d8: no owner
    ])  # fmt: skip
    assert body["total"] == approx(total)
    teams = await get(client, world, "velocity", group="team", **world.window)
    assert teams["groups"] == approx([
        {"key": "east", **velocity(2, 1, 1700, [9, 7], 6)},
        {"key": "west", **velocity(0, 0, 0, [], 0)},
        {"key": None, **velocity(0, 1, 0, [], 1)},
    ])  # fmt: skip
    assert teams["total"] == body["total"]


def forecast(
    open_count: int, open_amount: float, weighted: float, commit: float, best_case: float, won: float,
    quota: float | None, without: int,
) -> dict[str, Any]:  # fmt: skip
    gap = None if quota is None else quota - won
    return {
        "open_count": open_count, "open_amount": open_amount, "weighted": weighted, "commit": commit,
        "best_case": best_case, "won": won, "quota": quota,
        "coverage": open_amount / gap if gap is not None and gap > 0 else None,
        "projection": won + weighted, "without_probability": without,
    }  # fmt: skip


async def test_forecast_of_a_month(client: httpx.AsyncClient, world: World) -> None:
    # Historical won_from_stage over deals created in the last 365 days: qualify 3/7 (d1, d7, d9 won),
    # demo 2/6, proposal 1/2, legal none.
    w2 = 3000 / 2 + 4000 * 3 / 7
    body = await get(client, world, "forecast", period=world.month)
    assert (body["period"], body["from"], body["to"]) == (world.month, str(world.m_first), str(world.m_last))
    assert body["reps"] == approx([
        # d6 (no amount) and s4 (no stage); d9 won in M.
        {"rep_id": "r1", "team": "east", **forecast(2, 200, 0, 0, 0, 2500, 10000, 1)},
        {"rep_id": "r2", "team": "east", **forecast(2, 7000, w2, 3000, 7000, 0, 5000, 0)},  # d3, d4
        {"rep_id": "r3", "team": "west", **forecast(1, 800, 0, 0, 0, 0, None, 1)},  # d10, in legal
    ])  # fmt: skip
    assert body["teams"] == approx([
        {"team": "east", "reps": ["r1", "r2"], **forecast(4, 7200, w2, 3000, 7000, 2500, 15000, 1)},
        {"team": "west", "reps": ["r3"], **forecast(1, 800, 0, 0, 0, 0, None, 1)},
    ])  # fmt: skip
    assert body["total"] == approx(forecast(5, 8000, w2, 3000, 7000, 2500, 15000, 2))

    quarter = f"{world.m_first.year}-Q{(world.m_first.month - 1) // 3 + 1}"
    body = await get(client, world, "forecast", period=quarter)
    assert body["period"] == quarter
    assert body["total"]["quota"] == 45000
    assert body["reps"][0]["quota"] == 30000


async def test_the_tenants_stage_order_and_probabilities(client: httpx.AsyncClient, world: World) -> None:
    auth = bearer(world.tenant.api_key)
    stages = [{"name": "proposal", "probability": 0.6}, {"name": "qualify", "probability": "0.1"}]
    try:
        r = await client.put("/v1/pipeline/stages", json={"stages": stages}, headers=auth)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "stages": [{"name": "proposal", "probability": 0.6}, {"name": "qualify", "probability": 0.1}]
        }
        body = await get(client, world, "stages", **world.window)
        assert body["configured"] is True
        # Unset stages follow in the order first seen. From qualify, d3's proposal is no advance now.
        assert body["stages"] == approx([
            stage("proposal", 0, 2, 1, 1, [4], 1, 0.6),
            stage("qualify", 1, 6, 4, 2, QUALIFY_DAYS, 1, 0.1),
            stage("demo", 2, 5, 2, 2, DEMO_DAYS, 3),
            stage("legal", 3, 0, 0, 0, [], 1),
        ])  # fmt: skip
        body = await get(client, world, "forecast", period=world.month)
        assert body["total"] == approx(forecast(5, 8000, 3000 * 0.6 + 4000 * 0.1, 3000, 7000, 2500, 15000, 2))
        stages.append({"name": "legal", "probability": 0.25})
        r = await client.put("/v1/pipeline/stages", json={"stages": stages}, headers=auth)
        assert r.status_code == 200, r.text
        body = await get(client, world, "forecast", period=world.month)
        assert body["reps"][2] == approx(
            {"rep_id": "r3", "team": "west", **forecast(1, 800, 200, 0, 0, 0, None, 0)}
        )
    finally:
        r = await client.put("/v1/pipeline/stages", json={"stages": []}, headers=auth)
        assert r.status_code == 200
        assert r.json() == {"stages": []}
    assert (await get(client, world, "stages", **world.window))["configured"] is False


def as_days(since: datetime, until: datetime) -> float:
    return (until - since).total_seconds() / 86400


async def test_slipped_deals(client: httpx.AsyncClient, world: World) -> None:
    m, last = world.m_first, world.m_last
    body = await get(client, world, "deals", status="slipped", period=world.month)

    def deal(
        deal_id: str, rep: str, amount: float | None, close: date, then: date, reason: str, **kw: Any
    ) -> Any:
        return {
            "deal_id": deal_id, "rep_id": rep, "stage": None, "amount": amount, "days_in_stage": None,
            "close_date": str(close), "previous_close_date": str(then), "reason": reason, "reasons": [reason],
            **kw,
        }  # fmt: skip

    s1_days = as_days(world.t0 - 10 * DAY, world.as_of)
    assert body == approx({
        "status": "slipped", "period": world.month, "stale_days": None, "from": str(m), "to": str(last),
        "as_of": world.as_of.isoformat().replace("+00:00", "Z"), "count": 4, "amount": 8400.0,
        "deals": [
            deal("s1", "r1", 6000, last + 20 * DAY, m + 13 * DAY, "close_date_moved", stage="demo",
                 days_in_stage=s1_days),
            deal("s2", "r2", 1500, m + 19 * DAY, m + 19 * DAY, "lost"),  # lost since, the date kept
            deal("s6", "r2", 900, last + 2 * DAY, m + 4 * DAY, "close_date_moved"),  # won after the push
            deal("s5", "r3", None, last + 10 * DAY, m + 6 * DAY, "close_date_moved"),  # tie at T0: u:b
        ],
    })  # fmt: skip
    east = await get(client, world, "deals", status="slipped", period=world.month, team="east", limit=2)
    assert (east["count"], east["amount"]) == (3, 8400 - 0.0)
    assert [d["deal_id"] for d in east["deals"]] == ["s1", "s2"]
    r2 = await get(client, world, "deals", status="slipped", period=world.month, rep_id="r2")
    assert [d["deal_id"] for d in r2["deals"]] == ["s2", "s6"]


async def test_stale_deals(client: httpx.AsyncClient, world: World) -> None:
    m, b, today = world.m_first, world.b, midnight(world.today)
    over, quiet = "days_in_stage_over_p90", "no_activity"

    def deal(deal_id: str, rep: str, stage_: str | None, amount: float | None, since: datetime | None,
             close: date | None, previous: date | None, *reasons: str) -> Any:  # fmt: skip
        return {
            "deal_id": deal_id, "rep_id": rep, "stage": stage_, "amount": amount,
            "days_in_stage": None if since is None else as_days(since, world.as_of),
            "close_date": None if close is None else str(close),
            "previous_close_date": None if previous is None else str(previous),
            "reason": reasons[0], "reasons": list(reasons),
        }  # fmt: skip

    # p90 over stays completed in the last 365 days: qualify 8.4 (d9's 4 days join the window's),
    # demo 6, proposal 4, legal none.
    assert pct([2, 3, 1, 2, 15, 1, 4], 90) == pytest.approx(8.4)
    body = await get(client, world, "deals", status="stale")
    assert (body["from"], body["to"]) == (str(world.today - 365 * DAY), str(world.today - DAY))
    assert body == approx({
        **body,
        "status": "stale", "period": None, "stale_days": 14, "count": 6, "amount": 18000.0,
        "deals": [
            deal("s1", "r1", "demo", 6000, world.t0 - 10 * DAY, world.m_last + 20 * DAY, m + 13 * DAY, over),
            deal("d5", "r3", "demo", 5000, today - 390 * DAY, world.m_last + DAY, None, over),
            # Its contact never had any activity: quiet since its creation, 22 days ago.
            deal("d4", "r2", "qualify", 4000, b + 4.5 * DAY, world.m_last, m + 19 * DAY, over, quiet),
            deal("d3", "r2", "proposal", 3000, b + 3 * DAY, m + 9 * DAY, None, over),
            deal("d6", "r1", "demo", None, today - 3 * DAY, m, None, quiet),  # last call 20 days ago
            deal("s5", "r3", None, None, None, world.m_last + 10 * DAY, m + 6 * DAY, quiet),
        ],
    })  # fmt: skip
    # d10: in legal, which has no completed stay; its contact was called 5 days ago.
    longer = await get(client, world, "deals", status="stale", stale_days=30)
    assert (longer["count"], longer["amount"]) == (5, 18000)
    assert [(d["deal_id"], d["reasons"]) for d in longer["deals"]] == [
        ("s1", [over]), ("d5", [over]), ("d4", [over]), ("d3", [over]), ("s5", [quiet])
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"stages": [{"name": "a"}, {"name": "b"}, {"name": "a", "probability": 0.5}]}, "stages.2.name"),
        ({"stages": [{"name": "a", "probability": 1.5}]}, "stages.0.probability"),
        ({"stages": [{"name": "a", "probability": -0.1}]}, "stages.0.probability"),
        ({"stages": [{"name": "a", "probability": "NaN"}]}, "stages.0.probability"),
        ({"stages": [{"name": ""}]}, "stages.0.name"),
        ({"stages": [{"name": "x" * 101}]}, "stages.0.name"),
        ({"stages": [{"name": "a\nb"}]}, "stages.0.name"),
        ({"stages": [{"name": f"s{i}"} for i in range(101)]}, "stages"),
        ({"stages": [{"name": "a", "weight": 1}]}, "stages.0.weight"),
        ({"stages": "a,b"}, "stages"),
        ({}, "stages"),
    ],
)
async def test_a_bad_stage_list_is_refused_by_field(
    client: httpx.AsyncClient, world: World, body: Any, field: str
) -> None:
    r = await client.put("/v1/pipeline/stages", json=body, headers=bearer(world.tenant.api_key))
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["error"]["details"]], r.text
    assert (await get(client, world, "stages", **world.window))["configured"] is False


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("forecast", {"period": "2026-13"}, "period"),
        ("forecast", {"period": "2026-Q5"}, "period"),
        ("forecast", {"period": "26-10"}, "period"),
        ("forecast", {"period": "2026-10-01"}, "period"),
        ("deals", {"status": "stale", "period": "2026-10"}, "period"),
        ("deals", {"status": "lost"}, "status"),
        ("deals", {}, "status"),
        ("deals", {"status": "stale", "stale_days": "0"}, "stale_days"),
        ("deals", {"status": "stale", "limit": "1001"}, "limit"),
        ("velocity", {"group": "region"}, "group"),
        ("stages", {"window": "0d"}, "window"),
        ("stages", {"rep_id": ""}, "rep_id"),
    ],
)
async def test_bad_parameters_are_refused_by_name(
    client: httpx.AsyncClient, world: World, path: str, params: dict[str, str], field: str
) -> None:
    r = await client.get(f"/v1/pipeline/{path}", params=params, headers=bearer(world.tenant.api_key))
    assert r.status_code == 422, r.text
    # FastAPI's own checks name the query parameter `query.<name>`.
    assert field in [d["field"].removeprefix("query.") for d in r.json()["error"]["details"]], r.text


async def test_scopes(client: httpx.AsyncClient, world: World, engine: AsyncEngine) -> None:
    reader = await create_key(engine, world.tenant.slug, ["pipeline:read"])
    writer = await create_key(engine, world.tenant.slug, ["pipeline:write"])
    assert (await client.get("/v1/pipeline/forecast", headers=bearer(reader))).status_code == 200
    put = await client.put("/v1/pipeline/stages", json={"stages": []}, headers=bearer(reader))
    assert put.status_code == 403
    assert (await client.get("/v1/pipeline/stages", headers=bearer(writer))).status_code == 403
    put = await client.put("/v1/pipeline/stages", json={"stages": []}, headers=bearer(writer))
    assert put.status_code == 200


async def test_an_empty_tenant(client: httpx.AsyncClient, tenants: TenantFactory) -> None:
    t = await tenants.create()
    auth = bearer(t.api_key)
    stages = (await client.get("/v1/pipeline/stages", headers=auth)).json()
    assert (stages["stages"], stages["as_of"], stages["configured"]) == ([], None, False)
    speed = (await client.get("/v1/pipeline/velocity", headers=auth)).json()
    assert speed["groups"] == []
    assert speed["total"] == velocity(0, 0, 0, [], 0)
    fc = (await client.get("/v1/pipeline/forecast", headers=auth)).json()
    assert (fc["reps"], fc["teams"], fc["total"]) == ([], [], forecast(0, 0, 0, 0, 0, 0, None, 0))
    today = datetime.now(UTC).date()
    assert fc["period"] == f"{today.year:04d}-{today.month:02d}"
    for status in ("slipped", "stale"):
        deals = (await client.get("/v1/pipeline/deals", params={"status": status}, headers=auth)).json()
        assert (deals["count"], deals["amount"], deals["deals"]) == (0, 0, [])


async def test_the_gauges_of_named_tenants(client: httpx.AsyncClient, world: World, stack: Stack) -> None:
    slug = world.tenant.slug
    pool = await ReadPool.open(stack.settings())
    try:
        await gauges.refresh(Reads(pool, AnswerCache()), [slug, "no-such-tenant"], datetime.now(UTC))
    finally:
        await pool.close()
    slipped = await get(client, world, "deals", status="slipped")  # of the current month
    assert REGISTRY.get_sample_value("salesloop_api_pipeline_stale_deals", {"tenant": slug}) == 6
    value = REGISTRY.get_sample_value("salesloop_api_pipeline_slipped_amount", {"tenant": slug})
    assert value == slipped["amount"]
    assert (
        REGISTRY.get_sample_value("salesloop_api_pipeline_stale_deals", {"tenant": "no-such-tenant"}) is None
    )
    named = stack.settings(pipeline_metrics_tenants=f" {slug}, b ")
    assert named.pipeline_metrics_tenant_list() == [slug, "b"]
    with pytest.raises(ValueError, match="at most 20"):
        stack.settings(pipeline_metrics_tenants=",".join(f"t{i}" for i in range(21)))


async def test_an_organisation_told_by_events(
    services: Services, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    """Reps through the API, deals as canonical events posted newest first through ingest and folded
    by the real aggregator: the reads see the history the events tell, not the order they came in."""
    now = datetime.now(UTC).replace(microsecond=0)
    close = (now + 40 * DAY).date()
    async with organisation(services, tenants, engine) as o:
        await o.rep("r1", team="east", quota_monthly="1000")
        await o.rep("r2", team="east")
        a = {"deal_id": "a", "rep_id": "r1", "contact_id": "ca"}
        b = {"deal_id": "b", "contact_id": "cb"}
        o.event("deal.created", now - 20 * DAY, stage="discovery", amount="1000", close_date=str(close), **a)
        o.event("deal.stage_changed", now - 18 * DAY, stage="proposal", **a)
        o.event("deal.won", now - 10 * DAY, amount="1200", **a)
        o.event("deal.created", now - 19 * DAY, rep_id="r1", stage="discovery", amount="500", **b)
        o.event("deal.stage_changed", now - 15 * DAY, rep_id="r1", stage="proposal", **b)
        # r2 takes the deal over, with a close date and a category.
        o.event(
            "deal.updated",
            now - 12 * DAY,
            rep_id="r2",
            close_date=str(close),
            forecast_category="commit",
            **b,
        )
        o.event("deal.created", now - 17 * DAY, rep_id="r2", deal_id="c", stage="discovery")
        o.event("deal.lost", now - 16 * DAY, rep_id="r2", deal_id="c")
        as_of = now - 2 * DAY
        o.event(
            "call.completed", as_of, rep_id="r2", contact_id="cb", direction="outbound", outcome="connected"
        )
        o.pending.reverse()
        await o.flush()

        stages = await o.get("/v1/pipeline/stages")
        assert stages["stages"] == approx([
            stage("discovery", 0, 3, 2, 1, [2, 4, 1], 0),  # c was lost from it
            stage("proposal", 1, 2, 1, 1, [8], 1),  # b is in it
        ])  # fmt: skip
        speed = await o.get("/v1/pipeline/velocity")
        assert speed["groups"] == approx([
            {"key": "r1", **velocity(1, 0, 1200, [10], 2)},
            {"key": "r2", **velocity(0, 1, 0, [], 1)},
        ])  # fmt: skip
        month = f"{close.year:04d}-{close.month:02d}"
        fc = await o.get("/v1/pipeline/forecast", period=month)
        # b counts for r2, its owner now, weighted by proposal's history: a won, b open.
        assert fc["reps"] == approx([
            {"rep_id": "r1", "team": "east", **forecast(0, 0, 0, 0, 0, 0, 1000, 0)},
            {"rep_id": "r2", "team": "east", **forecast(1, 500, 250, 500, 500, 0, None, 0)},
        ])  # fmt: skip
        stale = await o.get("/v1/pipeline/deals", status="stale")
        assert stale["as_of"] == as_of.isoformat().replace("+00:00", "Z")
        assert stale["deals"] == [
            {
                "deal_id": "b", "rep_id": "r2", "stage": "proposal", "amount": 500.0, "days_in_stage": 13.0,
                "close_date": str(close), "previous_close_date": None,
                "reason": "days_in_stage_over_p90", "reasons": ["days_in_stage_over_p90"],
            }
        ]  # fmt: skip


async def test_a_stage_record_is_read_once_a_minute_and_day() -> None:
    clock = [0.0]
    cache = HistoryCache(ttl_s=60, max_tenants=2, clock=lambda: clock[0])
    reads: list[tuple[str, date, float]] = []

    def reader(tenant: str, end: date) -> Any:
        async def read() -> StageHistory:
            reads.append((tenant, end, clock[0]))
            await asyncio.sleep(0.01)
            return StageHistory(end - 365 * DAY, end, [])

        return read

    day = date(2026, 11, 30)
    first = await asyncio.gather(*(cache.get("a", day, reader("a", day)) for _ in range(3)))
    assert reads == [("a", day, 0)]  # three requests, one read
    assert first[0] is first[1] is first[2]
    clock[0] = 59
    assert await cache.get("a", day, reader("a", day)) is first[0]
    clock[0] = 61  # a minute old: served while the next one is read
    assert await cache.get("a", day, reader("a", day)) is first[0]
    await asyncio.sleep(0.05)
    assert reads[-1] == ("a", day, 61)
    later = await cache.get("a", day, reader("a", day))
    assert later is not first[0]
    nxt = day + DAY  # another 365 days: waited for
    record = await cache.get("a", nxt, reader("a", nxt))
    assert record is not None
    assert record.end == nxt
    clock[0] = 61 + 600  # ten minutes old: waited for
    await cache.get("a", nxt, reader("a", nxt))
    await cache.get("b", nxt, reader("b", nxt))
    await cache.get("c", nxt, reader("c", nxt))  # "a" is dropped: two tenants at most
    await cache.get("a", nxt, reader("a", nxt))
    assert [(t, e) for t, e, _ in reads[2:]] == [("a", nxt), ("a", nxt), ("b", nxt), ("c", nxt), ("a", nxt)]
