"""The consumer in-process against the real broker and Postgres: a redelivered, out-of-order stream in,
exactly the independently computed rollups out; offsets come from Postgres, bad messages are skipped."""

from __future__ import annotations

import asyncio
import logging
import secrets

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.aggregator.consumer import Aggregator
from services.core.kafka import ensure_topics
from services.core.settings import Settings
from tests.aggregator.streams import (
    Tenant,
    assert_rollups_match,
    make_events,
    produce,
    stored_offsets,
    to_record,
    wait_folded,
    wait_until,
    with_redeliveries,
)
from tests.conftest import Stack
from tests.factories import TenantFactory


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(f"salesloop_aggregator_{name}", labels) or 0.0


async def wait_offsets(engine: AsyncEngine, group: str, total: int) -> None:
    """Every message, skipped ones included, is behind the offsets stored in Postgres."""

    async def done() -> bool:
        return await stored_offsets(engine, group) == total

    await wait_until(done, 30, f"offsets of {total} messages")


async def kafka_committed(settings: Settings) -> int:
    """The group's offsets as Kafka knows them (read without joining the group)."""
    probe = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=settings.consumer_group)
    await probe.start()
    try:
        partitions = probe.partitions_for_topic(settings.events_topic) or set()
        offsets = [await probe.committed(TopicPartition(settings.events_topic, p)) for p in partitions]
    finally:
        await probe.stop()
    return sum(o or 0 for o in offsets)


async def start(aggregator: Aggregator) -> asyncio.Task[None]:
    task = asyncio.create_task(aggregator.run())

    async def started() -> bool:
        assert not task.done(), task
        return aggregator.started

    await wait_until(started, 30, "the consumer to start")
    return task


async def stop(aggregator: Aggregator, task: asyncio.Task[None]) -> None:
    aggregator.stop()
    await asyncio.wait_for(task, 15)


async def topic_settings(stack: Stack, partitions: int = 4, **overrides: object) -> Settings:
    name = f"agg-{secrets.token_hex(4)}"
    settings = stack.settings(
        events_topic=name, consumer_group=f"{name}-group", topic_partitions=partitions, **overrides
    )
    await ensure_topics(settings)
    return settings


async def test_a_redelivered_out_of_order_stream_is_folded_exactly_once(
    stack: Stack, engine: AsyncEngine, tenants: TenantFactory, caplog: pytest.LogCaptureFixture
) -> None:
    settings = await topic_settings(stack, batch_max_events=250)
    berlin = await tenants.create(timezone="Europe/Berlin")
    newyork = await tenants.create(timezone="America/New_York")
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO reps (tenant, rep_id, timezone) VALUES (:t, 'tok', 'Asia/Tokyo')"),
            {"t": berlin.slug},
        )
    a = Tenant(berlin.slug, berlin.timezone, {"tok": "Asia/Tokyo"})
    b = Tenant(newyork.slug, newyork.timezone)
    events_a = make_events(500, a.slug, ["r1", "r2", "tok", None], seed=11)
    events_b = make_events(300, b.slug, ["r1", "r3", None], seed=12)
    records = [to_record(e, a.slug) for e in events_a] + [to_record(e, b.slug) for e in events_b]
    stream = with_redeliveries(records, 0.2, seed=13)
    redeliveries = len(stream) - len(records)
    bad_key = f"{a.slug}:r1".encode()
    before = {r: metric("malformed_messages_total", reason=r) for r in ("invalid_json", "schema_header")}
    dups_before = metric("duplicates_skipped_total")

    caplog.set_level(logging.WARNING, logger="services.aggregator")
    aggregator = Aggregator(settings)
    task = await start(aggregator)
    try:
        await produce(stack.broker.bootstrap, settings.events_topic, stream[:400])
        await produce(stack.broker.bootstrap, settings.events_topic, [(bad_key, b"{oops")])
        await produce(
            stack.broker.bootstrap,
            settings.events_topic,
            [records[0]],
            headers=[("schema", b"buyer-event/9")],
        )
        await produce(stack.broker.bootstrap, settings.events_topic, stream[400:])
        await wait_folded(engine, [a.slug, b.slug], 800, timeout_s=60)
        await wait_offsets(engine, settings.consumer_group, len(stream) + 2)
    finally:
        await stop(aggregator, task)

    await assert_rollups_match(engine, events_a, a)
    await assert_rollups_match(engine, events_b, b)
    assert await kafka_committed(settings) == len(stream) + 2  # mirrored for lag tools
    assert metric("duplicates_skipped_total") - dups_before == redeliveries
    assert metric("malformed_messages_total", reason="invalid_json") - before["invalid_json"] == 1
    assert metric("malformed_messages_total", reason="schema_header") - before["schema_header"] == 1
    skipped = [r for r in caplog.records if r.getMessage() == "skipping malformed message"]
    assert {getattr(r, "reason", None) for r in skipped} >= {"invalid_json", "schema_header"}

    # Postgres, not Kafka, says where to resume. A new group (Kafka knows nothing of it and would start
    # from the beginning) given the first group's offsets in Postgres reads only what came after them;
    # redeliveries of folded events are recognised by the archive.
    second = stack.settings(
        events_topic=settings.events_topic,
        consumer_group=f"{settings.consumer_group}-2",
        batch_max_events=250,
    )
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) "
                "SELECT :new, topic, partition, next_offset FROM consumer_offsets WHERE consumer_group = :old"
            ),
            {"new": second.consumer_group, "old": settings.consumer_group},
        )
    more = make_events(100, a.slug, ["r1", "r4"], seed=14)
    again = stream[:30]
    dups_before = metric("duplicates_skipped_total")
    aggregator = Aggregator(second)
    task = await start(aggregator)
    try:
        await produce(
            stack.broker.bootstrap, second.events_topic, [to_record(e, a.slug) for e in more] + again
        )
        await wait_folded(engine, [a.slug, b.slug], 900, timeout_s=60)
        await wait_offsets(engine, second.consumer_group, len(stream) + 2 + len(more) + len(again))
    finally:
        await stop(aggregator, task)
    assert metric("duplicates_skipped_total") - dups_before == len(again)
    await assert_rollups_match(engine, events_a + more, a)
    await assert_rollups_match(engine, events_b, b)
