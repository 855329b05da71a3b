"""The CRM fold, pure part: entity state and what one deal or contact contributes to the rollups and
to `deal_facts`. No I/O, no clock (its SQL: crm_sql.py).

A CRM whose events ingest marks `attribution: crm_entity` (HubSpot today, see services/core/crm.py)
reports a deal's owner, amount and contact as separate property changes and its creation and win as
events without rep or amount, all in any order. An entity's state is the set of its property
changes and of the events attributed through it; its contribution to the rollups is a function of
that set alone:

- an event belongs to the owner the entity had at the event's time: the newest owner change at or
  before it, or the first owner ever when none was set yet (CRMs assign owners just after creating);
  an entity without any owner change leaves the event its own rep;
- a deal event's amount is the deal's newest amount (else the event's own), so a win's revenue
  follows every later correction of the amount;
- a contact's lead events without a channel take the contact's newest `channel` (the CRM's original
  traffic source); deal events keep their own channel: first-touch attribution of deals happens at
  read time from `deal_facts` and `leads` (services/core/models.py).

Ties in time go to the larger update id, so the result does not depend on arrival order. The fold
stores each entity's last contribution and adds `after - before` to the rollups.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson

from services.aggregator.fold import Deltas, ZoneOf, fold
from services.aggregator.folds.deals import FACT_TYPES
from services.core.crm import CrmUpdate, amount_value
from services.core.events import Channel, EventType, Source
from services.core.wire import Event

# (event_id, type, deal_id, contact_id, rep_id, channel, amount, occurred_at): a `deal_facts` row.
Fact = tuple[str, str, str, str | None, str | None, str | None, Decimal | None, datetime]


@dataclass(frozen=True, slots=True)
class Change:
    """One property change; `rep_id` is what an owner identity resolved to when it was folded."""

    property: str
    update_id: str
    occurred_at: datetime
    value: str | None
    rep_id: str | None = None

    @classmethod
    def of(cls, u: CrmUpdate) -> Change:
        return cls(
            u.property, u.update_id, u.occurred_at, u.value, u.rep_id if u.property == "owner" else None
        )


@dataclass(frozen=True, slots=True)
class Attributed:
    """An event whose rep (and amount, channel) come from its entity; its own count when the entity
    has none (e.g. a deal without any owner change)."""

    event_id: str
    type: EventType
    occurred_at: datetime
    received_at: datetime
    source: Source
    rep_id: str | None
    contact_id: str | None
    channel: Channel | None
    amount: Decimal | None
    stage: str | None

    @classmethod
    def of(cls, e: Event) -> Attributed:
        return cls(
            e.event_id, EventType(e.type), e.occurred_at, e.received_at, Source(e.source), e.rep_id,
            e.contact_id, _channel(e.channel), e.amount, e.stage,
        )  # fmt: skip

    def row(self) -> list[Any]:
        return [None if v is None else str(v) if isinstance(v, Decimal) else v for v in astuple(self)]

    @classmethod
    def from_row(cls, row: list[Any]) -> Attributed:
        eid, type_, at, received, source, rep_id, contact, channel, amount, stage = row
        return cls(
            eid, EventType(type_), datetime.fromisoformat(at), datetime.fromisoformat(received),
            Source(source), rep_id, contact, _channel(channel), None if amount is None else Decimal(amount),
            stage,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The entity's current properties, as the `crm_entities` columns show them."""

    owner: str | None
    rep_id: str | None
    amount: Decimal | None
    contact_id: str | None
    channel: str | None
    stage: str | None
    lifecycle_stage: str | None


