"""Conversations end to end: calls and transcripts posted to the real ingest (transcripts before and after
their calls, replacements, redeliveries) while the aggregator is SIGKILLed; each rep's conversation
rollups equal an independent computation from the posted events and `analyse` of the transcript that
should win.

The transcript that wins is the one delivered last. Deliveries go in two phases, the second only once
every event of the first was acknowledged, so each replacement of the second phase is delivered after
the transcript it replaces.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.embedded import EmbeddedBroker, free_port
from services.aggregator.conversation import METRICS, TACTICS, analyse
from services.core.kafka import ensure_topics
from tests.aggregator.folds.test_conversations import DISCOVERY, MONOLOGUE, SHORT, SILENT
from tests.conftest import Stack
from tests.factories import TenantCtx, TenantFactory
from tests.system.chaos import Checker, Pipeline, Senders, deliveries, folded, until

REPS = {"r1": "America/New_York", "r2": "UTC", "r3": "Asia/Tokyo"}
TRANSCRIPTS = (DISCOVERY, SHORT, MONOLOGUE, SILENT)
CALLS = 90
START = datetime(2026, 11, 2, tzinfo=UTC)


def shifted(transcript: list[dict[str, Any]], by: float) -> list[dict[str, Any]]:
    return [{**s, "start_s": s["start_s"] + by, "end_s": s["end_s"] + by} for s in transcript]


def story(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(phase 1, phase 2, the transcript event that should win per call)."""
    rnd = random.Random(seed)
    first: list[dict[str, Any]] = []
    second: list[dict[str, Any]] = []
    winner: dict[str, dict[str, Any]] = {}
    for i in range(CALLS):
        at = START + timedelta(hours=rnd.randrange(0, 24 * 5), minutes=rnd.randrange(60))
        call: dict[str, Any] = {
            "event_id": f"call-{i}", "type": "call.completed", "occurred_at": at.isoformat(),
            "rep_id": rnd.choice(sorted(REPS)), "contact_id": f"contact-{i}", "direction": "outbound",
            "outcome": "connected", "duration_s": rnd.randrange(30, 900),
        }  # fmt: skip
        if i % 4 == 0:
            call |= {"rep_talk_s": rnd.randrange(10, 300), "buyer_talk_s": rnd.randrange(10, 300)}
        transcript = shifted(rnd.choice(TRANSCRIPTS), rnd.randrange(0, 30))
        if i % 3 == 0 and i % 10 != 7:  # (a call of the second phase has no transcript of its own)
            call["transcript"] = transcript
            winner[call["event_id"]] = call
        elif i % 3 == 1:
            transcribed = _transcribed(call, f"tr-{i}-a", at, transcript)
            first.append(transcribed)
            winner[call["event_id"]] = transcribed
        # A call of the second phase: its transcript (if any) came first.
        (second if i % 10 == 7 else first).append(call)
        if i % 5 == 2:  # replaced by a transcript delivered later
            again = _transcribed(call, f"tr-{i}-b", at, shifted(rnd.choice(TRANSCRIPTS), 1))
            second.append(again)
            winner[call["event_id"]] = again
    return first, second, winner


def _transcribed(call: dict[str, Any], eid: str, at: datetime, transcript: list[Any]) -> dict[str, Any]:
    return {
        "event_id": eid, "type": "call.transcribed", "occurred_at": (at + timedelta(minutes=20)).isoformat(),
        "call_event_id": call["event_id"], "transcript": transcript,
    }  # fmt: skip


