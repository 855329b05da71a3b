"""Postgres refusing the aggregator: at start (offsets cannot be loaded) and mid-stream (batches cannot
commit). The consumer keeps retrying the same work; when another member takes its partitions meanwhile,
it lets the batch go and the new owner starts from the stored offsets. Everything is counted once.

The outage is a role of its own whose LOGIN the test takes away and gives back, so the session
Postgres keeps serving every other test."""

from __future__ import annotations

import asyncio
import logging
import secrets
from urllib.parse import urlsplit, urlunsplit

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.aggregator.consumer import Aggregator
from services.core.kafka import ensure_topics
from tests.aggregator.streams import (
    Tenant,
    assert_rollups_match,
    folded,
    make_events,
    produce,
    to_record,
    wait_folded,
    wait_until,
    with_redeliveries,
)
from tests.conftest import Stack
from tests.factories import TenantFactory


def retries() -> float:
    return REGISTRY.get_sample_value("salesloop_aggregator_db_retries_total") or 0.0


async def admin(engine: AsyncEngine, *statements: str) -> None:
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))


async def wait_retrying(since: float) -> None:
    async def retried() -> bool:
        return retries() - since >= 3

    await wait_until(retried, 30, "the consumer to retry Postgres")


async def test_postgres_outages_delay_folding_but_lose_and_double_nothing(
    stack: Stack, engine: AsyncEngine, tenants: TenantFactory, caplog: pytest.LogCaptureFixture
) -> None:
    role = f"agg_outage_{secrets.token_hex(4)}"
    url = urlunsplit(urlsplit(stack.database_url)._replace(netloc=f"{role}@"))
    topic = f"agg-outage-{secrets.token_hex(4)}"
    settings = stack.settings(
        database_url=url, events_topic=topic, consumer_group=f"{topic}-group", batch_max_events=100
    )
    await ensure_topics(stack.settings(events_topic=topic, topic_partitions=3))
    t = await tenants.create(timezone="Asia/Kolkata")
    tenant = Tenant(t.slug, t.timezone)
    events = make_events(400, t.slug, ["r1", "r2", None], seed=31)
    first = [to_record(e, t.slug) for e in events[:200]]
    second = with_redeliveries([to_record(e, t.slug) for e in events[200:]], 0.3, seed=32) + first[:50]

    caplog.set_level(logging.INFO, logger="services.aggregator")
    aggregator = Aggregator(settings)
    task = asyncio.create_task(aggregator.run())
    helper = Aggregator(stack.settings(events_topic=topic, consumer_group=settings.consumer_group))
    helper_task: asyncio.Task[None] | None = None
    try:
        # The role does not exist yet: the consumer joins the group but cannot load its offsets.
        since = retries()
        await produce(stack.broker.bootstrap, topic, first)
        await wait_retrying(since)
        assert not await aggregator.ready()
        assert await folded(engine, [t.slug]) == 0

        await admin(
            engine,
            f"CREATE ROLE {role} LOGIN",
            f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}",
        )
        await wait_folded(engine, [t.slug], 200, timeout_s=60)
        assert await aggregator.ready()

        # Mid-stream: new logins refused and the open connections cut.
        await admin(
            engine,
            f"ALTER ROLE {role} NOLOGIN",
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'",
        )
        since = retries()
        await produce(stack.broker.bootstrap, topic, second)
        await wait_retrying(since)
        assert await folded(engine, [t.slug]) == 200
        assert not task.done()

        # A second member with a working connection joins: the stuck one gives its batch up, the
        # partitions are shared out and the helper folds its share from the stored offsets.
        helper_task = asyncio.create_task(helper.run())

        async def helper_folded() -> bool:
            return await folded(engine, [t.slug]) > 200

        await wait_until(helper_folded, 60, "the second member to fold its partitions")
        assert any(r.getMessage().startswith("batch abandoned") for r in caplog.records)

        await admin(engine, f"ALTER ROLE {role} LOGIN")
        await wait_folded(engine, [t.slug], 400, timeout_s=60)
    finally:
        aggregator.stop()
        helper.stop()
        await asyncio.wait_for(task, 15)
        if helper_task is not None:
            await asyncio.wait_for(helper_task, 15)
        await admin(
            engine,
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'",
            f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
            f"DROP OWNED BY {role}; DROP ROLE {role}; END IF; END $$",
        )
    await assert_rollups_match(engine, events, tenant)
