"""The subscriptions fold, pure part: each billing account's MRR in event time (SPEC 5.10). No I/O.

Every `subscription.*` event becomes a row of its account's event set (`mrr_movements`): the
account (a Stripe account is its `customer` id), the subscription it is about (Stripe's id from the
event's attributes; '' for a billing system that reports the account's whole MRR), and `mrr`, that
subscription's MRR after the event. An account's derived figures are a function of its whole event
set, recomputed whenever a batch brings the account an event, so they do not depend on the order the
events arrived in nor on how the stream was cut into batches; each event is in the set once
(its primary key), however often it was delivered.

Walking an account's events in time order (at one instant: a start first, a cancellation last,
otherwise by event id), the account's MRR after each event is the sum of each of its subscriptions'
latest MRR, and the event makes one movement of it, or none when the sum did not change:
- from 0 to more: `new` the first time the account pays, `reactivation` afterwards;
- from more to 0: `churn`;
- up: `expansion`; down to more than 0: `contraction`.
The account's row: its MRR now, the earliest contact and channel its events name, when it first
paid and its newest event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

import orjson

from services.core.events import SUBSCRIPTION_TYPES, EventType
from services.core.wire import Event

NEW, EXPANSION, CONTRACTION, CHURN, REACTIVATION = "new", "expansion", "contraction", "churn", "reactivation"
_TYPES: frozenset[str] = frozenset(t.value for t in SUBSCRIPTION_TYPES)
_RANK = {EventType.SUBSCRIPTION_STARTED.value: 0, EventType.SUBSCRIPTION_CANCELED.value: 2}
_ZERO = Decimal(0)

AccountKey = tuple[str, str]  # tenant, account_id


class SubscriptionEvent(NamedTuple):
    """One row of an account's event set (`mrr_movements`' own columns)."""

    tenant: str
    account_id: str
    event_id: str
    at: datetime
    type: str
    subscription_id: str
    mrr: Decimal
    contact_id: str | None
    channel: str | None

    @property
    def account(self) -> AccountKey:
        return (self.tenant, self.account_id)

    @property
    def order(self) -> tuple[datetime, int, str]:
        return (self.at, _RANK.get(self.type, 1), self.event_id)


class Movement(NamedTuple):
    """What an event makes of its account's MRR: (tenant, account_id, event_id) and the account's
    MRR before and after it, and the movement (None: unchanged)."""

    tenant: str
    account_id: str
    event_id: str
    mrr_before: Decimal
    mrr_after: Decimal
    movement: str | None


class Account(NamedTuple):
    """A `subscription_accounts` row."""

    tenant: str
    account_id: str
    mrr: Decimal
    contact_id: str | None
    channel: str | None
    first_paid_at: datetime | None
    updated_at: datetime


def batch_events(events: Iterable[Event]) -> list[SubscriptionEvent]:
    """The batch's subscription events as event-set rows. One set look-up per event: the batch's
    other events cost next to nothing here."""
    return [_row(e) for e in events if e.type in _TYPES and e.account_id is not None]


def _row(e: Event) -> SubscriptionEvent:
    assert e.account_id is not None
    return SubscriptionEvent(
        tenant=e.tenant,
        account_id=e.account_id,
        event_id=e.event_id,
        at=e.occurred_at,
        type=str(e.type),
        subscription_id=_subscription_id(e.payload),
        mrr=e.mrr if e.mrr is not None else _ZERO,
        contact_id=e.contact_id,
        channel=None if e.channel is None else str(e.channel),
    )


def _subscription_id(payload: str) -> str:
    """The vendor's subscription id (Stripe's source keeps it in the attributes), else ''."""
    attributes = orjson.loads(payload).get("attributes")
    found = attributes.get("stripe_subscription_id") if isinstance(attributes, dict) else None
    return found if isinstance(found, str) else ""


def movement(before: Decimal, after: Decimal, *, paid_before: bool) -> str | None:
    """The movement from the account's MRR `before` to `after`."""
    if after == before:
        return None
    if before == 0:
        return REACTIVATION if paid_before else NEW
    if after == 0:
        return CHURN
    return EXPANSION if after > before else CONTRACTION


def derive(events: Sequence[SubscriptionEvent]) -> tuple[Account, list[Movement]]:
    """One account's row and every one of its events' movements, from its whole event set."""
    ordered = sorted(events, key=lambda s: s.order)
    first = ordered[0]
    latest: dict[str, Decimal] = {}
    total = _ZERO
    first_paid_at: datetime | None = None
    contact = next((s.contact_id for s in ordered if s.contact_id is not None), None)
    channel = next((s.channel for s in ordered if s.channel is not None), None)
    moves: list[Movement] = []
    for s in ordered:
        latest[s.subscription_id] = s.mrr
        after = sum(latest.values(), _ZERO)
        kind = movement(total, after, paid_before=first_paid_at is not None)
        moves.append(Movement(s.tenant, s.account_id, s.event_id, total, after, kind))
        if first_paid_at is None and after > 0:
            first_paid_at = s.at
        total = after
    account = Account(first.tenant, first.account_id, total, contact, channel, first_paid_at, ordered[-1].at)
    return account, moves


def derive_all(events: Iterable[SubscriptionEvent]) -> tuple[list[Account], list[Movement]]:
    """`derive` for every account the events belong to, accounts sorted (the lock order of writes)."""
    by_account: dict[AccountKey, list[SubscriptionEvent]] = {}
    for s in events:
        by_account.setdefault(s.account, []).append(s)
    accounts: list[Account] = []
    moves: list[Movement] = []
    for key in sorted(by_account):
        account, account_moves = derive(by_account[key])
        accounts.append(account)
        moves.extend(account_moves)
    return accounts, moves
