"""Scale-out: two ingest processes and three aggregators in one consumer group on a topic of 12
partitions. Events stream in through both ingests while one aggregator is SIGKILLed and another joins;
every partition stays owned, every acknowledged event is counted exactly once, and the pauses the two
rebalances cause (no event folded anywhere) are measured.

The processes take a minute to start, kill and join: that test is `make soak`'s (SALESLOOP_SOAK_EVENTS,
default session timeout). `make test` runs a group of three aggregators in this process on the same
12 partitions, one leaving and one joining mid-stream. tests/system/README.md keeps the figures of a
soak run (pytest -s prints them).
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.embedded import EmbeddedBroker, ServiceProcess, free_port
from services.aggregator.consumer import Aggregator
from services.core.kafka import ensure_topics
from services.core.settings import Settings
from tests.aggregator.streams import (
    Tenant,
    assert_rollups_match,
    make_events,
    produce,
    to_record,
    with_redeliveries,
)
from tests.conftest import Stack
from tests.factories import TenantCtx, TenantFactory
from tests.support import AggregatorProcess, wait_folded
from tests.system.chaos import Checker, Senders, deliveries, folded, until

PARTITIONS = 12
TIMEZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC")
RECOVERY_S = 90.0


@dataclass(frozen=True)
class Size:
    events: int
    rate: float  # events per second while the faults happen
    session_timeout_ms: int


SOAK_EVENTS = int(os.environ.get("SALESLOOP_SOAK_EVENTS") or 20_000)
# The stream at `rate` outlasts the faults (about a minute); the rest goes as fast as it can. The session
# timeout is the default (SALESLOOP_CONSUMER_SESSION_TIMEOUT_MS): what a deployment waits for a dead member.
SOAK = Size(events=SOAK_EVENTS, rate=SOAK_EVENTS / 90, session_timeout_ms=10_000)


@dataclass
class Timeline:
    """Events folded, sampled every 0.1 s: a pause is the longest stretch in which none was."""

    engine: AsyncEngine
    slugs: list[str]
    samples: list[tuple[float, int]] = field(default_factory=list)

    async def run(self) -> None:
        while True:
            n = await folded(self.engine, self.slugs)
            if n is not None:
                self.samples.append((time.monotonic(), n))
            await asyncio.sleep(0.1)

    def longest_stall(self, start: float, end: float) -> float:
        """The longest time between two successive growths of the count within [start, end]."""
        grew = [t for (_, before), (t, n) in pairwise(self.samples) if n > before]
        marks = [start, *(t for t in grew if start < t < end), end]
        return max(b - a for a, b in pairwise(marks))


class Group:
    """The aggregators of one consumer group: who is alive and what each owns."""

    def __init__(self, env: dict[str, str], root: Path) -> None:
        self.env, self.root = env, root
        self.live: list[AggregatorProcess] = []
        self.started = 0

    def add(self) -> ServiceProcess:
        """A new member's process, started (the caller waits until it is healthy)."""
        member = AggregatorProcess(f"aggregator-{self.started}", self.env, self.root)
        self.started += 1
        member.start(wait=False)
        self.live.append(member)
        assert member.proc is not None
        return member.proc

    def kill(self, member: AggregatorProcess) -> None:
        member.kill()
        self.live.remove(member)

    async def owned(self) -> list[float]:
        return [await m.metric("assigned_partitions") for m in self.live]

    async def all_owned(self) -> bool:
        """Every partition owned, and every live member owns some (12 partitions, at most 3 members)."""
        owned = await self.owned()
        return sum(owned) == PARTITIONS and all(n > 0 for n in owned)

    def stop(self) -> None:
        for member in self.live:
            member.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(free_port(), log_path=tmp_path / "broker.log")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.mark.soak  # a minute of process starts, a kill and a join; the in-process group below runs in CI
