"""The coaching history computes the weeks it has no snapshot of from one statement: every rollup row
of the span summed per rep and week, then the weeks of each window. Each window's group must be what
the coaching answer's own group read gives for that window: the same reps (active, plus the rep
asked about whatever its state), the same days employed, the same sums of every column."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.coaching import history_queries, queries
from services.api.kit.reads import ReadPool
from services.api.kit.windows import WindowSpec
from services.core.models import CONVERSATION_COUNTERS, ConversationRollup, Rep, RepDaily
from tests.conftest import Stack
from tests.factories import TenantCtx, TenantFactory

FIRST = date(2026, 8, 3)  # a Monday
SPAN_DAYS = 9 * 7
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
ROLLUP_COLUMNS = [c.name for c in RepDaily.__table__.columns if c.name not in ("tenant", "rep_id", "day")]


def value(rnd: random.Random, column: Any) -> Any:
    if str(column.type).startswith("NUMERIC"):
        return Decimal(rnd.randint(0, 10**7)) / 100
    return rnd.randint(0, 40)


@pytest.fixture(scope="module")
async def org(tenants: TenantFactory, engine: AsyncEngine) -> TenantCtx:
    t = await tenants.create(prefix="weeks")
    rnd = random.Random(17)
    reps: list[dict[str, Any]] = [
        {
            "rep_id": f"r{i}",
            "team": "east",
            "timezone": "UTC",
            "hired_at": None,
            "left_at": None,
            "active": True,
        }
        for i in range(7)
    ]
    reps[1] |= {"timezone": "Asia/Tokyo", "hired_at": FIRST + timedelta(days=30)}  # joins midway
    reps[2] |= {"left_at": FIRST + timedelta(days=40)}  # gone before now: in no group but its own
    reps[3] |= {"active": False}
    reps[4] |= {"timezone": "America/Los_Angeles"}
    days = [FIRST - timedelta(days=2) + timedelta(days=d) for d in range(SPAN_DAYS + 4)]
    columns = {c.name: c for c in RepDaily.__table__.columns}
    talk_columns = {c.name: c for c in ConversationRollup.__table__.columns}
    rollups = [
        {
            "tenant": t.slug,
            "rep_id": r["rep_id"],
            "day": d,
            **{c: value(rnd, columns[c]) for c in ROLLUP_COLUMNS},
        }
        for r in reps
        for d in days
        if rnd.random() < 0.7
    ]
    talk = [
        {
            "tenant": t.slug,
            "rep_id": r["rep_id"],
            "day": d,
            **{c: value(rnd, talk_columns[c]) for c in CONVERSATION_COUNTERS},
        }
        for r in reps
        for d in days
        if rnd.random() < 0.5
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(Rep).values([{"tenant": t.slug, **r} for r in reps]))
        await conn.execute(insert(RepDaily), rollups)
        await conn.execute(insert(ConversationRollup), talk)
    return t


@pytest.fixture(scope="module")
async def pool(stack: Stack) -> AsyncIterator[ReadPool]:
    p = await ReadPool.open(stack.settings(db_pool_size=1))
    yield p
    await p.close()


def rows(sums: queries.GroupSums) -> list[dict[str, Any]]:
    keep = ("rep_id", "team", "hired_at", "employed_days", *queries.GROUP_COLUMNS)
    return [{k: r[k] for k in keep} for r in sums.rows]


@pytest.mark.parametrize("rep", ["r0", "r2", "r3"])
async def test_each_window_of_the_weeks_statement_is_that_windows_group_read(
    pool: ReadPool, org: TenantCtx, rep: str
) -> None:
    windows, weeks = 6, 4
    found = await history_queries.weeks_sums(pool, org.slug, rep, FIRST, windows, weeks, NOW)
    assert len(found) == windows
    for k, got in enumerate(found):
        start = FIRST + timedelta(weeks=k)
        end = start + timedelta(days=7 * weeks - 1)
        want = await queries.group_sums(
            pool, org.slug, WindowSpec(days=7 * weeks, start=start, end=end), NOW, zone_of=rep, including=rep
        )
        assert want is not None
        assert (got.start, got.end, got.days) == (start, end, 28)
        assert (got.as_of, got.reps_version) == (want.as_of, want.reps_version)
        assert rows(got) == rows(want), k
        assert rep in {r["rep_id"] for r in got.rows}
    # the rep who left and the inactive one are in no group but their own
    assert {r["rep_id"] for r in found[0].rows} == {"r0", "r1", "r4", "r5", "r6"} | {rep}
