"""The leads fold: per contact, lead creation, first touch, speed to lead, qualification and channel.

The speed-to-lead state machine and first-touch attribution are the pure pieces of the demand domain
(services/api/demand/service.py); this module feeds them a contact's events in whatever order they
arrive and keeps the result in `leads`, one row per contact:

- `created_at` / `created_event_id`: the earliest lead.created (ties: the smaller event id);
- `first_touch_at`, `speed_s`: `fold_speed_event`; when it cannot tell the first touch from its
  state it asks for a look-up, answered from the event archive, which at this point holds every
  event folded so far and this batch's new ones (they were archived before the state folds ran);
- `channel`: the earliest lead.created naming a channel (`earliest_origin`), else the channel of the
  contact's CRM record (crm_entities, which the CRM fold has brought up to date in this transaction);
- `mql_at` / `sql_at`: the earliest lead.qualified of each stage.

A batch locks its contacts' rows in key order with one statement before reading them, so concurrent
consumers serialise per contact and the CRM channel read afterwards is current.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from services.aggregator.fold import Deltas, Event, ZoneOf
from services.api.demand.service import (
    LEAD_CREATED,
    TOUCH_TYPES,
    LeadOrigin,
    LeadSpeed,
    earliest_origin,
    fold_speed_event,
    resolve_first_touch,
)
from services.core.crm import CrmUpdate

LEAD_QUALIFIED = "lead.qualified"
_FOLDED = TOUCH_TYPES | {LEAD_CREATED, LEAD_QUALIFIED}
_TOUCHES = sorted(TOUCH_TYPES)
_MILLI = Decimal("0.001")

_COLUMNS = (
    "created_at, created_event_id, channel, origin_at, origin_event_id, first_touch_at, "
    "earliest_touch_at, latest_touch_at, speed_s, mql_at, sql_at"
)
# A no-op update takes the row lock (in key order) and returns the row as last committed.
LOCK = f"""
INSERT INTO leads AS l (tenant, contact_id)
SELECT * FROM unnest($1::text[], $2::text[]) ORDER BY 1, 2
ON CONFLICT (tenant, contact_id) DO UPDATE SET created_at = l.created_at
RETURNING tenant, contact_id, {_COLUMNS}
"""
# The earliest archived touch of each (tenant, contact) in [lo, hi], for many contacts at once.
FIRST_TOUCHES = """
SELECT u.i, (
  SELECT min(e.occurred_at) FROM events e
  WHERE e.tenant = u.tenant AND e.contact_id = u.contact_id AND e.type = any($6::text[])
    AND e.occurred_at >= u.lo AND e.occurred_at <= u.hi
) AS found
FROM unnest($1::int[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[])
  AS u(i, tenant, contact_id, lo, hi)
"""
CRM_CHANNELS = """
SELECT u.tenant, u.contact_id, c.channel
FROM unnest($1::text[], $2::text[]) AS u(tenant, contact_id)
JOIN crm_entities c ON c.tenant = u.tenant AND c.entity = 'contact' AND c.entity_id = u.contact_id
"""
SAVE = f"""
UPDATE leads AS l
SET ({_COLUMNS}) = (u.created_at, u.created_event_id, u.channel, u.origin_at, u.origin_event_id,
    u.first_touch_at, u.earliest_touch_at, u.latest_touch_at, u.speed_s, u.mql_at, u.sql_at)
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::timestamptz[], $7::text[],
            $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::numeric[], $12::timestamptz[],
            $13::timestamptz[])
  AS u(tenant, contact_id, {_COLUMNS})
