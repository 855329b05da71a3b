"""Fault injection: events stream in through the real ingest from concurrent clients (some replaying the
same deliveries) while the aggregator is SIGKILLed, Postgres and the broker restart, ingest and api are
SIGTERMed, and one of two aggregators dies. At the end the rollups hold exactly the acknowledged events.

CI runs a small stream; `make soak` sets SALESLOOP_SOAK_EVENTS (>= 100 000) for the full size. The
figures of each run are printed (pytest -s); tests/system/README.md keeps those of a soak run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.embedded import EmbeddedBroker, ServiceProcess, free_port
from services.aggregator import rewind
from services.aggregator.consumer import Aggregator
from services.core.events import SCHEMA_HEADER
from services.core.kafka import ensure_topics
from tests.aggregator.streams import Tenant, assert_rollups_match, make_events, produce, to_record
from tests.conftest import Stack
from tests.factories import TenantCtx, TenantFactory
from tests.support import AggregatorProcess
from tests.system.chaos import (
    Checker,
    Pipeline,
    Senders,
    deliveries,
    folded,
    start_postgres,
    stop_postgres,
    until,
)

SOAK_EVENTS = int(os.environ.get("SALESLOOP_SOAK_EVENTS") or 0)
EVENTS = SOAK_EVENTS or 4500
# Events per second while faults happen: the stream must outlast them. The rest goes as fast as it can.
RATE = EVENTS / 110 if SOAK_EVENTS else 40.0
PARTITIONS = 12
TIMEZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo")
RECOVERY_S = 60.0
# uvicorn drains, then re-raises the SIGTERM it caught, so a clean exit may also read as "killed by 15".
GRACEFUL_EXIT = {0, -signal.SIGTERM}


class Run:
    """The figures of one run: the faults with their recovery times, and the answers the senders got."""

    def __init__(self, engine: AsyncEngine, checker: Checker, senders: Senders, slugs: list[str]) -> None:
        self.engine, self.checker, self.senders, self.slugs = engine, checker, senders, slugs
        self.faults: list[dict[str, Any]] = []
        self.started = time.monotonic()

    async def folded(self) -> int:
        n = await folded(self.engine, self.slugs)
        return -1 if n is None else n

    async def recovered(self, fault: str, t0: float, n0: int, **detail: Any) -> None:
        """Until events flow again: the ingest acknowledged and the aggregator folded more since t0."""
        assert not self.senders.queue.empty(), f"the stream ended before {fault}: lower the rate"

        async def flowing() -> bool:
            return self.checker.last_ack > t0 and await self.folded() > n0

        await until(flowing, RECOVERY_S, f"events to flow again after {fault}")
        self.faults.append({"fault": fault, "recovery_s": round(time.monotonic() - t0, 2), **detail})

    async def grown_by(self, events: int) -> None:
        start = await self.folded()

        async def grown() -> bool:
            return await self.folded() >= start + events

        await until(grown, RECOVERY_S, f"{events} more events folded")


def test_restarted_logs_are_recognised_by_fetch_results() -> None:
    a, b, c = (TopicPartition("t", p) for p in range(3))
    positions = {a: 500, b: 40, c: 7}

    def record(offset: int) -> Any:
        return ConsumerRecord("t", 0, offset, 0, 0, None, b"", None, 0, 0, ())

    # "offset out of range" (Kafka): the client restarted `a` at 0; `b` goes on where it was.
    assert rewind.rewound({a: [record(0), record(1)], b: [record(40)]}, positions) == [(a, 500, 0)]
    # Empty fetches with a high watermark below the position (Tansu): only `a` shrank; `c` was never
    # fetched, so nothing is known about it.
    highwaters = {a: 3, b: 41, c: None}
    assert rewind.shrunk([a, b, c], highwaters.get, positions) == [a]


async def test_a_broker_that_lost_its_log_is_read_from_its_new_beginning(
    stack: Stack,
    engine: AsyncEngine,
    tenants: TenantFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = EmbeddedBroker(free_port(), log_path=tmp_path / "broker.log")
    broker.start()
    topic = f"reset-{secrets.token_hex(4)}"
    settings = stack.settings(
        kafka_bootstrap=broker.bootstrap,
        events_topic=topic,
        consumer_group=f"{topic}-g",
        topic_partitions=3,
        consumer_session_timeout_ms=3000,
    )
    t = await tenants.create()
    events = make_events(600, t.slug, ["r1", "r2", "r3"], seed=51)
    records = [to_record(e, t.slug) for e in events]
    before = REGISTRY.get_sample_value("salesloop_aggregator_offset_resets_total") or 0.0
    caplog.set_level(logging.WARNING, logger="services.aggregator")
    aggregator = Aggregator(settings)
    task: asyncio.Task[None] | None = None
    try:
        await ensure_topics(settings)
        task = asyncio.create_task(aggregator.run())
        await produce_to(broker, topic, {0: records[:100], 1: records[100:200], 2: records[200:300]})
        await until(lambda: _folded_at_least(engine, t.slug, 300), 60, "the first 300 events")

        # The memory broker forgets everything while the aggregator runs: its positions now lie beyond
        # every partition's end, which it sees in its fetches.
        broker.stop()
        broker.start()
        await ensure_topics(settings)
        await produce_to(broker, topic, {0: records[300:310]})
        await until(lambda: _folded_at_least(engine, t.slug, 310), 60, "the events sent after the restart")

        # Again, with the aggregator stopped, and partition 1's new log grows past its stored offset
        # before the aggregator looks: only partition 0 shows the restart, both are read again.
        aggregator.stop()
        await asyncio.wait_for(task, 20)
        broker.stop()
        broker.start()
        await ensure_topics(settings)
        await produce_to(broker, topic, {0: records[310:315], 1: records[315:600]})
        aggregator = Aggregator(settings)
        task = asyncio.create_task(aggregator.run())
        await until(lambda: _folded_at_least(engine, t.slug, 600), 60, "every event sent after the restarts")
    finally:
        aggregator.stop()
        if task is not None:
            await asyncio.wait_for(task, 20)
        broker.stop()
    await assert_rollups_match(engine, events, Tenant(t.slug, t.timezone))
    assert (REGISTRY.get_sample_value("salesloop_aggregator_offset_resets_total") or 0.0) > before
    assert any("log restarted below the stored offset" in r.getMessage() for r in caplog.records)


async def produce_to(
    broker: EmbeddedBroker, topic: str, by_partition: dict[int, list[tuple[bytes, bytes]]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, partition=partition, headers=[SCHEMA_HEADER])
            for partition, records in by_partition.items()
            for key, value in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _folded_at_least(engine: AsyncEngine, tenant: str, n: int) -> bool:
    return (await folded(engine, [tenant]) or 0) >= n


@pytest.mark.soak  # `make soak` runs it at 100,000 events; the other fault tests run in `make test`
async def test_acknowledged_events_survive_every_fault_exactly_once(
    stack: Stack, engine: AsyncEngine, tenants: TenantFactory, tmp_path: Path
) -> None:
    rnd = random.Random(61)
    broker = EmbeddedBroker(free_port(), log_path=tmp_path / "broker.log")
    broker.start()
    topic = f"faults-{secrets.token_hex(4)}"
    settings = stack.settings(
        kafka_bootstrap=broker.bootstrap, events_topic=topic, topic_partitions=PARTITIONS
    )
    await ensure_topics(settings)
    env = {
        **stack.env,
        "SALESLOOP_KAFKA_BOOTSTRAP": broker.bootstrap,
        "SALESLOOP_EVENTS_TOPIC": topic,
        "SALESLOOP_CONSUMER_GROUP": f"{topic}-group",
        "SALESLOOP_TOPIC_PARTITIONS": str(PARTITIONS),
        "SALESLOOP_CONSUMER_SESSION_TIMEOUT_MS": "2000",
        "SALESLOOP_BATCH_WAIT_MS": "50",
        "SALESLOOP_PRODUCE_TIMEOUT_S": "2",
    }
    ts: dict[str, TenantCtx] = {}
    for tz in TIMEZONES:
        t = await tenants.create(timezone=tz)
        ts[t.slug] = t
    events = {
        slug: make_events(-(-EVENTS // len(ts)), slug, [f"r{i}" for i in range(8)] + [None], seed=62 + i)
        for i, slug in enumerate(ts)
    }
    checker = Checker()
    pipe = Pipeline(env, tmp_path, broker)
    senders = Senders(pipe.ingest_url, deliveries(events, ts, seed=63), checker, clients=6, rate=RATE)
    run = Run(engine, checker, senders, list(ts))
    pipe.ingest.start()
    pipe.api.start()
    first = pipe.aggregator()
    sending = asyncio.create_task(senders.run(deadline_s=600))
    try:
        await run.grown_by(100)

        # (a) SIGKILL the aggregator at random points, three times.
        for i in range(3):
            await run.grown_by(rnd.randrange(20, 150))
            t0, n0 = time.monotonic(), await run.folded()
            first.kill()
            first.start()
            await run.recovered(f"aggregator SIGKILL {i + 1}", t0, n0)

        # (b) Postgres stops (fast shutdown) while batches are in flight, and starts again.
        t0, n0 = time.monotonic(), await run.folded()
        felt = _outage_felt(first, checker, await first.metric("db_retries_total"))
        socket_dir = await asyncio.to_thread(stop_postgres, stack.pg)
        try:
            await until(felt, 30, "the aggregator or ingest to notice that Postgres is away")
        finally:
            await asyncio.to_thread(start_postgres, stack.pg, socket_dir)
        await run.recovered("postgres restart", t0, n0, down_s=round(time.monotonic() - t0, 2))

        # (c) The broker stops, once every acknowledged event is folded, and starts with an empty log.
        # Its clients are stopped before it comes back: Tansu's memory store creates a missing topic on
        # any client's first metadata request, and racing the real CreateTopics it can acknowledge
        # produce requests it then loses. A durable broker keeps its topics; nothing needs to stop.
        senders.gate.clear()
        await until(senders.drained, 30, "requests in flight to finish")
        await until(_caught_up(run), RECOVERY_S, "the aggregator to catch up")
        t0, n0 = time.monotonic(), await run.folded()
        unavailable = checker.answers[503]
        broker.stop()
        senders.gate.set()
        await until(_more_503(checker, unavailable), 30, "ingest to answer 503 while the broker is away")
        senders.gate.clear()
        await until(senders.drained, 30, "requests in flight to be answered")
        first.kill()  # leaving the group would wait for the absent broker
        pipe.ingest.stop()
        broker.start()
        await ensure_topics(settings)
        first.start()
        await until(_more(first, "offset_resets_total", 0), 30, "the aggregator to notice the new logs")
        pipe.ingest.start()
        senders.gate.set()
        await run.recovered(
            "broker restart (log lost)", t0, n0, answered_503=checker.answers[503] - unavailable
        )

        # (d) SIGTERM ingest and api; each exits cleanly and is started again.
        t0, n0 = time.monotonic(), await run.folded()
        exits = {}
        for proc in (pipe.ingest, pipe.api):
            proc.stop()
            assert proc.proc is not None
            exits[proc.name] = proc.proc.returncode
            proc.start()
        assert set(exits.values()) <= GRACEFUL_EXIT, exits
        async with httpx.AsyncClient(base_url=pipe.api_url) as api:
            t = next(iter(ts.values()))
            r = await api.get("/v1/reps/r1/metrics", headers={"Authorization": f"Bearer {t.api_key}"})
            assert r.status_code == 200, r.text
        await run.recovered("ingest and api SIGTERM + restart", t0, n0)

        # (f) Two aggregators share the group; one of them is SIGKILLed.
        second = pipe.aggregator()
        await until(_both_assigned(first, second), RECOVERY_S, "both aggregators to own partitions")
        victim, survivor = rnd.sample([first, second], 2)
        t0, n0 = time.monotonic(), await run.folded()
        victim.kill()
        await until(_owns_all(survivor), RECOVERY_S, "the survivor to take every partition")
        await run.recovered("one of two aggregators SIGKILLed", t0, n0, survivor=survivor.name)

        senders.rate = None
        await asyncio.wait_for(sending, 600)
        await until(_caught_up(run), RECOVERY_S * 2, "every acknowledged event to be folded")
    finally:
        sending.cancel()
        pipe.stop()
        broker.stop()

    figures = await _figures(run, events)
    print("\nfault injection:", orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
    assert (figures["lost"], figures["duplicated"], figures["unexpected"]) == (0, 0, 0)
    for slug, acked in checker.acked.items():
        await assert_rollups_match(engine, list(acked.values()), Tenant(slug, ts[slug].timezone))


def _more(member: AggregatorProcess, metric: str, than: float) -> Any:
    async def check() -> bool:
        return await member.metric(metric) > than

    return check


def _outage_felt(member: AggregatorProcess, checker: Checker, retries: float) -> Any:
    """The aggregator retries a batch, or the ingest answers 503 (a cold auth cache needs Postgres)."""
    unavailable = checker.answers[503]

    async def check() -> bool:
        return checker.answers[503] > unavailable or await member.metric("db_retries_total") > retries

    return check


def _more_503(checker: Checker, than: int) -> Any:
    async def check() -> bool:
        return checker.answers[503] > than

    return check


def _caught_up(run: Run) -> Any:
    async def check() -> bool:
        return await run.folded() == run.checker.total

    return check


def _both_assigned(a: AggregatorProcess, b: AggregatorProcess) -> Any:
    async def check() -> bool:
        return await a.metric("assigned_partitions") > 0 and await b.metric("assigned_partitions") > 0

    return check


def _owns_all(member: AggregatorProcess) -> Any:
    async def check() -> bool:
        return await member.metric("assigned_partitions") == PARTITIONS

    return check


async def _figures(run: Run, events: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Lost: acknowledged but not archived. Duplicated: counted more often than archived. Unexpected:
    archived but never acknowledged (the senders retry until every event is)."""
    lost = duplicated = unexpected = 0
    async with run.engine.connect() as conn:
        for slug, acked in run.checker.acked.items():
            rows = await conn.execute(text("SELECT event_id FROM events WHERE tenant = :t"), {"t": slug})
            archived = {r.event_id for r in rows}
            counted = await conn.scalar(
                text("SELECT events_folded FROM tenant_watermarks WHERE tenant = :t"), {"t": slug}
            )
            lost += len(acked.keys() - archived)
            unexpected += len(archived - acked.keys())
            duplicated += int(counted or 0) - len(archived)
    assert run.checker.total == sum(len(v) for v in events.values()), "not every event was acknowledged"
    elapsed = time.monotonic() - run.started
    return {
        "events": run.checker.total,
        "deliveries": run.checker.deliveries,
        "seconds": round(elapsed, 1),
        "faults": run.faults,
        "answers": {str(k): v for k, v in sorted(run.checker.answers.items())},
        "connection_errors": run.checker.connection_errors,
        "lost": lost,
        "duplicated": duplicated,
        "unexpected": unexpected,
    }


