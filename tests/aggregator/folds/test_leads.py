"""Lead state per contact: speed to lead, first-touch channel and qualification, in any arrival order."""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.core.wire import Event
from tests.aggregator.folds.support import commit, event, new_tenant, table

at = datetime.fromisoformat
LEAD_COLUMNS = (
    "contact_id", "created_at", "created_event_id", "channel", "origin_at", "origin_event_id",
    "first_touch_at", "speed_s", "mql_at", "sql_at",
)  # fmt: skip


def contact_events(t: str) -> list[Event]:
    return [
        event(t, "email.sent", "2026-11-02T08:00:00Z", rep_id="r1", contact_id="c1", event_id="t1"),
        event(t, "call.completed", "2026-11-02T10:30:00Z", rep_id="r1", contact_id="c1", event_id="t2"),
        event(t, "meeting.booked", "2026-11-02T12:00:00Z", rep_id="r1", contact_id="c1", event_id="t3"),
        event(t, "lead.created", "2026-11-02T10:00:00Z", contact_id="c1", channel="organic_search",
              event_id="l1"),
        event(t, "lead.created", "2026-11-02T09:00:00Z", contact_id="c1", event_id="l2"),
        event(t, "lead.created", "2026-11-02T09:00:00Z", contact_id="c1", event_id="l3"),
        event(t, "lead.qualified", "2026-11-02T13:00:00Z", contact_id="c1", stage="sql", event_id="q1"),
        event(t, "lead.qualified", "2026-11-02T11:30:00Z", contact_id="c1", stage="mql", event_id="q2"),
        event(t, "lead.qualified", "2026-11-02T11:00:00Z", contact_id="c1", stage="mql", event_id="q3"),
    ]  # fmt: skip


# The lead starts with l2 (the earliest, 09:00, tied with l3: the smaller id wins); the 08:00 email
# was prospecting before it; the first touch is the 10:30 call; the channel is the earliest lead
# naming one (l1).
EXPECTED = (
    "c1", at("2026-11-02T09:00:00Z"), "l2", "organic_search", at("2026-11-02T10:00:00Z"), "l1",
    at("2026-11-02T10:30:00Z"), Decimal(5400),
    at("2026-11-02T11:00:00Z"), at("2026-11-02T13:00:00Z"),
)  # fmt: skip


async def test_a_lead_created_between_known_touches_finds_its_first_touch_in_the_archive(
    pool: asyncpg.Pool,
) -> None:
    t = await new_tenant(pool)
    t1, t2, t3, l1, l2, l3, *qualified = contact_events(t)
    await commit(pool, [t1, t2, t3])
    await commit(pool, [l2])  # its state knows only the 08:00 and 12:00 touches: the archive knows 10:30
    rows = await table(pool, "leads", t, "first_touch_at", "speed_s")
    assert rows == [(at("2026-11-02T10:30:00Z"), Decimal(5400))]
    await commit(pool, [l3, l1, *qualified])
    assert await table(pool, "leads", t, *LEAD_COLUMNS) == [EXPECTED]


@st.composite
def deliveries(draw: st.DrawFn, n: int) -> list[list[int]]:
    order = draw(st.permutations(range(n)))
    stream = list(order) + draw(st.lists(st.integers(0, n - 1), max_size=3))
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    return [stream[a:b] for a, b in itertools.pairwise([0, *cuts, len(stream)])]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=deliveries(9))
async def test_lead_state_does_not_depend_on_order_or_batching(
    pool: asyncpg.Pool, plan: list[list[int]]
) -> None:
    t = await new_tenant(pool)
    events = contact_events(t)
    for batch in plan:
        await commit(pool, [events[i] for i in batch])
    assert await table(pool, "leads", t, *LEAD_COLUMNS) == [EXPECTED]


def random_stream(t: str, seed: int, contacts: int = 40, n: int = 400) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    kinds = [
        "lead.created",
        "lead.qualified",
        "call.completed",
        "email.sent",
        "meeting.booked",
        "email.opened",
    ]
    out = []
    for i in range(n):
        kind = rnd.choice(kinds)
        e: dict[str, Any] = {
            "type_": kind,
            "at": (start + timedelta(minutes=rnd.randrange(3 * 24 * 60))).isoformat(),
            "contact_id": f"c{rnd.randrange(contacts)}",
            "event_id": f"{seed}-{i}",
            "rep_id": "r1",
        }
        if kind == "lead.created" and rnd.random() < 0.6:
            e["channel"] = rnd.choice(["referral", "paid_search", "events"])
        if kind == "lead.qualified":
            e["stage"] = rnd.choice(["mql", "sql"])
        out.append(e)
    return out


def naive_leads(stream: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """SPEC 5.5 applied literally to the whole stream at once."""
    out = []
    for contact in sorted({e["contact_id"] for e in stream}):
        mine = [e for e in stream if e["contact_id"] == contact]
        if not any(e["type_"] in ("lead.created", "lead.qualified") for e in mine):
            continue  # touches alone make no lead
        created = min(
            ((at(e["at"]), e["event_id"]) for e in mine if e["type_"] == "lead.created"), default=None
        )
        touches = [
            at(e["at"]) for e in mine if e["type_"] in ("call.completed", "email.sent", "meeting.booked")
        ]
        named = [(at(e["at"]), e["event_id"], e["channel"]) for e in mine if e.get("channel")]
        origin = min(named, default=None)
        first = min((x for x in touches if x >= created[0]), default=None) if created else None
        stages = {
            s: min((at(e["at"]) for e in mine if e.get("stage") == s), default=None) for s in ("mql", "sql")
        }
        out.append(
            (
                contact,
                created[0] if created else None,
                created[1] if created else None,
                origin[2] if origin else None,
                origin[0] if origin else None,
                origin[1] if origin else None,
                first,
                Decimal(int((first - created[0]).total_seconds())) if first and created else None,
                stages["mql"],
                stages["sql"],
            )
        )
    return sorted(out, key=repr)


async def test_concurrent_consumers_folding_the_same_contacts_agree_with_a_naive_computation(
    pool: asyncpg.Pool,
) -> None:
    t = await new_tenant(pool)
    stream = random_stream(t, seed=7)
    events = [event(t, **e) for e in stream]
    rnd = random.Random(8)

    async def consumer() -> None:
        for _ in range(4):
            await commit(pool, rnd.sample(events, 120))

    await asyncio.wait_for(asyncio.gather(*(consumer() for _ in range(3))), 60)
    await commit(pool, events)  # whatever no consumer sampled
    assert await table(pool, "leads", t, *LEAD_COLUMNS) == naive_leads(stream)
