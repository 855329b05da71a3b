"""The ramp through the API without phantom zeros: months before a tenant sent data are unknown.

Rows are written as the aggregator would have written them (rollups, one archived event), so each
case costs a few inserts; the months are worked out by hand on calendars starting on the 1st.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.aggregator import archive_partitions
from services.core.models import Event, Rep
from tests.api.factories import RollupFactory, bearer
from tests.factories import TenantCtx, TenantFactory


async def _hire(engine: AsyncEngine, t: TenantCtx, rep_id: str, hired: date, **fields: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(Rep).values(tenant=t.slug, rep_id=rep_id, timezone="UTC", hired_at=hired, **fields)
        )


async def _first_event(engine: AsyncEngine, t: TenantCtx, at: datetime) -> None:
    async with engine.begin() as conn:
        # the month-partitioned archive needs the month's partition, which the aggregator would make
        raw = await conn.get_raw_connection()
        await archive_partitions.ensure(raw.driver_connection, [archive_partitions.month_of(at)])
        await conn.execute(
            insert(Event).values(
                tenant=t.slug,
                event_id="e-first",
                type="call.completed",
                occurred_at=at,
                received_at=at,
                source="api",
                payload={},
            )
        )


async def _ramp(client: httpx.AsyncClient, t: TenantCtx, **params: Any) -> dict[str, Any]:
    r = await client.get("/v1/training/ramp", params={"cohort": "month", **params}, headers=bearer(t.api_key))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _month(k: int, reps: int, median: float | None) -> dict[str, Any]:
    return {"month": k, "reps": reps, "median": median}


async def test_a_tenant_whose_data_starts_today_shows_no_phantom_zero_months(
    client: httpx.AsyncClient, tenants: TenantFactory, engine: AsyncEngine, rollups: RollupFactory
) -> None:
    t = await tenants.create()
    now = datetime.now(UTC)
    today = now.date()
    year_ago = date(today.year - 1, today.month, 1)  # months start on the 1st
    await _hire(engine, t, "veteran", year_ago)
    await _hire(engine, t, "recent", today - timedelta(days=10))
    await _hire(engine, t, "today", today)
    await _first_event(engine, t, datetime.combine(today, time(0, 1), tzinfo=UTC))
    for rep_id in ("veteran", "recent", "today"):
        await rollups.day(t.slug, rep_id, today, dials=5)

    body = await _ramp(client, t, months=24)
    cohorts = {c["cohort"]: c for c in body["cohorts"]}
    veteran = cohorts[f"{year_ago:%Y-%m}"]
    # Months 0-11 began before today: unknown, not 0. The current month 12 began on the 1st: known
    # only when that is today.
    if today.day == 1:
        assert veteran["months"] == [*(_month(k, 0, None) for k in range(12)), _month(12, 1, 0.0)]
        assert veteran["data_from_month"] == 12
    else:
        assert veteran["months"] == [_month(k, 0, None) for k in range(13)]
        assert veteran["data_from_month"] == 13
    assert veteran["days_to_first_win"] == {"veteran": None}
    # Hired ten days ago: its month 0 began before the data; hired today: its month 0 is known.
    recent, hired_today = f"{today - timedelta(days=10):%Y-%m}", f"{today:%Y-%m}"
    if recent == hired_today:
        assert cohorts[recent]["months"] == [_month(0, 1, 0.0)]
        assert cohorts[recent]["data_from_month"] == 0
    else:
        assert (cohorts[recent]["months"], cohorts[recent]["data_from_month"]) == ([_month(0, 0, None)], 1)
        assert (cohorts[hired_today]["months"], cohorts[hired_today]["data_from_month"]) == (
            [_month(0, 1, 0.0)],
            0,
        )
    assert (body["ramp_months"], body["ramp_measured"], body["steady_state"]) == (3, False, None)


async def test_a_veteran_cohort_hired_before_the_first_event_has_those_months_unknown(
    client: httpx.AsyncClient, tenants: TenantFactory, engine: AsyncEngine, rollups: RollupFactory
) -> None:
    t = await tenants.create()
    await _first_event(engine, t, datetime(2025, 3, 10, 9, tzinfo=UTC))
    # Hired in January 2024. v1's first event is on 12 March 2025, so its first known month is
    # month 15 (from 1 April); v2's on 20 May 2025, so month 17 (from 15 June).
    await _hire(engine, t, "v1", date(2024, 1, 1))
    await _hire(engine, t, "v2", date(2024, 1, 15))
    await rollups.day(t.slug, "v1", date(2025, 3, 12), dials=1, deals_won=1, revenue_won=900)
    await rollups.day(t.slug, "v1", date(2025, 4, 5), deals_won=1, revenue_won=1000)  # month 15
    await rollups.day(t.slug, "v1", date(2025, 5, 5), deals_won=1, revenue_won=2000)  # month 16
    await rollups.day(t.slug, "v1", date(2025, 6, 5), deals_won=1, revenue_won=3000)  # month 17
    await rollups.day(t.slug, "v2", date(2025, 5, 20), dials=1)  # month 16: unknown (began 15 May)
    await rollups.day(t.slug, "v2", date(2025, 6, 20), deals_won=1, revenue_won=500)  # month 17
    # Gone since August 2025: no longer part of its cohort's ramp.
    await _hire(engine, t, "left", date(2024, 1, 20), left_at=date(2025, 8, 1))
    await rollups.day(t.slug, "left", date(2025, 6, 25), deals_won=1, revenue_won=99999)
    # Hired after the tenant's data began: its quiet first months are real zeros.
    await _hire(engine, t, "n1", date(2025, 4, 1))
    await rollups.day(t.slug, "n1", date(2025, 6, 3), deals_won=1, revenue_won=700)  # month 2

    body = await _ramp(client, t, months=20)
    veterans, newer = body["cohorts"]
    assert (veterans["cohort"], veterans["reps"]) == ("2024-01", 2)
    assert veterans["data_from_month"] == 15
    assert veterans["months"] == [
        *(_month(k, 0, None) for k in range(15)),
        _month(15, 1, 1000.0),
        _month(16, 1, 2000.0),
        _month(17, 2, 1750.0),  # 3000 and 500
        _month(18, 2, 0.0),
        _month(19, 2, 0.0),
    ]
    # Their first wins in the data need not be their first wins.
    assert veterans["days_to_first_win"] == {"v1": None, "v2": None}
    assert newer["cohort"] == "2025-04"
    assert newer["data_from_month"] == 0
    assert newer["months"][:4] == [
        _month(0, 1, 0.0),
        _month(1, 1, 0.0),
        _month(2, 1, 700.0),
        _month(3, 1, 0.0),
    ]
    assert newer["days_to_first_win"] == {"n1": 63}  # 1 April to 3 June
    # Months 6-24: v1 1000, 2000, 3000 and seven zeros, v2 500 and seven zeros, n1 fourteen zeros or
    # more: the steady state is 0, so the ramp cannot be measured.
    assert (body["ramp_months"], body["ramp_measured"], body["steady_state"]) == (3, False, 0.0)