# ---------------------------------------------------------------------------------------------- shutdown


async def test_ingest_answers_the_request_in_flight_when_sigterm_arrives(
    stack: Stack, tenants: TenantFactory
) -> None:
    t = await tenants.create()
    port = free_port()
    ingest = ServiceProcess(
        "ingest-term",
        ["ingest", "--port", str(port)],
        stack.env,
        f"http://127.0.0.1:{port}/readyz",
        stack.root / f"ingest-term-{port}.log",
    )
    ingest.start()
    try:
        body = orjson.dumps(
            {"event_id": "term-1", "type": "email.sent", "occurred_at": "2026-10-05T10:00:00Z"}
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (
            f"POST /v1/events/{t.slug} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {t.ingest_key}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body[:10])
        await writer.drain()
        assert ingest.proc is not None
        client_port = writer.get_extra_info("sockname")[1]
        await until(_accepted(ingest.proc.pid, client_port), 10, "the server to take the connection")
        ingest.proc.send_signal(signal.SIGTERM)
        await until(_logged(ingest, "Shutting down"), 10, "ingest to begin shutting down")
        writer.write(body[10:])  # the rest of the request arrives after SIGTERM
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 15)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 202"), answer[:200]
        assert orjson.loads(answer.partition(b"\r\n\r\n")[2]) == {"accepted": 1}
        assert await asyncio.to_thread(ingest.proc.wait, 15) in GRACEFUL_EXIT
    finally:
        ingest.stop()


def _accepted(pid: int, client_port: int) -> Any:
    """The server process holds our connection (accepted, not just queued by the kernel)."""

    async def check() -> bool:
        return any(c.raddr and c.raddr.port == client_port for c in psutil.Process(pid).net_connections())

    return check


def _logged(proc: ServiceProcess, needle: str) -> Any:
    async def check() -> bool:
        assert proc.log_path is not None
        return needle in proc.log_path.read_text(errors="replace")

    return check


async def test_the_aggregator_finishes_its_batch_on_sigterm_and_its_successor_goes_on(
    stack: Stack, engine: AsyncEngine, tenants: TenantFactory, tmp_path: Path
) -> None:
    topic = f"term-{secrets.token_hex(4)}"
    await ensure_topics(stack.settings(events_topic=topic, topic_partitions=4))
    env = {**stack.env, "SALESLOOP_EVENTS_TOPIC": topic, "SALESLOOP_CONSUMER_GROUP": f"{topic}-g"}
    env |= {"SALESLOOP_BATCH_MAX_EVENTS": "500", "SALESLOOP_CONSUMER_SESSION_TIMEOUT_MS": "3000"}
    t = await tenants.create(timezone="Asia/Kolkata")
    events = make_events(8000, t.slug, [f"r{i}" for i in range(20)], seed=71)
    await produce(stack.broker.bootstrap, topic, [to_record(e, t.slug) for e in events])
    member = AggregatorProcess("aggregator-term", env, tmp_path)
    member.start()
    await until(lambda: _folded_at_least(engine, t.slug, 1000), 60, "folding to be well under way")
    started = time.monotonic()
    code = await asyncio.to_thread(member.stop)
    stopped_after = time.monotonic() - started
    at_stop = await folded(engine, [t.slug]) or 0
    assert code == 0
    assert stopped_after < 15, f"SIGTERM took {stopped_after:.1f}s"
    assert member.proc is not None
    assert member.proc.log_path is not None
    assert "stopping: finishing the batch in flight" in member.proc.log_path.read_text()
    assert at_stop < len(events), "the backlog was gone before SIGTERM"
    successor = AggregatorProcess("aggregator-next", env, tmp_path)
    successor.start()
    try:
        await until(lambda: _folded_at_least(engine, t.slug, len(events)), 120, "the successor to finish")
    finally:
        successor.stop()
    await assert_rollups_match(engine, events, Tenant(t.slug, t.timezone))
