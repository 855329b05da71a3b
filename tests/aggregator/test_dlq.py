"""Dead letters against the real broker and Postgres: every message that cannot be folded goes to the DLQ
topic (with why, and its original key and headers) and to `failed_events` once, the partition moves on,
and `salesloop replay-failed` folds the rows exactly once after the cause is fixed."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.aggregator.consumer import Aggregator
from services.aggregator.dlq import headers_from_json, headers_to_json
from services.aggregator.replay import ReplayResult, replay_failed
from services.core.kafka import ensure_topics
from services.core.settings import Settings
from services.core.tenancy import create_tenant
from tests.aggregator.streams import (
    Tenant,
    assert_rollups_match,
    folded,
    make_events,
    produce,
    stored_offsets,
    to_record,
    wait_folded,
    wait_until,
)
from tests.conftest import Stack
from tests.factories import TenantFactory

PARTITIONS = 3


def dead_letters(reason: str) -> float:
    return REGISTRY.get_sample_value("salesloop_aggregator_dead_letters_total", {"reason": reason}) or 0.0


async def run_until(settings: Settings, done: Any, what: str) -> None:
    """One in-process aggregator until `done()` holds."""
    aggregator = Aggregator(settings)
    task = asyncio.create_task(aggregator.run())
    try:
        await wait_until(done, 60, what)
    finally:
        aggregator.stop()
        await asyncio.wait_for(task, 15)


async def failed_rows(engine: AsyncEngine, topic: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                'SELECT tenant, event_id, partition, "offset", reason, detail, key, value, headers,'
                ' replayed_at FROM failed_events WHERE topic = :t ORDER BY partition, "offset"'
            ),
            {"t": topic},
        )
        return [dict(r) for r in rows.mappings()]


async def read_topic(bootstrap: str, topic: str, count: int, timeout_s: float = 20.0) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    await consumer.start()
    try:
        await consumer.seek_to_beginning(*tps)
        out: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < count and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                out.extend(batch)
        return out
    finally:
        await consumer.stop()


def replay(stack: Stack, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "replay-failed", *args],
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_headers_survive_the_json_column_exactly() -> None:
    headers = [("schema", b"buyer-event/1"), ("trace", b"\xff\x00\x01"), ("hop", b"a"), ("hop", b"b")]
    stored = orjson.loads(orjson.dumps(headers_to_json(headers)))
    assert stored["schema"] == "buyer-event/1"
    assert stored["hop"] == ["a", "b"]
    assert sorted(headers_from_json(stored)) == sorted(headers)


async def test_unfoldable_messages_are_dead_lettered_once_and_replayed_exactly_once(
    stack: Stack, engine: AsyncEngine, tenants: TenantFactory
) -> None:
    name = f"dlq-{secrets.token_hex(4)}"
    settings = stack.settings(
        events_topic=name,
        dlq_topic=f"{name}-dlq",
        consumer_group=f"{name}-group",
        topic_partitions=PARTITIONS,
        batch_max_events=50,
    )
    await ensure_topics(settings)
    t = await tenants.create(timezone="Europe/Berlin")
    tenant = Tenant(t.slug, t.timezone)
    ghost = f"ghost-{secrets.token_hex(3)}"
    good = make_events(200, t.slug, ["r1", "r2", None], seed=41)
    ghost_events = make_events(3, ghost, ["g1"], seed=42)
    euro_deal = {
        "event_id": "eur-1",
        "type": "deal.won",
        "occurred_at": "2026-10-21T10:00:00Z",
        "rep_id": "r1",
        "amount": "1000",
        "currency": "EUR",
    }
    newer = to_record(good[0], t.slug)
    bad_field = orjson.loads(to_record(good[1], t.slug)[1]) | {"type": "call.exploded", "event_id": "x-1"}
    key = f"{t.slug}:r1".encode()
    binary = ("trace", b"\xff\x00\x01")
    before = {r: dead_letters(r) for r in ("invalid_json", "schema_header", "invalid_field")}
    before |= {r: dead_letters(r) for r in ("unknown_tenant", "currency_mismatch")}

    bootstrap, topic = stack.broker.bootstrap, settings.events_topic
    await produce(bootstrap, topic, [to_record(e, t.slug) for e in good[:100]])
    await produce(bootstrap, topic, [(key, b"{oops")])
    await produce(bootstrap, topic, [newer], headers=[("schema", b"buyer-event/9"), binary])
    await produce(bootstrap, topic, [(key, orjson.dumps(bad_field))])
    await produce(bootstrap, topic, [to_record(euro_deal, t.slug)])
    await produce(bootstrap, topic, [to_record(e, ghost) for e in ghost_events])
    await produce(bootstrap, topic, [to_record(e, t.slug) for e in good[100:]])
    total = len(good) + 7

    async def all_behind_offsets() -> bool:
        return await stored_offsets(engine, settings.consumer_group) == total

    await run_until(settings, all_behind_offsets, "every message, dead letters included, to be committed")

    # The good events are folded as if the bad ones had never been there.
    await assert_rollups_match(engine, good, tenant)
    assert await folded(engine, [ghost]) == 0
    rows = await failed_rows(engine, topic)
    assert sorted(r["reason"] for r in rows) == [
        "currency_mismatch",
        "invalid_field",
        "invalid_json",
        "schema_header",
        "unknown_tenant",
        "unknown_tenant",
        "unknown_tenant",
    ]
    by_reason = {r["reason"]: r for r in rows}
    assert by_reason["invalid_json"]["value"] == b"{oops"
    assert by_reason["invalid_json"]["key"] == key
    assert by_reason["invalid_json"]["tenant"] is None
    assert by_reason["schema_header"]["headers"] == headers_to_json([("schema", b"buyer-event/9"), binary])
    assert (by_reason["invalid_field"]["tenant"], by_reason["invalid_field"]["event_id"]) == (t.slug, "x-1")
    assert by_reason["currency_mismatch"]["event_id"] == "eur-1"
    assert "EUR" in by_reason["currency_mismatch"]["detail"]
    assert {r["tenant"] for r in rows if r["reason"] == "unknown_tenant"} == {ghost}
    assert all(r["replayed_at"] is None for r in rows)
    for reason, n in {
        "invalid_json": 1,
        "schema_header": 1,
        "invalid_field": 1,
        "currency_mismatch": 1,
    }.items():
        assert dead_letters(reason) - before[reason] == n
    assert dead_letters("unknown_tenant") - before["unknown_tenant"] == 3

    # On the DLQ topic: the original key, value and headers, plus why and where from.
    letters = await read_topic(bootstrap, settings.dlq_topic, 7)
    assert len(letters) == 7
    origin = {(r["partition"], r["offset"]): r for r in rows}
    for letter in letters:
        hdrs = dict(letter.headers)
        assert hdrs["dlq-topic"] == topic.encode()
        row = origin[(int(hdrs["dlq-partition"]), int(hdrs["dlq-offset"]))]
        assert hdrs["dlq-reason"] == row["reason"].encode()
        assert hdrs["dlq-detail"]
        assert (letter.key, letter.value) == (row["key"], row["value"])
        original = [h for h in letter.headers if not h[0].startswith("dlq-")]
        assert sorted(original) == sorted(headers_from_json(row["headers"]))
    assert {dict(letter.headers)["dlq-reason"] for letter in letters} >= {b"schema_header", b"unknown_tenant"}
    newer_letter = next(x for x in letters if dict(x.headers)["dlq-reason"] == b"schema_header")
    assert list(newer_letter.headers[:2]) == [("schema", b"buyer-event/9"), binary]

    # Everything delivered again (a group Kafka and Postgres know nothing of): no new rows, nothing
    # counted twice.
    again = stack.settings(
        events_topic=topic, dlq_topic=settings.dlq_topic, consumer_group=f"{name}-again", batch_max_events=50
    )

    async def again_done() -> bool:
        return await stored_offsets(engine, again.consumer_group) == total

    await run_until(again, again_done, "the second group to read everything")
    assert len(await failed_rows(engine, topic)) == 7
    assert dead_letters("unknown_tenant") - before["unknown_tenant"] == 3
    await assert_rollups_match(engine, good, tenant)

    # The cause is fixed: the tenant now exists. Its rows are folded once and marked.
    await create_tenant(engine, ghost, "USD", "UTC")
    assert replay(stack, "--tenant", ghost) == "replayed 3 (3 new to the rollups), still failing 0"
    await wait_folded(engine, [ghost], 3, timeout_s=5)
    await assert_rollups_match(engine, ghost_events, Tenant(ghost, "UTC"))
    assert await replay_failed(settings, ghost) == ReplayResult(replayed=0, folded=0, still_failing=0)
    # A replay interrupted after folding but before marking runs again without counting twice.
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE failed_events SET replayed_at = NULL WHERE tenant = :t"), {"t": ghost}
        )
    assert await replay_failed(settings, ghost) == ReplayResult(replayed=3, folded=0, still_failing=0)
    await assert_rollups_match(engine, ghost_events, Tenant(ghost, "UTC"))

    # Rows that still fail stay; once the tenant reports in euros, the deal is folded.
    assert await replay_failed(settings, t.slug) == ReplayResult(replayed=0, folded=0, still_failing=2)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE tenants SET currency = 'EUR' WHERE slug = :t"), {"t": t.slug})
    assert await replay_failed(settings, t.slug) == ReplayResult(replayed=1, folded=1, still_failing=1)
    await assert_rollups_match(engine, [*good, euro_deal], tenant)
    left = [r for r in await failed_rows(engine, topic) if r["replayed_at"] is None]
    assert sorted(r["reason"] for r in left) == ["invalid_field", "invalid_json", "schema_header"]