def expected(calls: list[dict[str, Any]], winner: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per rep: calls analysed, each metric's mean over the calls that have it, each tactic per call,
    and the talk_ratio sums (the call's own talk times, else the analysis' speech seconds)."""
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for call in calls:
        mine = sums[call["rep_id"]]
        won = winner.get(call["event_id"])
        a = analyse(won["transcript"]) if won is not None else None
        if "rep_talk_s" in call:
            mine["talk_calls"] += 1
            mine["rep_talk_s"] += call["rep_talk_s"]
            mine["buyer_talk_s"] += call["buyer_talk_s"]
        elif a is not None and a.metrics["rep_talk_share"] is not None:
            mine["talk_calls"] += 1
            mine["rep_talk_s"] += a.rep_speech_s
            mine["buyer_talk_s"] += a.buyer_speech_s
        if a is None or a.words == 0:
            continue
        mine["calls_analysed"] += 1
        for m in METRICS:
            if a.metrics[m] is not None:
                mine[f"{m}_sum"] += float(a.metrics[m] or 0)
                mine[f"{m}_n"] += 1
        for moment in a.moments:
            mine[f"{moment.tactic}_moments"] += 1
    return {rep: rates(s) for rep, s in sums.items()}


def rates(s: dict[str, float]) -> dict[str, Any]:
    calls = s.get("calls_analysed", 0)
    out: dict[str, Any] = {"calls_analysed": calls}
    out |= {m: s[f"{m}_sum"] / s[f"{m}_n"] if s.get(f"{m}_n") else None for m in METRICS}
    out |= {f"{t}_per_call": s.get(f"{t}_moments", 0) / calls if calls else None for t in TACTICS}
    out |= {c: s.get(c, 0) for c in ("talk_calls", "rep_talk_s", "buyer_talk_s")}
    return out


async def stored(engine: AsyncEngine, tenant: str) -> dict[str, dict[str, Any]]:
    columns = ["calls_analysed", *(f"{m}_{p}" for m in METRICS for p in ("sum", "n"))]
    columns += [f"{t}_moments" for t in TACTICS]
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(f"SELECT rep_id, {', '.join(columns)} FROM conversation_rollups WHERE tenant = :t"),
            {"t": tenant},
        )
        for row in rows.mappings():
            for c in columns:
                out[row["rep_id"]][c] += float(row[c])
        talk = await conn.execute(
            text(
                "SELECT rep_id, sum(talk_calls) AS talk_calls, sum(rep_talk_s) AS rep_talk_s, "
                "sum(buyer_talk_s) AS buyer_talk_s FROM rollup_rep_daily WHERE tenant = :t GROUP BY rep_id"
            ),
            {"t": tenant},
        )
        for row in talk.mappings():
            for c in ("talk_calls", "rep_talk_s", "buyer_talk_s"):
                out[row["rep_id"]][c] += float(row[c])
    return {rep: rates(s) for rep, s in out.items()}


async def winners_stored(engine: AsyncEngine, tenant: str) -> dict[str, str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT call_event_id, transcript_event_id FROM call_analyses WHERE tenant = :t"),
            {"t": tenant},
        )
        return {r.call_event_id: r.transcript_event_id for r in rows}


async def send_phase(
    pipe: Pipeline,
    t: TenantCtx,
    events: list[dict[str, Any]],
    checker: Checker,
    seed: int,
    rate: float | None,
) -> asyncio.Task[None]:
    senders = Senders(pipe.ingest_url, deliveries({t.slug: events}, {t.slug: t}, seed), checker, 4, rate)
    return asyncio.create_task(senders.run(deadline_s=300))


async def test_conversation_rollups_survive_a_killed_aggregator_exactly_once(
    stack: Stack, engine: AsyncEngine, tenants: TenantFactory, tmp_path: Path
) -> None:
    broker = EmbeddedBroker(free_port(), log_path=tmp_path / "broker.log")
    broker.start()
    topic = f"conversations-{secrets.token_hex(4)}"
    settings = stack.settings(kafka_bootstrap=broker.bootstrap, events_topic=topic, topic_partitions=4)
    await ensure_topics(settings)
    env = {
        **stack.env,
        "SALESLOOP_KAFKA_BOOTSTRAP": broker.bootstrap,
        "SALESLOOP_EVENTS_TOPIC": topic,
        "SALESLOOP_CONSUMER_GROUP": f"{topic}-group",
        "SALESLOOP_TOPIC_PARTITIONS": "4",
        "SALESLOOP_CONSUMER_SESSION_TIMEOUT_MS": "2000",
        "SALESLOOP_BATCH_WAIT_MS": "50",
    }
    t = await tenants.create()
    async with engine.begin() as conn:
        for rep, zone in REPS.items():
            await conn.execute(
                text("INSERT INTO reps (tenant, rep_id, timezone) VALUES (:t, :r, :z)"),
                {"t": t.slug, "r": rep, "z": zone},
            )
    first, second, winner = story(seed=5)
    checker = Checker()
    pipe = Pipeline(env, tmp_path, broker)
    pipe.ingest.start()
    aggregator = pipe.aggregator()
    try:
        # Phase 1 at a pace the kill lands in the middle of.
        sending = await send_phase(pipe, t, first, checker, seed=6, rate=40.0)
        await until(lambda: _folded_at_least(engine, t.slug, 25), 60, "the first events folded")
        aggregator.kill()
        aggregator.start()
        await asyncio.wait_for(sending, 300)
        await until(lambda: _folded_at_least(engine, t.slug, len(first)), 90, "phase 1 folded")
        # Phase 2: replacements, calls whose transcripts came first, and phase 1 again.
        sending = await send_phase(pipe, t, second + first[::3], checker, seed=7, rate=None)
        await asyncio.wait_for(sending, 300)
        await until(lambda: _folded_at_least(engine, t.slug, len(first) + len(second)), 90, "phase 2 folded")
    finally:
        pipe.stop()
        broker.stop()

    assert await folded(engine, [t.slug]) == len(first) + len(second)
    calls = [e for e in first + second if e["type"] == "call.completed"]
    assert await winners_stored(engine, t.slug) == {c: e["event_id"] for c, e in winner.items()}
    got, want = await stored(engine, t.slug), expected(calls, winner)
    assert sorted(got) == sorted(want)
    for rep in want:
        assert got[rep] == pytest.approx(want[rep], abs=1e-4), rep
    assert sum(r["calls_analysed"] for r in got.values()) > CALLS / 3


async def _folded_at_least(engine: AsyncEngine, tenant: str, n: int) -> bool:
    return (await folded(engine, [tenant]) or 0) >= n
