"""The read pool and the answer cache of the feedback reads (services/api/kit/reads.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Hashable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.embedded import free_port
from services.api.kit.reads import APPLICATION_NAME, AnswerCache, AnswerKey, ReadPool
from services.core.http import ApiError
from tests.conftest import Stack


@pytest.fixture
async def pool(stack: Stack) -> AsyncIterator[ReadPool]:
    p = await ReadPool.open(stack.settings(db_pool_size=2))
    yield p
    await p.close()


async def test_a_snapshot_stays_until_something_commits(pool: ReadPool, engine: AsyncEngine) -> None:
    sql = "SELECT pg_current_snapshot()::text"
    first = await pool.fetchrow(sql)
    assert first is not None
    again = await pool.fetchrow(sql)
    assert again is not None
    assert again[0] == first[0]
    async with engine.begin() as conn:
        await conn.execute(text("SELECT txid_current()"))  # a transaction that writes, then commits
    after = await pool.fetchrow(sql)
    assert after is not None
    assert after[0] != first[0]


async def test_a_read_whose_connection_postgres_drops_is_tried_again(
    pool: ReadPool, engine: AsyncEngine
) -> None:
    reading = asyncio.ensure_future(pool.fetchrow("SELECT 42 FROM pg_sleep(0.3)"))
    find = text(
        "SELECT pid FROM pg_stat_activity WHERE application_name = :a AND state = 'active' "
        "AND query LIKE '%pg_sleep(0.3)%'"
    )
    deadline = time.monotonic() + 10
    while True:
        # A transaction sees one snapshot of pg_stat_activity: each look is a transaction of its own.
        async with engine.begin() as conn:
            pid = (await conn.execute(find, {"a": APPLICATION_NAME})).scalar()
            if pid is not None:
                assert (await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})).scalar_one()
                break
        assert time.monotonic() < deadline, "the read never reached Postgres"
        await asyncio.sleep(0.01)
    row = await reading
    assert row is not None
    assert row[0] == 42


async def test_an_unreachable_database_answers_503(stack: Stack) -> None:
    url = f"postgresql://salesloop@127.0.0.1:{free_port()}/nowhere"
    pool = await ReadPool.open(stack.settings(database_url=url))
    try:
        with pytest.raises(ApiError) as raised:
            await pool.fetchrow("SELECT 1")
    finally:
        await pool.close()
    assert raised.value.status == 503
    assert raised.value.headers == {"Retry-After": "5"}


def key(snapshot: str, *parts: Hashable) -> AnswerKey:
    return AnswerKey(snapshot, parts or ("k",))


async def test_concurrent_misses_compute_once_and_share_the_answer() -> None:
    cache = AnswerCache()
    calls = 0
    release = asyncio.Event()

    async def compute() -> tuple[AnswerKey, str]:
        nonlocal calls
        calls += 1
        await release.wait()
        return key("10:12:"), "answer"

    waiting = [asyncio.ensure_future(cache.get("q", key("10:11:"), compute)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == ["answer"] * 5
    assert calls == 1
    # Stored under the key of what the computation itself read.
    assert await cache.get("q", key("10:12:"), compute) == "answer"
    assert calls == 1


async def test_a_failed_computation_is_not_kept() -> None:
    cache = AnswerCache()
    outcomes = iter([ApiError(404, "not_found", "no such rep"), None])

    async def compute() -> tuple[AnswerKey, int]:
        failure = next(outcomes)
        if failure is not None:
            raise failure
        return key("1:1:"), 1

    with pytest.raises(ApiError):
        await cache.get("q", key("1:1:"), compute)
    assert await cache.get("q", key("1:1:"), compute) == 1


async def test_a_caller_hanging_up_does_not_cancel_the_others() -> None:
    cache = AnswerCache()
    release = asyncio.Event()

    async def compute() -> tuple[AnswerKey, str]:
        await release.wait()
        return key("1:1:"), "answer"

    first = asyncio.ensure_future(cache.get("q", key("1:1:"), compute))
    second = asyncio.ensure_future(cache.get("q", key("1:1:"), compute))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    assert await second == "answer"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_the_least_recently_used_answers_go_first() -> None:
    cache = AnswerCache(max_entries=2)
    computed: list[str] = []

    async def get(name: str) -> str:
        async def compute() -> tuple[AnswerKey, str]:
            computed.append(name)
            return key("1:1:", name), name.upper()

        return await cache.get("q", key("1:1:", name), compute)

    for name in ("a", "b", "a", "c", "a", "b"):
        await get(name)
    assert computed == ["a", "b", "c", "b"]
    assert len(cache) == 2


async def test_answers_read_before_a_newer_snapshot_are_dropped() -> None:
    """Commit after commit, the cache keeps the answers of the newest snapshot only."""
    cache = AnswerCache()

    async def read(snapshot: str, name: str) -> str:
        async def compute() -> tuple[AnswerKey, str]:
            return key(snapshot, name), f"{name}@{snapshot}"

        return await cache.get("q", key(snapshot, name), compute)

    for xmax in range(100, 300):
        await read(f"90:{xmax}:", "team")
        await read(f"90:{xmax}:", "channels")
        assert len(cache) == 2

    # An answer a slow computation read at an older snapshot is served, not kept.
    async def late() -> tuple[AnswerKey, str]:
        return key("90:150:", "rep"), "late"

    assert await cache.get("q", key("90:299:", "rep"), late) == "late"
    assert len(cache) == 2
