"""The deals fold, pure part: one `deal_facts` row per deal.created, deal.won and deal.lost.

The row keeps the event's own channel (null when it names none): the demand report gives such a deal
its contact's first-touch channel by joining `leads` when it reads, so a lead that arrives after its
deal still claims it. Events attributed through CRM entity state (`Event.entity`) get their rows from
the CRM fold, which keeps their rep, amount and contact current (crm.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.core.events import EventType
from services.core.wire import Event

FACT_TYPES: frozenset[str] = frozenset(
    t.value for t in (EventType.DEAL_CREATED, EventType.DEAL_WON, EventType.DEAL_LOST)
)


def fact_rows(events: Iterable[Event]) -> list[tuple[Any, ...]]:
    """The `deal_facts` rows (tenant, event_id, type, deal_id, contact_id, rep_id, channel, amount,
    occurred_at) of the events that carry their own rep, amount and channel."""
    return [
        (e.tenant, e.event_id, e.type, e.deal_id, e.contact_id, e.rep_id, e.channel, e.amount, e.occurred_at)
        for e in events
        if e.type in FACT_TYPES and e.entity is None
    ]
