"""The batch transaction against the session Postgres: archive dedupe, rep registration, offsets, locking."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.aggregator.commit import commit_batch
from services.aggregator.store import Store, resolve_aliases
from services.core.events import SCHEMA_HEADER
from services.core.wire import Event, decode
from tests.aggregator.streams import Tenant, assert_rollups_match, make_events
from tests.conftest import Stack
from tests.factories import TenantFactory


@pytest.fixture
async def store(stack: Stack) -> AsyncIterator[Store]:
    s = await Store.open(stack.settings(consumer_group=f"store-{secrets.token_hex(3)}", events_topic="t"))
    yield s
    await s.close()


def decoded(events: list[dict[str, Any]], tenant: str) -> list[Event]:
    out = []
    for e in events:
        body = {**e, "tenant": tenant, "source": "api", "received_at": "2026-11-20T00:00:00Z"}
        d = decode(orjson.dumps(body), [SCHEMA_HEADER])
        assert isinstance(d, Event), d
        out.append(d)
    return out


async def sql(engine: AsyncEngine, statement: str, **params: Any) -> list[Any]:
    async with engine.begin() as conn:
        result = await conn.execute(text(statement), params)
        return list(result) if result.returns_rows else []


async def test_a_batch_is_counted_once_however_often_it_is_committed(
    store: Store, engine: AsyncEngine, tenants: TenantFactory
) -> None:
    t = await tenants.create(timezone="Europe/Berlin")
    tenant = Tenant(t.slug, t.timezone)
    events = make_events(300, t.slug, ["r1", "r2", None], seed=1)
    batch = decoded(events, t.slug)

    first = await commit_batch(store, batch[:200], {0: 200})
    assert (len(first.folded), first.duplicates, first.registered_reps) == (200, 0, 2)
    again = await commit_batch(store, batch + batch[250:260], {0: 300, 1: 7})  # twice within the batch too
    assert (len(again.folded), again.duplicates) == (100, 210)
    redelivered = await commit_batch(store, batch[50:80], {0: 300})
    assert (len(redelivered.folded), redelivered.duplicates) == (0, 30)

    await assert_rollups_match(engine, events, tenant)
    assert await store.load_offsets([0, 1, 2]) == {0: 300, 1: 7}
    archived = await sql(engine, "SELECT count(*) FROM events WHERE tenant = :t", t=t.slug)
    assert archived[0][0] == 300


async def test_unknown_reps_are_registered_in_the_tenant_timezone_and_known_reps_keep_theirs(
    store: Store, engine: AsyncEngine, tenants: TenantFactory
) -> None:
    t = await tenants.create(timezone="America/New_York")
    await sql(
        engine,
        "INSERT INTO reps (tenant, rep_id, timezone, name) VALUES (:t, 'tokyo', 'Asia/Tokyo', 'Kenji')",
        t=t.slug,
    )
    at = "2026-11-02T23:30:00Z"  # the 2nd in New York, the 3rd in Tokyo
    batch = decoded(
        [
            {"event_id": "a", "type": "email.sent", "occurred_at": at, "rep_id": "tokyo"},
            {"event_id": "b", "type": "email.sent", "occurred_at": at, "rep_id": "newbie"},
        ],
        t.slug,
    )
    result = await commit_batch(store, batch, {0: 2})
    assert result.registered_reps == 1

    reps = await sql(
        engine, "SELECT rep_id, timezone, active, name FROM reps WHERE tenant = :t ORDER BY 1", t=t.slug
    )
    assert [tuple(r) for r in reps] == [
        ("newbie", "America/New_York", True, None),
        ("tokyo", "Asia/Tokyo", True, "Kenji"),
    ]
    days = await sql(
        engine, "SELECT rep_id, day FROM rollup_rep_daily WHERE tenant = :t ORDER BY 1", t=t.slug
    )
    assert [tuple(r) for r in days] == [("newbie", date(2026, 11, 2)), ("tokyo", date(2026, 11, 3))]


async def test_vendor_identities_resolve_to_reps_through_aliases(
    store: Store, engine: AsyncEngine, tenants: TenantFactory
) -> None:
    t = await tenants.create()
    await sql(
        engine,
        "INSERT INTO rep_aliases (tenant, kind, value, rep_id) VALUES (:t, 'hubspot_owner_id', '77', 'r9')",
        t=t.slug,
    )
    batch = decoded(
        [
            {"event_id": "k", "type": "deal.won", "occurred_at": "2026-11-02T10:00:00Z",
             "amount": "10", "rep_alias": {"kind": "hubspot_owner_id", "value": "77"}},
            {"event_id": "u", "type": "deal.won", "occurred_at": "2026-11-02T10:00:00Z",
             "amount": "5", "rep_alias": {"kind": "hubspot_owner_id", "value": "78"}},
        ],
        t.slug,
    )  # fmt: skip
    await commit_batch(store, batch, {0: 2})
    rows = await sql(engine, "SELECT rep_id, revenue_won FROM rollup_rep_daily WHERE tenant = :t", t=t.slug)
    assert [tuple(r) for r in rows] == [("r9", 10)]
    archived = await sql(engine, "SELECT event_id, rep_id FROM events WHERE tenant = :t ORDER BY 1", t=t.slug)
    assert [tuple(r) for r in archived] == [("k", "r9"), ("u", None)]


class _Aliases:
    """A connection that knows some (tenant, kind, value) -> rep and records what it was asked."""

    def __init__(self, known: dict[tuple[str, str, str], str]) -> None:
        self.known = known
        self.asked: list[tuple[str, str, str]] = []

    async def fetch(self, _sql: str, ids: list[int], *cols: list[str]) -> list[dict[str, Any]]:
        asked = list(zip(*cols, strict=True))
        self.asked += asked
        return [{"i": i, "rep_id": self.known[k]} for i, k in zip(ids, asked, strict=True) if k in self.known]


async def test_each_vendor_identity_of_a_batch_is_looked_up_once_and_resolves_all_its_items() -> None:
    rnd = random.Random(14)
    known = {("t1", "salesforce_user_id", f"u{n}"): f"rep{n}" for n in range(0, 6, 2)}
    specs = [(rnd.choice(["t1", "t2"]), f"u{rnd.randrange(6)}", rnd.random() < 0.2) for _ in range(300)]
    batch = decoded(
        [{"event_id": f"e{i}", "type": "email.sent", "occurred_at": "2026-11-02T10:00:00Z",
          **({"rep_id": "own"} if own else {}), "rep_alias": {"kind": "salesforce_user_id", "value": user}}
         for i, (_, user, own) in enumerate(specs)],
        "t1",
    )  # fmt: skip
    for e, (tenant, _, _) in zip(batch, specs, strict=True):
        e.tenant = tenant
    conn = _Aliases(known)
    await resolve_aliases(conn, batch)  # type: ignore[arg-type]
    assert len(conn.asked) == len(set(conn.asked))
    for e, (tenant, user, own) in zip(batch, specs, strict=True):
        assert e.rep_id == ("own" if own else known.get((tenant, "salesforce_user_id", user)))


async def test_events_of_an_unknown_tenant_are_archived_and_folded_in_utc(
    store: Store, engine: AsyncEngine
) -> None:
    slug = f"gone-{secrets.token_hex(3)}"
    batch = decoded(
        [{"event_id": "x", "type": "email.sent", "occurred_at": "2026-11-02T23:30:00-05:00", "rep_id": "r1"}],
        slug,
    )
    result = await commit_batch(store, batch, {0: 1})
    assert len(result.folded) == 1
    assert result.registered_reps == 0
    days = await sql(engine, "SELECT day FROM rollup_rep_daily WHERE tenant = :t", t=slug)
    assert [r[0] for r in days] == [date(2026, 11, 3)]


async def test_concurrent_batches_over_the_same_rows_neither_deadlock_nor_double_count(
    stack: Stack, engine: AsyncEngine, tenants: TenantFactory
) -> None:
    """Several consumers folding overlapping redeliveries of one tenant's events at the same time."""
    t = await tenants.create(timezone="Asia/Tokyo")
    events = make_events(400, t.slug, ["r1", "r2", "r3"], seed=2)
    rnd = random.Random(3)
    stores = [
        await Store.open(stack.settings(consumer_group="concurrent", events_topic="t")) for _ in range(4)
    ]
    try:

        async def consumer(store: Store, partition: int) -> None:
            for _ in range(5):
                sample = rnd.sample(events, 150)
                await commit_batch(store, decoded(sample, t.slug), {partition: 1})

        await asyncio.wait_for(asyncio.gather(*(consumer(s, i) for i, s in enumerate(stores))), 60)
        await commit_batch(stores[0], decoded(events, t.slug), {9: 1})  # whatever was not sampled yet
    finally:
        for s in stores:
            await s.close()
    await assert_rollups_match(engine, events, Tenant(t.slug, t.timezone))


