"""The event archive's monthly partitions (services/aggregator/archive_partitions.py), against the
session's Postgres: a redelivery is recognised whichever month its original was archived in, retention
drops whole expired months only and keeps every rollup, and concurrent callers make a month once.

Events here occurred in the 1930s and 1940s, months no other test archives in, so that dropping
months of the shared database touches no other test's rows; the horizon retention leaves is removed
again at the end of the test that moves it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import pytest

from services.aggregator import archive_partitions as ap
from services.aggregator.commit import BatchResult, commit_batch
from services.aggregator.rebuild import RebuildError, rebuild
from services.aggregator.store import Store, prepare_connection
from services.core.db import asyncpg_dsn
from services.core.settings import Settings
from services.core.wire import Event
from tests.aggregator.folds.support import event, new_tenant, rep_rollups
from tests.conftest import Stack


@pytest.fixture(scope="module")
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(
        asyncpg_dsn(stack.database_url), min_size=0, max_size=8, init=prepare_connection
    )
    yield p
    await p.close()


async def fold(pool: asyncpg.Pool, *events: Event) -> BatchResult:
    return await commit_batch(Store(pool, "partition-tests", "t"), events, {})


def call(tenant: str, at: str, event_id: str) -> Event:
    return event(
        tenant, "call.completed", at, rep_id="r1", event_id=event_id, duration_s=60, outcome="connected"
    )


async def archived(pool: asyncpg.Pool, tenant: str) -> dict[str, str]:
    """event_id -> the partition its row is in."""
    rows = await pool.fetch(
        "SELECT event_id, tableoid::regclass::text AS part FROM events WHERE tenant = $1", tenant
    )
    return {r["event_id"]: r["part"] for r in rows}


async def keys(pool: asyncpg.Pool, tenant: str) -> set[str]:
    return {
        r["event_id"] for r in await pool.fetch("SELECT event_id FROM event_keys WHERE tenant = $1", tenant)
    }


def calls_per_day(rollups: dict[Any, dict[str, Any]]) -> dict[date, int]:
    return {day: v["calls"] for (_, day), v in rollups.items() if v.get("calls")}


def test_months_partition_names_and_expiry() -> None:
    assert ap.month_of(datetime.fromisoformat("1931-02-28T23:30:00-01:00")) == date(1931, 3, 1)
    assert ap.add_months(date(1931, 11, 1), 3) == date(1932, 2, 1)
    assert ap.partition_name(date(1931, 3, 1)) == "events_p193103"
    assert ap.month_of_name("events_p193103") == date(1931, 3, 1)
    months = [date(1932, 1, 1), date(1932, 2, 1), date(1932, 3, 1)]
    # A month goes once all of it is older than the cutoff, never before.
    assert ap.expired(months, datetime(1932, 3, 1, tzinfo=UTC)) == months[:2]
    assert ap.expired(months, datetime(1932, 2, 29, 23, tzinfo=UTC)) == months[:1]
    now = datetime(2026, 12, 3, tzinfo=UTC)
    assert ap.cutoff(Settings(env="test"), now) == datetime(2024, 12, 3, tzinfo=UTC)
    assert ap.cutoff(Settings(env="test", archive_retention_days=0), now) is None


async def test_a_redelivery_is_recognised_whatever_month_its_original_is_in(pool: asyncpg.Pool) -> None:
    t = await new_tenant(pool)
    first = await fold(pool, call(t, "1941-01-15T10:00:00Z", "a"), call(t, "1941-03-02T10:00:00Z", "b"))
    assert len(first.folded) == 2
    assert await archived(pool, t) == {"a": "events_p194101", "b": "events_p194103"}

    # The same events again, one of them with another time (a client that corrected it, an export
    # taken later): each is recognised by its id, across the months, beside a new event of a third.
    again = await fold(
        pool,
        call(t, "1941-01-15T10:00:00Z", "a"),
        call(t, "1941-02-20T10:00:00Z", "b"),
        call(t, "1941-02-10T10:00:00Z", "c"),
    )
    assert [e.event_id for e in again.folded] == ["c"]
    assert again.duplicates == 2
    assert await archived(pool, t) == {"a": "events_p194101", "b": "events_p194103", "c": "events_p194102"}
    assert await keys(pool, t) == {"a", "b", "c"}
    assert calls_per_day(await rep_rollups(pool, t)) == {
        date(1941, 1, 15): 1,
        date(1941, 3, 2): 1,
        date(1941, 2, 10): 1,
    }

    # An erasure rewrites an archived event's id (services/api/contacts/queries.py): its key follows, so
    # a delivery under the new id, as the aggregator stores an erased contact's, is still recognised.
    await pool.execute("UPDATE events SET event_id = 'a-erased' WHERE tenant = $1 AND event_id = 'a'", t)
    assert await keys(pool, t) == {"a-erased", "b", "c"}
    erased = await fold(pool, call(t, "1941-01-15T10:00:00Z", "a-erased"))
    assert erased.folded == []


async def test_partitions_are_made_once_by_concurrent_callers(pool: asyncpg.Pool) -> None:
    months = [date(1943, 1, 1), date(1943, 2, 1), date(1943, 3, 1)]

    async def caller(order: list[date]) -> list[date]:
        async with pool.acquire() as conn, conn.transaction():
            return await ap.ensure(conn, order)

    made = await asyncio.gather(*(caller(months[i % 3 :] + months[: i % 3]) for i in range(6)))
    assert sorted(m for each in made for m in each) == months
    async with pool.acquire() as conn:
        assert set(months) <= await ap.attached_months(conn)
        assert await ap.ensure(conn, months) == []


async def test_retention_drops_whole_expired_months_and_keeps_rollups(pool: asyncpg.Pool) -> None:
    t = await new_tenant(pool)
    old = [call(t, "1932-01-20T10:00:00Z", "jan"), call(t, "1932-02-29T23:00:00Z", "feb")]
    kept = [call(t, "1932-03-02T10:00:00Z", "mar-early"), call(t, "1932-03-20T10:00:00Z", "mar-late")]
    await fold(pool, *old, *kept)
    before = await rep_rollups(pool, t)
    assert sum(calls_per_day(before).values()) == 4
    async with pool.acquire() as conn:
        elsewhere = {m for m in await ap.attached_months(conn) if m.year != 1932}

    try:
        # The cutoff falls inside March: January and February have ended before it, March has not,
        # and keeps its event of the 2nd although that is older than the cutoff.
        dropped = await ap.drop_expired(pool, datetime(1932, 3, 10, tzinfo=UTC))
        assert [date(1932, 1, 1), date(1932, 2, 1)] == [m for m in dropped.months if m.year == 1932]
        assert dropped.keys >= 2
        assert await archived(pool, t) == {"mar-early": "events_p193203", "mar-late": "events_p193203"}
        assert await keys(pool, t) == {"mar-early", "mar-late"}
        assert await rep_rollups(pool, t) == before
        async with pool.acquire() as conn:
            months = await ap.attached_months(conn)
            assert date(1932, 3, 1) in months
            assert elsewhere <= months
            assert date(1932, 1, 1) not in months
            assert await ap.horizon(conn) == datetime(1932, 3, 1, tzinfo=UTC)
            # Nor is a dropped month made again for a late event of it.
            assert await ap.ensure(conn, [date(1932, 2, 1)]) == []

        # A redelivery of a dropped month's event is neither archived nor counted again.
        late = await fold(
            pool, call(t, "1932-01-20T10:00:00Z", "jan"), call(t, "1932-03-25T10:00:00Z", "new")
        )
        assert [e.event_id for e in late.folded] == ["new"]
        assert calls_per_day(await rep_rollups(pool, t)) == {**calls_per_day(before), date(1932, 3, 25): 1}

        # A rebuild cannot fold the dropped months again: it refuses and changes nothing.
        with pytest.raises(RebuildError, match="1932-03-01"):
            async with pool.acquire() as conn, conn.transaction():
                await rebuild(conn, [t])
        assert sum(calls_per_day(await rep_rollups(pool, t)).values()) == 5
    finally:
        await pool.execute("DELETE FROM archive_horizon WHERE table_name = 'events'")
