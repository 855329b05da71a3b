"""Real aggregator processes, SIGKILLed mid-stream and restarted: nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import secrets

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.embedded import ServiceProcess, free_port
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

PARTITIONS = 6


class Member:
    """One aggregator process of the group; `restart` gives it a new process (and a new metrics port)."""

    def __init__(self, stack: Stack, env: dict[str, str], name: str) -> None:
        self.stack, self.env, self.name = stack, env, name
        self.proc: ServiceProcess | None = None
        self.port = 0

    def start(self) -> None:
        self.port = free_port()
        self.proc = ServiceProcess(
            self.name,
            ["aggregator", "--metrics-port", str(self.port)],
            self.env,
            f"http://127.0.0.1:{self.port}/readyz",
            log_path=self.stack.root / f"{self.name}-{self.port}.log",
        )
        self.proc.start(wait=False)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.stop()  # closes the log

    async def metric(self, name: str) -> float:
        """A value from this process's /metrics (0 while it is not serving yet)."""
        try:
            async with httpx.AsyncClient() as client:
                body = (await client.get(f"http://127.0.0.1:{self.port}/metrics", timeout=2)).text
        except httpx.HTTPError:
            return 0.0
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == f"salesloop_aggregator_{name}":
                    return float(sample.value)
        return 0.0

    async def wait_folding(self, timeout_s: float = 60.0) -> None:
        """Until this process has committed at least one batch of its own."""

        async def committed() -> bool:
            assert self.proc is not None
            assert self.proc.proc is not None
            assert self.proc.proc.poll() is None, f"{self.name} exited; see {self.proc.log_path}"
            return await self.metric("events_folded_total") > 0

        await wait_until(committed, timeout_s, f"{self.name} to fold events", interval_s=0.2)


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

    a, b = Member(stack, env, "agg-a"), Member(stack, env, "agg-b")
    a.start()
    b.start()
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
        await a.wait_folding()
        for victim in (a, b, a):  # three SIGKILLs, each while the other member keeps folding
            before = await folded(engine, [t.slug])
            victim.kill()
            assert await folded(engine, [t.slug]) < len(events), "the stream ended before the crash"
            victim.start()
            await victim.wait_folding()
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
            assert m.proc is not None
            assert m.proc.proc is not None
            m.proc.stop(timeout_s=15)  # SIGKILL after that: the exit code would be -9
            assert m.proc.proc.returncode == 0, f"{m.name} exit code {m.proc.proc.returncode}"
    finally:
        producing.cancel()
        for m in (a, b):
            if m.proc is not None:
                m.proc.stop()
    await assert_rollups_match(engine, events, tenant)
