"""Billing accounts' MRR in event time (SPEC 5.10): movements, in any order and batching, redelivered,
rebuilt."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import asyncpg
from hypothesis import given, settings
from hypothesis import strategies as st

from services.aggregator.folds import FOLDS
from services.aggregator.folds.subscriptions import SubscriptionEvent, batch_events, derive_all
from services.aggregator.rebuild import rebuild
from services.core.wire import Event
from tests.aggregator.folds.support import commit, event, new_tenant

D = Decimal


def billing(t: str) -> list[Event]:
    """Account A: upgrade, downgrade, cancel, come back. B: two Stripe subscriptions, one after the
    other cancelled. C: a free trial that converts, and a change at the same instant that changes
    nothing. And an event that is no billing at all."""

    def sub(type_: str, at: str, account: str, mrr: str, event_id: str, **fields: Any) -> Event:
        return event(t, f"subscription.{type_}", at, account_id=account, mrr=mrr, event_id=event_id, **fields)

    def stripe(type_: str, at: str, account: str, mrr: str, event_id: str, subscription: str) -> Event:
        attributes = {"stripe_subscription_id": subscription}
        return sub(type_, at, account, mrr, event_id, source="stripe", attributes=attributes)

    return [
        sub("started", "2026-01-05T10:00:00Z", "A", "100", "a1", contact_id="cA"),
        sub("changed", "2026-02-01T10:00:00Z", "A", "150", "a2", channel="referral"),
        sub("changed", "2026-03-01T10:00:00Z", "A", "120", "a3", contact_id="cA2"),
        sub("canceled", "2026-04-01T10:00:00Z", "A", "0", "a4"),
        sub("started", "2026-05-01T10:00:00Z", "A", "80", "a5"),
        stripe("started", "2026-01-10T00:00:00Z", "B", "50", "b1", "s1"),
        stripe("started", "2026-01-20T00:00:00Z", "B", "30", "b2", "s2"),
        stripe("canceled", "2026-02-15T00:00:00Z", "B", "0", "b3", "s1"),
        stripe("canceled", "2026-03-10T00:00:00Z", "B", "0", "b4", "s2"),
        sub("started", "2026-01-01T00:00:00Z", "C", "0", "c1"),
        sub("changed", "2026-01-15T00:00:00Z", "C", "200", "c2"),
        sub("changed", "2026-01-15T00:00:00Z", "C", "200", "c3"),
        event(t, "call.completed", "2026-01-15T00:00:00Z", rep_id="r1", contact_id="cA", event_id="x1"),
    ]


# event id -> (account's MRR before, after, movement), worked out by hand from `billing`.
EXPECTED_MOVES = {
    "a1": (D(0), D(100), "new"),
    "a2": (D(100), D(150), "expansion"),
    "a3": (D(150), D(120), "contraction"),
    "a4": (D(120), D(0), "churn"),
    "a5": (D(0), D(80), "reactivation"),
    "b1": (D(0), D(50), "new"),
    "b2": (D(50), D(80), "expansion"),
    "b3": (D(80), D(30), "contraction"),
    "b4": (D(30), D(0), "churn"),
    "c1": (D(0), D(0), None),
    "c2": (D(0), D(200), "new"),
    "c3": (D(200), D(200), None),
}
# account -> (MRR now, contact, channel, first paid on)
EXPECTED_ACCOUNTS = {
    "A": (D(80), "cA", "referral", "2026-01-05"),
    "B": (D(0), None, None, "2026-01-10"),
    "C": (D(200), None, None, "2026-01-15"),
}


def pure(events: list[Event]) -> tuple[dict[str, Any], dict[str, Any]]:
    accounts, moves = derive_all(batch_events(events))
    return (
        {m.event_id: (m.mrr_before, m.mrr_after, m.movement) for m in moves},
        {
            a.account_id: (
                a.mrr,
                a.contact_id,
                a.channel,
                a.first_paid_at and a.first_paid_at.date().isoformat(),
            )
            for a in accounts
        },
    )


def test_upgrades_downgrades_cancellations_and_comebacks_make_their_movements() -> None:
    assert pure(billing("t")) == (EXPECTED_MOVES, EXPECTED_ACCOUNTS)


@settings(max_examples=60, deadline=None)
@given(order=st.permutations(range(13)))
def test_any_order_gives_the_same_movements(order: list[int]) -> None:
    events = billing("t")
    assert pure([events[i] for i in order]) == (EXPECTED_MOVES, EXPECTED_ACCOUNTS)


def test_only_billing_events_with_an_account_are_folded() -> None:
    rows = batch_events(billing("t"))
    assert len(rows) == 12
    assert all(isinstance(r, SubscriptionEvent) and r.type.startswith("subscription.") for r in rows)
    assert {r.subscription_id for r in rows if r.account_id == "B"} == {"s1", "s2"}


# --- the tables, through the batch transaction -----------------------------------------------------


async def stored(pool: asyncpg.Pool, t: str) -> tuple[dict[str, Any], dict[str, Any]]:
    moves = await pool.fetch(
        "SELECT event_id, mrr_before, mrr_after, movement FROM mrr_movements WHERE tenant = $1", t
    )
    accounts = await pool.fetch(
        "SELECT account_id, mrr, contact_id, channel, first_paid_at FROM subscription_accounts"
        " WHERE tenant = $1",
        t,
    )
    return (
        {r[0]: (r[1], r[2], r[3]) for r in moves},
        {r[0]: (r[1], r[2], r[3], r[4] and r[4].date().isoformat()) for r in accounts},
    )


async def test_batches_in_any_order_redelivered_and_rebuilt_give_the_same_tables(pool: asyncpg.Pool) -> None:
    t = await new_tenant(pool, reps={"r1": "UTC"})
    events = billing(t)
    reordered = events[::-1] + events[::4]  # the newest first, some twice
    for i in range(0, len(reordered), 3):
        await commit(pool, reordered[i : i + 3])
    assert await stored(pool, t) == (EXPECTED_MOVES, EXPECTED_ACCOUNTS)
    await commit(pool, events)  # every event redelivered in one batch
    assert await stored(pool, t) == (EXPECTED_MOVES, EXPECTED_ACCOUNTS)
    async with pool.acquire() as conn, conn.transaction():
        await rebuild(conn, [t])
    assert await stored(pool, t) == (EXPECTED_MOVES, EXPECTED_ACCOUNTS)


async def test_a_batch_without_billing_events_touches_nothing(pool: asyncpg.Pool) -> None:
    t = await new_tenant(pool, reps={"r1": "UTC"})
    await commit(pool, [e for e in billing(t) if not e.type.startswith("subscription.")])
    assert await stored(pool, t) == ({}, {})


def test_the_registry_rebuilds_movements_and_accounts() -> None:
    tables = dict(itertools.chain.from_iterable(((name, f.name) for name in f.tables) for f in FOLDS))
    assert tables["mrr_movements"] == tables["subscription_accounts"] == "subscriptions"
    assert "economics_settings" not in tables