@dataclass(slots=True)
class EntityState:
    tenant: str
    entity: str
    entity_id: str
    changes: dict[str, Change] = field(default_factory=dict)  # by update id
    events: dict[str, Attributed] = field(default_factory=dict)  # by event id

    def add_change(self, change: Change) -> None:
        self.changes.setdefault(change.update_id, change)

    def add_event(self, event: Attributed) -> None:
        self.events.setdefault(event.event_id, event)

    def latest(self, prop: str) -> Change | None:
        return max((c for c in self.changes.values() if c.property == prop), key=_order, default=None)

    def owner_at(self, moment: datetime) -> Change | None:
        owners = sorted((c for c in self.changes.values() if c.property == "owner"), key=_order)
        before = [c for c in owners if c.occurred_at <= moment]
        if before:
            return before[-1]
        return owners[0] if owners else None

    def amount(self) -> tuple[bool, Decimal | None]:
        """(whether the entity has an amount of its own, that amount); a cleared amount is None."""
        latest = self.latest("amount")
        if latest is None:
            return False, None
        return True, None if latest.value is None else amount_value(latest.value)

    def value(self, prop: str) -> str | None:
        latest = self.latest(prop)
        return latest.value if latest is not None else None

    def snapshot(self) -> Snapshot:
        owner = self.latest("owner")
        return Snapshot(
            owner.value if owner else None,
            owner.rep_id if owner else None,
            self.amount()[1],
            self.value("contact"),
            self.value("channel"),
            self.value("stage"),
            self.value("lifecycle_stage"),
        )

    def attributed(self) -> list[Event]:
        """The entity's events with rep, amount and channel as the entity's state says."""
        has_amount, amount = self.amount()
        channel = _channel(self.value("channel")) if self.entity == "contact" else None
        contact = self.value("contact") if self.entity == "deal" else self.entity_id
        out = []
        for a in sorted(self.events.values(), key=lambda a: (a.occurred_at, a.event_id)):
            owner = self.owner_at(a.occurred_at)
            e = Event(self.tenant, a.event_id, a.type, a.occurred_at, a.received_at, a.source, "")
            e.rep_id = owner.rep_id if owner is not None else a.rep_id
            e.contact_id = a.contact_id or contact
            e.channel = a.channel or channel
            e.amount = amount if has_amount else a.amount
            e.stage = a.stage
            if self.entity == "deal":
                e.deal_id = self.entity_id
            out.append(e)
        return out

    def contribution(self, zone_of: ZoneOf) -> Deltas:
        deltas = fold(self.attributed(), zone_of)
        deltas.watermarks.clear()  # the plain fold counted the events themselves
        return deltas

    def facts(self) -> list[Fact]:
        if self.entity != "deal":
            return []
        return [
            (e.event_id, e.type, self.entity_id, e.contact_id, e.rep_id, e.channel, e.amount, e.occurred_at)
            for e in self.attributed()
            if e.type in FACT_TYPES
        ]

    # -- storage: the `crm_entities.history` and `.events` JSON --

    def history_json(self) -> str:
        rows = sorted(self.changes.values(), key=lambda c: (c.property, c.occurred_at, c.update_id))
        return _json([[c.property, c.update_id, c.occurred_at, c.value, c.rep_id] for c in rows])

    def events_json(self) -> str:
        return _json(
            [a.row() for a in sorted(self.events.values(), key=lambda a: (a.occurred_at, a.event_id))]
        )

    @classmethod
    def load(cls, tenant: str, entity: str, entity_id: str, history: str, events: str) -> EntityState:
        state = cls(tenant, entity, entity_id)
        for prop, uid, at, value, rep_id in orjson.loads(history):
            state.add_change(Change(prop, uid, datetime.fromisoformat(at), value, rep_id))
        for row in orjson.loads(events):
            state.add_event(Attributed.from_row(row))
        return state


Key = tuple[str, str, str]  # tenant, entity, entity_id


def zone_pairs(states: Iterable[EntityState]) -> list[tuple[str, str | None]]:
    """The (tenant, rep) pairs whose timezone the entities' contributions need: every rep an owner
    resolved to, and each tenant's own (rep None)."""
    pairs: set[tuple[str, str | None]] = set()
    for state in states:
        pairs.add((state.tenant, None))
        pairs.update((state.tenant, c.rep_id) for c in state.changes.values() if c.rep_id is not None)
    return sorted(pairs, key=lambda p: (p[0], p[1] or ""))


def settle(
    states: dict[Key, EntityState], stored: dict[Key, Deltas], zone_of: ZoneOf
) -> tuple[Deltas, list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """What the changed entities add to the rollups (`after - before`), their `crm_entities` rows and
    their `deal_facts` rows (tenant first), all in key order."""
    deltas = Deltas()
    saved: list[tuple[Any, ...]] = []
    facts: list[tuple[Any, ...]] = []
    for key in sorted(states):
        state = states[key]
        contribution = state.contribution(zone_of)
        deltas.merge(difference(contribution, stored[key]))
        s = state.snapshot()
        saved.append(
            (*key, s.owner, s.rep_id, s.amount, s.contact_id, s.channel, s.stage, s.lifecycle_stage,
             state.history_json(), state.events_json(), contribution_json(contribution))
        )  # fmt: skip
        facts.extend((key[0], *fact) for fact in state.facts())
    return deltas, saved, sorted(facts, key=lambda f: (f[0], f[1]))


def difference(after: Deltas, before: Deltas) -> Deltas:
    """`after - before` for the rollups, without rows that come out all zero."""
    out = Deltas()
    out.merge(after)
    out.merge(Deltas(rep=_negated(before.rep), channel=_negated(before.channel)))
    out.rep = {k: v for k, v in out.rep.items() if any(v)}
    out.channel = {k: v for k, v in out.channel.items() if any(v)}
    return out


def contribution_json(d: Deltas) -> str:
    """A contribution as stored per entity: {"rep": [[rep_id, day, values]], "channel": [...]}."""
    return _json(
        {
            "rep": [[k[1], k[2], _plain(v)] for k, v in sorted(d.rep.items())],
            "channel": [[k[1], k[2], _plain(v)] for k, v in sorted(d.channel.items())],
        }
    )


def load_contribution(tenant: str, text: str) -> Deltas:
    data: dict[str, list[list[Any]]] = orjson.loads(text)
    return Deltas(
        rep={(tenant, r, date.fromisoformat(d)): _numbers(v) for r, d, v in data.get("rep", [])},
        channel={(tenant, c, date.fromisoformat(d)): _numbers(v) for c, d, v in data.get("channel", [])},
    )


def _channel(value: str | None) -> Channel | None:
    return None if value is None else Channel(value)


def _order(c: Change) -> tuple[datetime, str]:
    return (c.occurred_at, c.update_id)


def _negated(rows: dict[Any, list[Any]]) -> dict[Any, list[Any]]:
    return {k: [-x for x in v] for k, v in rows.items()}


def _plain(values: Iterable[Any]) -> list[Any]:
    # Seconds are integer milliseconds and counts integers; only money is a Decimal, kept as a string.
    return [str(v) if isinstance(v, Decimal) else v for v in values]


def _numbers(values: Iterable[Any]) -> list[Any]:
    return [Decimal(v) if isinstance(v, str) else v for v in values]


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
