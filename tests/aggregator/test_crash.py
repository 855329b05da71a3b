"""Real aggregator processes, SIGKILLed mid-stream and restarted: nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import secrets

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

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
from tests.support import AggregatorProcess

PARTITIONS = 6


async def wait_folding(member: AggregatorProcess, timeout_s: float = 60.0) -> None:
    """Until this process has committed at least one batch of its own."""

    async def committed() -> bool:
        assert member.proc is not None
        assert member.proc.proc is not None
        assert member.proc.proc.poll() is None, f"{member.name} exited; see {member.proc.log_path}"
        return await member.metric("events_folded_total") > 0

    await wait_until(committed, timeout_s, f"{member.name} to fold events", interval_s=0.2)


async def test_sigkilled_members_of_one_group_lose_nothing_and_count_nothing_twice(
    stack: Stack, engine: AsyncEngine, tenants: TenantFactory
) -> None:
    topic = f"agg-crash-{secrets.token_hex(4)}"
    await ensure_topics(stack.settings(events_topic=topic, topic_partitions=PARTITIONS))
    env = {
        **stack.env,
        "SALESLOOP_EVENTS_TOPIC": topic,
        "SALESLOOP_CONSUMER_GROUP": f"{topic}-group",
        "SALESLOOP_BATCH_MAX_EVENTS": "100",
        "SALESLOOP_BATCH_WAIT_MS": "50",
        # A killed member is noticed after this long; the default 10 s would dominate the test.
        "SALESLOOP_CONSUMER_SESSION_TIMEOUT_MS": "3000",
    }
    t = await tenants.create(timezone="Australia/Sydney")
    tenant = Tenant(t.slug, t.timezone)
    events = make_events(3000, t.slug, [f"r{i}" for i in range(12)] + [None], seed=21)
    stream = with_redeliveries([to_record(e, t.slug) for e in events], 0.2, seed=22)

    a = AggregatorProcess("agg-a", env, stack.root, ready="/readyz")
    b = AggregatorProcess("agg-b", env, stack.root, ready="/readyz")
    a.start(wait=False)
    b.start(wait=False)
    produced = 0
    stop_producing = asyncio.Event()

    async def producer() -> None:
        # A steady trickle, so every crash and restart happens while events keep arriving.
        nonlocal produced
        while produced < len(stream):
            size = len(stream) if stop_producing.is_set() else 25
            chunk = stream[produced : produced + size]
            await produce(stack.broker.bootstrap, topic, chunk)
            produced += len(chunk)
            if not stop_producing.is_set():
                await asyncio.sleep(0.5)

    producing = asyncio.create_task(producer())
    try:
        await wait_folding(a)
        for victim in (a, b, a):  # three SIGKILLs, each while the other member keeps folding
            before = await folded(engine, [t.slug])
            victim.kill()
            assert await folded(engine, [t.slug]) < len(events), "the stream ended before the crash"
            victim.start(wait=False)
            await wait_folding(victim)
            assert await folded(engine, [t.slug]) > before
        stop_producing.set()
        await asyncio.wait_for(producing, 60)

        await wait_folded(engine, [t.slug], len(events), timeout_s=60)
        await assert_rollups_match(engine, events, tenant)

        # Both members own partitions and answer ready; SIGTERM drains, leaves the group and exits 0.
        async def both_assigned() -> bool:
            return all([await m.metric("assigned_partitions") > 0 for m in (a, b)])

        await wait_until(both_assigned, 30, "both members to own partitions")
        assert await a.metric("assigned_partitions") + await b.metric("assigned_partitions") == PARTITIONS
        async with httpx.AsyncClient() as client:
            for m in (a, b):
                assert (await client.get(f"http://127.0.0.1:{m.port}/readyz")).status_code == 200
        for m in (a, b):
            code = m.stop(timeout_s=15)  # SIGKILL after that: the exit code would be -9
            assert code == 0, f"{m.name} exit code {code}"
    finally:
        producing.cancel()
        for m in (a, b):
            m.stop()
    await assert_rollups_match(engine, events, tenant)
