"""The conversation fold: calls and transcripts in any order and batching, the last delivered transcript
winning, exactly once, the talk_ratio feed, and a rebuild giving what live folding gave.

Expectations come from `analyse` applied to the transcript that should win, summed here: the fold's
bookkeeping (waiting rows, replacements, differences) is what is under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from services.aggregator.conversation import METRICS, TACTICS, analyse
from services.aggregator.erasure import analysis_json
from services.aggregator.folds import FOLDS
from services.aggregator.rebuild import rebuild
from services.core.models import CONVERSATION_COUNTERS
from services.core.privacy import erase_transcript, pseudonym
from services.core.wire import Event
from tests.aggregator.folds.support import commit, event, new_tenant, rep_rollups, table
from tests.aggregator.folds.test_crm import deliveries

REPS = {"r1": "UTC", "r2": "America/New_York"}
ZONES = {rep: ZoneInfo(zone) for rep, zone in REPS.items()}
TALK = ("talk_calls", "rep_talk_s", "buyer_talk_s")
SET = ("tenant", "source", "type", "occurred_at")  # what `event` sets itself


def seg(speaker: str, start: float, end: float, text: str) -> dict[str, Any]:
    return {"speaker": speaker, "start_s": start, "end_s": end, "text": text}


DISCOVERY = [
    seg("rep", 0, 6, "Thanks for taking the call. How does your team handle onboarding today?"),
    seg("buyer", 7, 20, "We do it by hand, it takes weeks and the new hires get lost in the tools."),
    seg("rep", 21, 25, "It sounds like the tools are slowing everyone down."),
    seg("buyer", 25.5, 27, "That's right."),
    seg("rep", 28, 32, "What would a good first month look like for you?"),
    seg("buyer", 33, 45, "Everyone productive in two weeks. Can you do that?"),
]
SHORT = [
    seg("rep", 0, 3, "Is now a bad time to talk?"),
    seg("buyer", 4, 6, "No, go ahead."),
    seg("rep", 7, 30, "So we help teams ramp faster with training that follows every call."),
]
MONOLOGUE = [seg("rep", 0, 90, "Let me tell you all about our product and the roadmap for next year.")]
SILENT: list[dict[str, Any]] = []


def call(t: str, eid: str, at: str, rep: str | None = "r1", **fields: Any) -> Event:
    fields = {"contact_id": f"c-{eid}", **fields}
    return event(
        t, "call.completed", at, rep_id=rep, direction="outbound", outcome="connected", duration_s=120,
        event_id=eid, **fields,
    )  # fmt: skip


def transcribed(t: str, eid: str, of: str, received: str, transcript: list[dict[str, Any]]) -> Event:
    return event(
        t, "call.transcribed", "2026-11-02T12:00:00Z", event_id=eid, call_event_id=of,
        transcript=transcript, received_at=received,
    )  # fmt: skip


# -- the expectation, computed from the events directly --


def winners(events: Iterable[Event]) -> dict[str, tuple[Event | None, Event]]:
    """call event id -> (the call if any, the event whose transcript should win)."""
    calls = {e.event_id: e for e in events if e.type == "call.completed"}
    best: dict[str, Event] = {}
    for e in events:
        of = e.call_event_id if e.type == "call.transcribed" else e.event_id
        if of is None or "transcript" not in orjson.loads(e.payload):
            continue
        if of not in best or (e.received_at, e.event_id) > (best[of].received_at, best[of].event_id):
            best[of] = e
    return {of: (calls.get(of), e) for of, e in best.items()}


def expected(events: Sequence[Event]) -> dict[str, Any]:
    conversation: dict[tuple[str, date], dict[str, float]] = {}
    talk: dict[tuple[str, date], dict[str, float]] = {}
    rows = []
    for of, (c, won) in sorted(winners(events).items()):
        a = analyse(orjson.loads(won.payload)["transcript"])
        rows.append((of, c and c.rep_id, won.event_id, a.words))
        if c is None or c.rep_id is None or a.words == 0:
            continue
        key = (c.rep_id, c.occurred_at.astimezone(ZONES[c.rep_id]).date())
        sums = conversation.setdefault(key, {})
        _add(sums, "calls_analysed", 1)
        for m in METRICS:
            if a.metrics[m] is not None:
                _add(sums, f"{m}_sum", float(a.metrics[m] or 0))
                _add(sums, f"{m}_n", 1)
        for moment in a.moments:
            _add(sums, f"{moment.tactic}_moments", 1)
        reported = c.rep_talk_ms is not None and c.buyer_talk_ms is not None
        if not reported and a.metrics["rep_talk_share"] is not None:
            feed = talk.setdefault(key, {})
            _add(feed, "talk_calls", 1)
            _add(feed, "rep_talk_s", a.rep_speech_s)
            _add(feed, "buyer_talk_s", a.buyer_speech_s)
    for c in events:
        if c.type == "call.completed" and c.rep_talk_ms is not None and c.buyer_talk_ms is not None:
            assert c.rep_id is not None
            feed = talk.setdefault((c.rep_id, c.occurred_at.astimezone(ZONES[c.rep_id]).date()), {})
            _add(feed, "talk_calls", 1)
            _add(feed, "rep_talk_s", c.rep_talk_ms / 1000)
            _add(feed, "buyer_talk_s", c.buyer_talk_ms / 1000)
    nonzero = {k: {n: v for n, v in d.items() if v} for k, d in conversation.items()}
    return {"rows": sorted(rows), "conversation": nonzero, "talk": talk}


def _add(d: dict[str, float], name: str, v: float) -> None:
    d[name] = d.get(name, 0) + v


# -- the tables --


async def stored(pool: asyncpg.Pool, t: str) -> dict[str, Any]:
    rows = await table(pool, "call_analyses", t, "call_event_id", "rep_id", "transcript_event_id", "words")
    conv = await pool.fetch(
        f"SELECT rep_id, day, {', '.join(CONVERSATION_COUNTERS)} FROM conversation_rollups WHERE tenant = $1",
        t,
    )
    conversation = {
        (r["rep_id"], r["day"]): {c: float(r[c]) for c in CONVERSATION_COUNTERS if r[c]} for r in conv
    }
    talk = {
        key: {c: float(v[c]) for c in TALK if c in v}
        for key, v in (await rep_rollups(pool, t)).items()
        if any(c in v for c in TALK)
    }
    return {"rows": sorted(rows), "conversation": {k: v for k, v in conversation.items() if v}, "talk": talk}


async def assert_folded(pool: asyncpg.Pool, t: str, events: Sequence[Event]) -> None:
    got, want = await stored(pool, t), expected(events)
    assert got["rows"] == want["rows"]
    assert flat(got["conversation"]) == pytest.approx(flat(want["conversation"]), abs=1e-5)
    assert flat(got["talk"]) == pytest.approx(flat(want["talk"]), abs=2e-3)


def flat(rows: dict[tuple[str, date], dict[str, float]]) -> dict[tuple[str, date, str], float]:
    return {(*key, name): v for key, row in rows.items() for name, v in row.items()}


# -- the scenarios --


def story(t: str) -> list[Event]:
    """Calls of two reps (one in New York), and transcripts delivered before, after and instead of
    one another."""
    return [
        call(t, "c1", "2026-11-02T10:00:00Z"),
        transcribed(t, "t1", "c1", "2026-11-02T11:00:00Z", DISCOVERY),
        # r2's evening of the 2nd in New York; a transcript of its own, replaced by a later delivery
        call(t, "c2", "2026-11-03T01:00:00Z", rep="r2", transcript=SHORT,
             received_at="2026-11-03T01:00:05Z"),
        transcribed(t, "t2", "c2", "2026-11-03T09:00:00Z", DISCOVERY),
        # delivered before c3's own transcript: c3's own wins
        transcribed(t, "t3-old", "c3", "2026-11-02T09:00:00Z", MONOLOGUE),
        call(t, "c3", "2026-11-02T08:00:00Z", transcript=SHORT, received_at="2026-11-02T09:30:00Z"),
        # the call reports its own talk times: those feed talk_ratio, not the transcript's
        call(t, "c4", "2026-11-02T14:00:00Z", rep_talk_s=30, buyer_talk_s=90),
        transcribed(t, "t4", "c4", "2026-11-02T15:00:00Z", SHORT),
        # a transcript without words: kept, counted nowhere
        call(t, "c5", "2026-11-02T16:00:00Z", transcript=SILENT),
        # an unassigned call
        call(t, "c6", "2026-11-02T17:00:00Z", rep=None),
        transcribed(t, "t6", "c6", "2026-11-02T18:00:00Z", MONOLOGUE),
        # a transcript whose call never comes
        transcribed(t, "t7", "c-missing", "2026-11-02T18:00:00Z", SHORT),
        # calls without transcripts
        call(t, "c8", "2026-11-02T19:00:00Z"),
        event(t, "email.sent", "2026-11-02T19:00:00Z", rep_id="r1"),
    ]  # fmt: skip


async def test_a_transcript_before_its_call_waits_and_completes_when_the_call_comes(
    pool: asyncpg.Pool,
) -> None:
    t = await new_tenant(pool, reps=REPS)
    early = transcribed(t, "t1", "c1", "2026-11-02T11:00:00Z", DISCOVERY)
    await commit(pool, [early])
    waiting = await table(pool, "call_analyses", t, "call_event_id", "rep_id", "occurred_at", "local_day")
    assert waiting == [("c1", None, None, None)]
    assert await stored(pool, t) == {
        "rows": [("c1", None, "t1", analyse(DISCOVERY).words)],
        "conversation": {},
        "talk": {},
    }

    late = call(t, "c1", "2026-11-02T10:00:00Z")
    await commit(pool, [late])
    await assert_folded(pool, t, [early, late])
    row = await pool.fetchrow("SELECT * FROM call_analyses WHERE tenant = $1", t)
    assert (row["rep_id"], row["contact_id"], row["local_day"]) == ("r1", "c-c1", date(2026, 11, 2))
    assert row["occurred_at"] == datetime.fromisoformat("2026-11-02T10:00:00+00:00")
    assert (row["duration_s"], row["talk_reported"]) == (120, False)
    moments = orjson.loads(row["moments"]) if isinstance(row["moments"], str) else row["moments"]
    assert [m["tactic"] for m in moments] == [m.tactic for m in analyse(DISCOVERY).moments]
    assert all(m["text"] for m in moments)


async def test_a_transcript_after_its_call_takes_the_call_from_the_archive(pool: asyncpg.Pool) -> None:
    t = await new_tenant(pool, reps=REPS)
    events = [call(t, "c2", "2026-11-03T01:00:00Z", rep="r2")]
    await commit(pool, events)
    assert await table(pool, "call_analyses", t, "call_event_id") == []
    events.append(transcribed(t, "t2", "c2", "2026-11-03T09:00:00Z", DISCOVERY))
    await commit(pool, events[1:])
    await assert_folded(pool, t, events)
    # New York's evening of the 2nd
    assert list((await stored(pool, t))["conversation"]) == [("r2", date(2026, 11, 2))]


async def test_a_later_transcript_replaces_the_analysis_by_the_difference(pool: asyncpg.Pool) -> None:
    t = await new_tenant(pool, reps=REPS)
    first = [call(t, "c1", "2026-11-02T10:00:00Z"), call(t, "other", "2026-11-02T11:00:00Z")]
    first += [
        transcribed(t, "t1", "c1", "2026-11-02T11:00:00Z", SHORT),
        transcribed(t, "t-other", "other", "2026-11-02T12:00:00Z", MONOLOGUE),
    ]
    await commit(pool, first)
    await assert_folded(pool, t, first)
    before = (await stored(pool, t))["conversation"][("r1", date(2026, 11, 2))]

    newer = transcribed(t, "t1-again", "c1", "2026-11-02T13:00:00Z", DISCOVERY)
    older = transcribed(t, "t1-stale", "c1", "2026-11-02T10:30:00Z", MONOLOGUE)
    await commit(pool, [newer])
    await commit(pool, [older])  # delivered later, but an older delivery: changes nothing
    await assert_folded(pool, t, [*first, newer, older])
    after = (await stored(pool, t))["conversation"][("r1", date(2026, 11, 2))]
    # the day keeps both calls; its sums moved by SHORT's analysis out and DISCOVERY's in
    short, discovery = analyse(SHORT), analyse(DISCOVERY)
    assert after["calls_analysed"] == before["calls_analysed"] == 2
    assert after["rep_questions_sum"] - before["rep_questions_sum"] == (
        (discovery.metrics["rep_questions"] or 0) - (short.metrics["rep_questions"] or 0)
    )
    talk = (await rep_rollups(pool, t))[("r1", date(2026, 11, 2))]
    assert talk["talk_calls"] == 2
    assert float(talk["rep_talk_s"]) == pytest.approx(
        analyse(MONOLOGUE).rep_speech_s + discovery.rep_speech_s, abs=2e-3
    )


async def test_the_whole_story_redelivered_changes_nothing(pool: asyncpg.Pool) -> None:
    t = await new_tenant(pool, reps=REPS)
    events = story(t)
    await commit(pool, events)
    await assert_folded(pool, t, events)
    once = await stored(pool, t)
    assert once["rows"][0] == ("c-missing", None, "t7", analyse(SHORT).words)
    assert ("c5", "r1", "c5", 0) in once["rows"]
    assert ("c6", None, "t6", analyse(MONOLOGUE).words) in once["rows"]

    await commit(pool, events[::-1])
    await commit(pool, events[3:5])
    assert await stored(pool, t) == once


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=deliveries(14))
async def test_any_order_and_batching_gives_the_same_tables(
    pool: asyncpg.Pool, plan: list[list[int]]
) -> None:
    t = await new_tenant(pool, reps=REPS)
    events = story(t)
    assert len(events) == 14
    for batch in plan:
        await commit(pool, [events[i] for i in batch])
    await assert_folded(pool, t, events)


async def test_a_call_and_its_transcript_folded_at_the_same_time_by_two_consumers(pool: asyncpg.Pool) -> None:
    for _ in range(5):
        t = await new_tenant(pool, reps=REPS)
        events = [
            call(t, "c1", "2026-11-02T10:00:00Z"),
            transcribed(t, "t1", "c1", "2026-11-02T11:00:00Z", DISCOVERY),
        ]
        await asyncio.gather(commit(pool, events[:1]), commit(pool, events[1:]))
        await assert_folded(pool, t, events)


async def test_a_rebuild_gives_what_live_folding_gave(pool: asyncpg.Pool) -> None:
    t = await new_tenant(pool, reps=REPS)
    events = story(t)
    backwards = events[::-1]
    for i in range(0, len(backwards), 3):
        await commit(pool, backwards[i : i + 3])
    live = {name: await everything(pool, name, t) for name in ("call_analyses", "conversation_rollups")}
    live_talk = (await stored(pool, t))["talk"]
    assert all(live.values())

    async with pool.acquire() as conn, conn.transaction():
        await rebuild(conn, [t])
    assert {name: await everything(pool, name, t) for name in live} == live
    assert (await stored(pool, t))["talk"] == live_talk
    await assert_folded(pool, t, events)


async def everything(pool: asyncpg.Pool, name: str, t: str) -> list[tuple[Any, ...]]:
    rows = await pool.fetch(f"SELECT * FROM {name} WHERE tenant = $1", t)
    return sorted((tuple(r.values()) for r in rows), key=repr)


def test_the_registry_rebuilds_both_tables_and_the_columns_follow_the_analysis() -> None:
    [fold] = [f for f in FOLDS if f.name == "conversations"]
    assert fold.tables == ("call_analyses", "conversation_rollups")
    assert CONVERSATION_COUNTERS == (
        "calls_analysed",
        *(f"{m}_{part}" for m in METRICS for part in ("sum", "n")),
        *(f"{tactic}_moments" for tactic in TACTICS),
    )


async def test_an_erased_transcript_counts_by_its_kept_analysis_without_text(pool: asyncpg.Pool) -> None:
    """What the batch makes of an erased contact's events before the fold (services/aggregator/erasure.py):
    a pseudonym for the contact, a transcript without text that keeps its analysis."""
    t = await new_tenant(pool, reps=REPS)
    plain = [
        call(t, "c1", "2026-11-02T10:00:00Z"),
        transcribed(t, "t1", "c1", "2026-11-02T11:00:00Z", DISCOVERY),
    ]
    data = orjson.loads(plain[1].payload)
    erase_transcript(
        data, analysis_json(analyse(DISCOVERY)), datetime.fromisoformat("2026-12-02T00:00:00+00:00")
    )
    erased = [
        call(t, "c1", "2026-11-02T10:00:00Z", contact_id=pseudonym(b"k" * 32, "c-c1")),
        event(
            t, "call.transcribed", "2026-11-02T12:00:00Z", **{k: v for k, v in data.items() if k not in SET}
        ),
    ]
    assert "Thanks" not in erased[1].payload
    await commit(pool, erased)
    await assert_folded(pool, t, plain)
    row = await pool.fetchrow(
        "SELECT contact_id, moments::text, erased_at FROM call_analyses WHERE tenant = $1", t
    )
    assert row["contact_id"] is None
    assert row["erased_at"] is not None
    moments = orjson.loads(row["moments"])
    assert [m["tactic"] for m in moments] == [m.tactic for m in analyse(DISCOVERY).moments]
    assert all(m["text"] is None for m in moments)