async def test_rows_written_alongside_a_batch_commit_and_roll_back_with_it(
    store: Store, engine: AsyncEngine, tenants: TenantFactory
) -> None:
    """The dead letters of a batch go through `also`: never stored without the batch, nor it without them."""
    t = await tenants.create()
    batch = decoded(make_events(20, t.slug, ["r1"], seed=4), t.slug)
    marker = f"also-{secrets.token_hex(3)}"
    insert = (
        'INSERT INTO failed_events (tenant, topic, partition, "offset", reason, detail, value, headers) '
        "VALUES ($1, $2, 0, 0, 'invalid_json', 'x', 'x'::bytea, '{}'::jsonb)"
    )

    async def then_fail(conn: Any) -> None:
        await conn.execute(insert, t.slug, marker)
        raise RuntimeError("the batch fails after its dead letters were written")

    with pytest.raises(RuntimeError):
        await commit_batch(store, batch, {0: 20}, also=then_fail)
    assert await sql(engine, "SELECT 1 FROM failed_events WHERE topic = :m", m=marker) == []
    assert await sql(engine, "SELECT 1 FROM events WHERE tenant = :t", t=t.slug) == []
    assert await store.load_offsets([0]) == {}

    async def write(conn: Any) -> None:
        await conn.execute(insert, t.slug, marker)

    await commit_batch(store, batch, {0: 20}, also=write)
    assert len(await sql(engine, "SELECT 1 FROM failed_events WHERE topic = :m", m=marker)) == 1
    assert await store.load_offsets([0]) == {0: 20}
