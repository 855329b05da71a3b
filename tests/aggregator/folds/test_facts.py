"""Deal facts, certification attempts and unresolved vendor identities, through the store's batch commit."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal

import asyncpg
import pytest

from services.aggregator.commit import commit_batch
from services.aggregator.store import Store
from services.core.wire import Event
from tests.aggregator.folds.support import add_alias, event, new_tenant, table
from tests.conftest import Stack

at = datetime.fromisoformat


@pytest.fixture
async def store(stack: Stack) -> AsyncIterator[Store]:
    s = await Store.open(stack.settings(consumer_group=f"facts-{secrets.token_hex(3)}", events_topic="t"))
    yield s
    await s.close()


async def test_deal_events_become_facts_with_their_own_channel_rep_contact_and_amount(
    store: Store, pool: asyncpg.Pool
) -> None:
    t = await new_tenant(pool)
    batch = [
        event(t, "deal.created", "2026-11-02T10:00:00Z", rep_id="r1", contact_id="c1", deal_id="d1",
              amount="500", event_id="a"),
        event(t, "deal.won", "2026-11-03T10:00:00Z", rep_id="r1", contact_id="c1", deal_id="d1",
              amount="450.25", channel="referral", event_id="b"),
        event(t, "deal.lost", "2026-11-04T10:00:00Z", rep_id="r2", event_id="c"),
        event(t, "deal.stage_changed", "2026-11-04T11:00:00Z", rep_id="r2", stage="proposal", event_id="d"),
    ]  # fmt: skip
    await commit_batch(store, batch + batch[:2], {0: 6})
    await commit_batch(store, batch, {0: 10})  # redelivered
    facts = await table(
        pool,
        "deal_facts",
        t,
        "event_id",
        "type",
        "deal_id",
        "contact_id",
        "rep_id",
        "channel",
        "amount",
        "occurred_at",
    )
    assert facts == [
        ("a", "deal.created", "d1", "c1", "r1", None, Decimal(500), at("2026-11-02T10:00:00Z")),
        ("b", "deal.won", "d1", "c1", "r1", "referral", Decimal("450.25"), at("2026-11-03T10:00:00Z")),
        ("c", "deal.lost", None, None, "r2", None, None, at("2026-11-04T10:00:00Z")),
    ]


async def test_every_certification_is_an_attempt(store: Store, pool: asyncpg.Pool) -> None:
    t = await new_tenant(pool)
    batch = [
        event(t, "training.certification", "2026-11-02T10:00:00Z", rep_id="r1", module="discovery",
              score=64.5, passed=False, event_id="x1"),
        event(t, "training.certification", "2026-11-09T10:00:00Z", rep_id="r1", module="discovery",
              score=88, passed=True, event_id="x2"),
        event(t, "training.certification", "2026-11-09T11:00:00Z", rep_id="r2", module="demo",
              passed=True, event_id="x3"),
    ]  # fmt: skip
    await commit_batch(store, batch, {0: 3})
    await commit_batch(store, batch[1:], {0: 5})
    attempts = await table(
        pool, "certification_attempts", t, "event_id", "rep_id", "module", "score", "passed", "occurred_at"
    )
    assert attempts == [
        ("x1", "r1", "discovery", Decimal("64.50"), False, at("2026-11-02T10:00:00Z")),
        ("x2", "r1", "discovery", Decimal("88.00"), True, at("2026-11-09T10:00:00Z")),
        ("x3", "r2", "demo", None, True, at("2026-11-09T11:00:00Z")),
    ]


async def test_vendor_events_of_unknown_identities_are_unassigned_and_listed(
    store: Store, pool: asyncpg.Pool
) -> None:
    t = await new_tenant(pool)
    async with pool.acquire() as conn:
        await add_alias(conn, t, "phone", "+4930111", "r1")
    phone = {"kind": "phone", "value": "+4930999"}

    def call(event_id: str, when: str, alias: dict[str, str], source: str = "twilio") -> Event:
        return event(t, "call.completed", when, source=source, rep_alias=alias, event_id=event_id)

    batch = [
        call("u1", "2026-11-03T09:00:00Z", phone),
        call("u2", "2026-11-01T09:00:00Z", phone),
        call("known", "2026-11-02T09:00:00Z", {"kind": "phone", "value": "+4930111"}),
        call("canonical", "2026-11-02T09:00:00Z", phone, source="api"),  # no vendor identity problem
        event(t, "email.sent", "2026-11-04T09:00:00Z", source="sendgrid", event_id="m1",
              rep_alias={"kind": "email", "value": "ann@example.com"}),
    ]  # fmt: skip
    await commit_batch(store, batch, {0: 5})
    await commit_batch(store, [call("u3", "2026-11-05T09:00:00Z", phone), batch[0]], {0: 7})

    quality = await table(
        pool, "data_quality", t, "source", "alias_kind", "alias_value", "events", "first_seen", "last_seen"
    )
    assert quality == [
        ("sendgrid", "email", "ann@example.com", 1, at("2026-11-04T09:00:00Z"), at("2026-11-04T09:00:00Z")),
        ("twilio", "phone", "+4930999", 3, at("2026-11-01T09:00:00Z"), at("2026-11-05T09:00:00Z")),
    ]
    unassigned = await pool.fetchval(
        "SELECT count(*) FROM events WHERE tenant = $1 AND rep_id IS NULL AND source <> 'api'", t
    )
    assert unassigned == 4