WHERE l.tenant = u.tenant AND l.contact_id = u.contact_id
"""


@dataclass(slots=True)
class _Lead:
    tenant: str
    contact_id: str
    speed: LeadSpeed
    created: tuple[datetime, str] | None
    origin: LeadOrigin | None
    mql_at: datetime | None
    sql_at: datetime | None
    loaded: tuple[Any, ...]  # the row as locked, to leave unchanged rows alone

    @classmethod
    def of(cls, row: asyncpg.Record) -> _Lead:
        origin = None
        if row["origin_event_id"] is not None:
            origin = LeadOrigin(row["origin_at"], row["origin_event_id"], row["channel"])
        created = None
        if row["created_at"] is not None:
            created = (row["created_at"], row["created_event_id"] or "")
        speed = LeadSpeed(
            row["created_at"], row["first_touch_at"], row["earliest_touch_at"], row["latest_touch_at"]
        )
        return cls(
            row["tenant"],
            row["contact_id"],
            speed,
            created,
            origin,
            row["mql_at"],
            row["sql_at"],
            tuple(row.values()),
        )


class LeadsFold:
    name = "leads"

    async def apply(
        self,
        conn: asyncpg.Connection,
        events: Sequence[Event],
        zone_of: ZoneOf,
        updates: Sequence[CrmUpdate] = (),
    ) -> Deltas | None:
        mine = [e for e in events if e.contact_id is not None and e.type in _FOLDED]
        channel_changes = [u for u in updates if u.entity == "contact" and u.property == "channel"]
        if not mine and not channel_changes:
            return None
        by_contact: dict[tuple[str, str], list[Event]] = {}
        for e in mine:
            assert e.contact_id is not None
            by_contact.setdefault((e.tenant, e.contact_id), []).append(e)
        for u in channel_changes:
            by_contact.setdefault((u.tenant, u.entity_id), [])
        keys = sorted(by_contact)

        leads = [_Lead.of(row) for row in await conn.fetch(LOCK, *_columns(keys))]
        # A contact's earliest lead.created goes first: only it can need the archive (the others
        # and all touches fold from the state alone), so the batch asks the archive once.
        rest: list[list[Event]] = []
        asks: list[tuple[_Lead, tuple[datetime, datetime]]] = []
        for lead in leads:
            ordered = sorted(by_contact[(lead.tenant, lead.contact_id)], key=_creations_first)
            if ordered and ordered[0].type == LEAD_CREATED:
                lookup = _fold(lead, ordered.pop(0))
                if lookup is not None:
                    asks.append((lead, lookup))
            rest.append(ordered)
        await _first_touches(conn, asks)
        for lead, events_left in zip(leads, rest, strict=True):
            for e in events_left:
                lookup = _fold(lead, e)
                if lookup is not None:  # cannot happen after the earliest creation; kept exact anyway
                    await _first_touches(conn, [(lead, lookup)])
        crm = await _crm_channels(conn, [lead for lead in leads if lead.origin is None])
        changed = [row for lead in leads if (row := _row(lead, crm)) != lead.loaded]
        if changed:
            await conn.execute(SAVE, *_columns(changed))
        return None


def _creations_first(e: Event) -> tuple[bool, datetime, str]:
    return (e.type != LEAD_CREATED, e.occurred_at, e.event_id)


def _fold(lead: _Lead, e: Event) -> tuple[datetime, datetime] | None:
    """Fold one event; returns the range to look the first touch up in, if the state cannot tell."""
    at = e.occurred_at
    if e.type == LEAD_QUALIFIED:
        if e.stage == "mql":
            lead.mql_at = at if lead.mql_at is None else min(lead.mql_at, at)
        elif e.stage == "sql":
            lead.sql_at = at if lead.sql_at is None else min(lead.sql_at, at)
        return None
    step = fold_speed_event(lead.speed, e.type, at)
    lead.speed = step.state
    if e.type == LEAD_CREATED:
        if lead.created is None or (at, e.event_id) < lead.created:
            lead.created = (at, e.event_id)
        lead.origin = earliest_origin(lead.origin, at, e.event_id, e.channel)
    return step.lookup


async def _first_touches(
    conn: asyncpg.Connection, asks: Sequence[tuple[_Lead, tuple[datetime, datetime]]]
) -> None:
    """Complete the folds that asked for a look-up, from the archive."""
    if not asks:
        return
    rows = [(i, lead.tenant, lead.contact_id, lo, hi) for i, (lead, (lo, hi)) in enumerate(asks)]
    for r in await conn.fetch(FIRST_TOUCHES, *_columns(rows), _TOUCHES):
        lead = asks[r["i"]][0]
        lead.speed = resolve_first_touch(lead.speed, r["found"]).state


async def _crm_channels(conn: asyncpg.Connection, leads: Sequence[_Lead]) -> dict[tuple[str, str], str]:
    if not leads:
        return {}
    rows = await conn.fetch(CRM_CHANNELS, *_columns([(lead.tenant, lead.contact_id) for lead in leads]))
    return {(r["tenant"], r["contact_id"]): r["channel"] for r in rows if r["channel"] is not None}


def _row(lead: _Lead, crm: dict[tuple[str, str], str]) -> tuple[Any, ...]:
    s, origin = lead.speed, lead.origin
    channel = origin.channel if origin is not None else crm.get((lead.tenant, lead.contact_id))
    speed = None if s.created_at is None or s.first_touch is None else _seconds(s.first_touch - s.created_at)
    return (
        lead.tenant,
        lead.contact_id,
        s.created_at,
        lead.created[1] if lead.created is not None else None,
        channel,
        origin.occurred_at if origin is not None else None,
        origin.event_id if origin is not None else None,
        s.first_touch,
        s.earliest_touch,
        s.latest_touch,
        speed,
        lead.mql_at,
        lead.sql_at,
    )


def _seconds(delta: timedelta) -> Decimal:
    whole = Decimal(delta.days * 86_400 + delta.seconds)
    return (whole + Decimal(delta.microseconds).scaleb(-6)).quantize(_MILLI)


def _columns(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows -> one list per column, the shape `unnest($1::t[], ...)` takes."""
    return [list(c) for c in zip(*rows, strict=True)]