async def test_two_ingests_and_three_aggregators_count_every_event_once_through_a_kill_and_a_join(
    stack: Stack, engine: AsyncEngine, tenants: TenantFactory, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    await scale_out(SOAK, stack, engine, tenants, broker, tmp_path)


async def scale_out(
    size: Size, stack: Stack, engine: AsyncEngine, tenants: TenantFactory, broker: EmbeddedBroker, root: Path
) -> None:
    topic = f"scale-{secrets.token_hex(4)}"
    await ensure_topics(
        stack.settings(kafka_bootstrap=broker.bootstrap, events_topic=topic, topic_partitions=PARTITIONS)
    )
    env = {
        **stack.env,
        "SALESLOOP_KAFKA_BOOTSTRAP": broker.bootstrap,
        "SALESLOOP_EVENTS_TOPIC": topic,
        "SALESLOOP_CONSUMER_GROUP": f"{topic}-group",
        "SALESLOOP_TOPIC_PARTITIONS": str(PARTITIONS),
        "SALESLOOP_CONSUMER_SESSION_TIMEOUT_MS": str(size.session_timeout_ms),
        "SALESLOOP_BATCH_WAIT_MS": "50",
    }
    ts: dict[str, TenantCtx] = {}
    for tz in TIMEZONES:
        t = await tenants.create(timezone=tz)
        ts[t.slug] = t
    reps = [f"r{i}" for i in range(12)] + [None]
    events = {slug: make_events(size.events // len(ts), slug, reps, seed=90 + i) for i, slug in enumerate(ts)}
    checker = Checker()
    requests = deliveries(events, ts, seed=91)
    ingests = [_ingest(env, root, i) for i in range(2)]
    group = Group(env, root)
    timeline = Timeline(engine, list(ts))
    sampling = asyncio.create_task(timeline.run())
    try:
        for proc in ingests:
            proc.start(wait=False)
        await _healthy(ingests + [group.add() for _ in range(3)])
        await until(group.all_owned, RECOVERY_S, "three aggregators to share the 12 partitions")
        # Each ingest takes every other request, at half the rate.
        senders = [
            Senders(_url(proc), requests[i::2], checker, clients=3, rate=size.rate / 2)
            for i, proc in enumerate(ingests)
        ]
        sending = asyncio.gather(*(s.run(deadline_s=900) for s in senders))
        figures = await _faults(group, timeline, checker, size)
        for s in senders:
            s.rate = None
        await asyncio.wait_for(sending, 900)
        await until(_caught_up(timeline, checker), RECOVERY_S, "every acknowledged event to be folded")
        figures["owned_at_end"] = await group.owned()
    finally:
        sampling.cancel()
        group.stop()
        for proc in ingests:
            proc.stop()
    figures.update(await _exactly_once(engine, checker, events))
    print("\nscale-out:", orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
    assert (figures["lost"], figures["duplicated"], figures["unexpected"]) == (0, 0, 0)
    for slug, acked in checker.acked.items():
        await assert_rollups_match(engine, list(acked.values()), Tenant(slug, ts[slug].timezone))


async def _faults(group: Group, timeline: Timeline, checker: Checker, size: Size) -> dict[str, Any]:
    """SIGKILL one of three members mid-stream, then add a new one; the handover and pause of each."""
    rnd = random.Random(92)
    await _grown_by(timeline, size.events // 6)
    victim = rnd.choice(group.live)
    t_kill = time.monotonic()
    group.kill(victim)
    handover = await until(group.all_owned, RECOVERY_S, "the two survivors to own every partition")
    flowing = await until(_folds_after(timeline, time.monotonic()), RECOVERY_S, "folding to go on")
    kill_pause = timeline.longest_stall(t_kill, time.monotonic())

    await _grown_by(timeline, size.events // 6)
    t_join = time.monotonic()
    await _healthy([group.add()])
    started_s = time.monotonic() - t_join
    joined = await until(group.all_owned, RECOVERY_S, "the new member to own partitions")
    await until(_folds_after(timeline, time.monotonic()), RECOVERY_S, "folding to go on after the join")
    join_pause = timeline.longest_stall(t_join, time.monotonic())
    return {
        "session_timeout_ms": size.session_timeout_ms,
        "sigkill": {
            "all_owned_again_s": round(handover, 2),
            "folding_again_s": round(handover + flowing, 2),
            "longest_stall_s": round(kill_pause, 2),
        },
        "join": {
            "process_ready_s": round(started_s, 2),
            "all_owned_s": round(started_s + joined, 2),
            "longest_stall_s": round(join_pause, 2),
        },
    }


async def _healthy(procs: list[ServiceProcess]) -> None:
    """Started together, waited for together, in threads: the stream and the sampling go on."""
    await asyncio.gather(*(asyncio.to_thread(p.wait_healthy, RECOVERY_S) for p in procs))


def _ingest(env: dict[str, str], root: Path, i: int) -> ServiceProcess:
    port = free_port()
    return ServiceProcess(
        f"ingest-{i}",
        ["ingest", "--port", str(port)],
        env,
        f"http://127.0.0.1:{port}/healthz",
        root / f"ingest-{i}.log",
    )


def _url(proc: ServiceProcess) -> str:
    return proc.health_url.removesuffix("/healthz")


async def _grown_by(timeline: Timeline, events: int) -> None:
    start = timeline.samples[-1][1] if timeline.samples else 0

    async def grown() -> bool:
        return bool(timeline.samples) and timeline.samples[-1][1] >= start + events

    await until(grown, RECOVERY_S, f"{events} more events folded")


def _folds_after(timeline: Timeline, since: float) -> Any:
    async def check() -> bool:
        after = [n for t, n in timeline.samples if t >= since]
        return len(after) >= 2 and after[-1] > after[0]

    return check


def _caught_up(timeline: Timeline, checker: Checker) -> Any:
    async def check() -> bool:
        return bool(timeline.samples) and timeline.samples[-1][1] == checker.total

    return check


async def _exactly_once(
    engine: AsyncEngine, checker: Checker, events: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """Lost: acknowledged, not archived. Duplicated: counted more often than archived. Unexpected:
    archived, never acknowledged."""
    assert checker.total == sum(len(v) for v in events.values()), "not every event was acknowledged"
    lost = duplicated = unexpected = 0
    async with engine.connect() as conn:
        for slug, acked in checker.acked.items():
            rows = await conn.execute(text("SELECT event_id FROM events WHERE tenant = :t"), {"t": slug})
            archived = {r.event_id for r in rows}
            counted = await conn.scalar(
                text("SELECT events_folded FROM tenant_watermarks WHERE tenant = :t"), {"t": slug}
            )
            lost += len(acked.keys() - archived)
            unexpected += len(archived - acked.keys())
            duplicated += int(counted or 0) - len(archived)
    answers = {str(k): v for k, v in sorted(checker.answers.items())}
    return {
        "events": checker.total,
        "answers": answers,
        "lost": lost,
        "duplicated": duplicated,
        "unexpected": unexpected,
    }


# ------------------------------------------------------------------------------- the group, in process


class Member(Aggregator):
    """An aggregator of the group, in this process, that records the partitions it owns."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.owned: set[int] = set()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await super().on_partitions_revoked(revoked)
        self.owned -= {tp.partition for tp in revoked}

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await super().on_partitions_assigned(assigned)
        self.owned = {tp.partition for tp in assigned}


async def test_a_group_of_three_hands_its_partitions_over_as_members_leave_and_join(
    stack: Stack, engine: AsyncEngine, tenants: TenantFactory, broker: EmbeddedBroker
) -> None:
    """The CI-sized sibling: no process starts, a 2 s session timeout, and a member stopped (it leaves the
    group; the SIGKILL is the soak test's). Tansu hands a stopped member's partitions over only once
    the session timeout expired as well, so this costs about 12 s, most of it two rebalances."""
    topic = f"group-{secrets.token_hex(4)}"
    settings = stack.settings(
        kafka_bootstrap=broker.bootstrap, events_topic=topic, consumer_group=f"{topic}-g",
        topic_partitions=PARTITIONS, batch_wait_ms=50, consumer_session_timeout_ms=2000,
    )  # fmt: skip
    await ensure_topics(settings)
    ts = [await tenants.create(timezone=tz) for tz in TIMEZONES[:3]]
    events = {
        t.slug: make_events(400, t.slug, [f"r{i}" for i in range(8)], seed=93 + i) for i, t in enumerate(ts)
    }
    records = with_redeliveries(
        [to_record(e, slug) for slug, mine in events.items() for e in mine], 0.2, seed=94
    )
    random.Random(95).shuffle(records)
    parts = [records[i::3] for i in range(3)]
    members: dict[Member, asyncio.Task[None]] = {}

    def join() -> None:
        member = Member(settings)
        members[member] = asyncio.create_task(member.run())

    async def shared() -> bool:
        owned = [m.owned for m in members]
        return all(owned) and sorted(p for o in owned for p in o) == list(range(PARTITIONS))

    try:
        for _ in range(3):
            join()
        await until(shared, RECOVERY_S, "three members to share every partition")
        await produce(broker.bootstrap, topic, parts[0])
        leaving = random.Random(96).choice(list(members))
        leaving.stop()
        await asyncio.gather(members.pop(leaving), produce(broker.bootstrap, topic, parts[1]))
        await until(shared, RECOVERY_S, "the two left to own every partition")
        join()
        await asyncio.gather(until(shared, RECOVERY_S, "the newcomer to own partitions"),
                             produce(broker.bootstrap, topic, parts[2]))  # fmt: skip
        for t in ts:
            await wait_folded(engine, t.slug, len(events[t.slug]))
    finally:
        for member in members:
            member.stop()
        await asyncio.gather(*members.values())
    for t in ts:
        await assert_rollups_match(engine, events[t.slug], Tenant(t.slug, t.timezone))
