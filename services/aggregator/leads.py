"""The leads fold: per contact, lead creation, first touch, speed to lead, qualification and channel.

The speed-to-lead state machine and first-touch attribution are the pure pieces of the demand domain
(services/api/demand/service.py); this module feeds them a contact's events in whatever order they
arrive and keeps the result in `leads`, one row per contact that has a lead.created, a lead.qualified
or a CRM channel:

- `created_at` / `created_event_id`: the earliest lead.created (ties: the smaller event id);
- `first_touch_at`, `speed_s`: the earliest call, email or meeting at or after `created_at`. When
  `created_at` is set or moves earlier it is looked up in the event archive, which at this point holds
  every event folded so far and this batch's new ones (they were archived before the state folds
  ran). Afterwards a touch only matters if it falls between `created_at` and the current first touch;
- `channel`: the earliest lead.created naming a channel (`earliest_origin`), else the channel of the
  contact's CRM record (crm_entities, which the CRM fold has brought up to date in this transaction);
- `mql_at` / `sql_at`: the earliest lead.qualified of each stage.

Touches of a contact without a row write nothing: the archive remembers them for the day the contact
becomes a lead. `earliest_touch_at` and `latest_touch_at` are no longer kept (new rows leave them NULL).

That makes the fold a read-then-write of two facts that may be in flight in another batch: a touch
of a contact not yet a lead, and the lead.created that makes it one. Each batch therefore takes a
transaction-scoped advisory lock per tenant before reading, so the batches of one tenant run this
fold one after the other and each sees the archive and the rows of those before it. They already
queue on the tenant's watermark row later in the same transaction, so this moves the queue, little more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from services.aggregator.fold import Deltas, ZoneOf
from services.api.demand.service import (
    LEAD_CREATED,
    TOUCH_TYPES,
    LeadOrigin,
    LeadSpeed,
    earliest_origin,
    fold_touch,
    resolve_first_touch,
)
from services.core.crm import CrmUpdate
from services.core.wire import Event

LEAD_QUALIFIED = "lead.qualified"
_ROWED = {LEAD_CREATED, LEAD_QUALIFIED}
_FOLDED = TOUCH_TYPES | _ROWED
_TOUCHES = sorted(TOUCH_TYPES)
_MILLI = Decimal("0.001")
# The two-key advisory lock space, apart from the single-key REBUILD_LOCK_KEY.
_LOCK_CLASS = 0x1EAD5

LOCK_TENANTS = """
SELECT count(pg_advisory_xact_lock($1, k))
FROM (SELECT DISTINCT hashtext(t) AS k FROM unnest($2::text[]) AS t ORDER BY k) AS s
"""
_COLUMNS = (
    "created_at, created_event_id, channel, origin_at, origin_event_id, "
    "first_touch_at, speed_s, mql_at, sql_at"
)
LOAD = f"""
SELECT l.tenant, l.contact_id, {_COLUMNS}
FROM unnest($1::text[], $2::text[]) AS u(tenant, contact_id)
JOIN leads l ON l.tenant = u.tenant AND l.contact_id = u.contact_id
"""
# The earliest archived touch of each (tenant, contact) at or after its lead's creation.
FIRST_TOUCHES = """
SELECT u.i, (
  SELECT min(e.occurred_at) FROM events e
  WHERE e.tenant = u.tenant AND e.contact_id = u.contact_id AND e.type = any($5::text[])
    AND e.occurred_at >= u.lo
) AS found
FROM unnest($1::int[], $2::text[], $3::text[], $4::timestamptz[]) AS u(i, tenant, contact_id, lo)
"""
CRM_CHANNELS = """
SELECT u.tenant, u.contact_id, c.channel
FROM unnest($1::text[], $2::text[]) AS u(tenant, contact_id)
JOIN crm_entities c ON c.tenant = u.tenant AND c.entity = 'contact' AND c.entity_id = u.contact_id
"""
SAVE = f"""
INSERT INTO leads AS l (tenant, contact_id, {_COLUMNS})
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::timestamptz[],
                     $7::text[], $8::timestamptz[], $9::numeric[], $10::timestamptz[], $11::timestamptz[])
ORDER BY 1, 2
ON CONFLICT (tenant, contact_id) DO UPDATE
SET ({_COLUMNS}) = (EXCLUDED.created_at, EXCLUDED.created_event_id, EXCLUDED.channel, EXCLUDED.origin_at,
    EXCLUDED.origin_event_id, EXCLUDED.first_touch_at, EXCLUDED.speed_s, EXCLUDED.mql_at, EXCLUDED.sql_at)
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
    loaded: tuple[Any, ...] | None  # the row as read, to leave unchanged rows alone; None: no row yet

    @classmethod
    def new(cls, tenant: str, contact_id: str) -> _Lead:
        return cls(tenant, contact_id, LeadSpeed(), None, None, None, None, None)

    @classmethod
    def of(cls, row: asyncpg.Record) -> _Lead:
        origin = None
        if row["origin_event_id"] is not None:
            origin = LeadOrigin(row["origin_at"], row["origin_event_id"], row["channel"])
        created = None
        if row["created_at"] is not None:
            created = (row["created_at"], row["created_event_id"] or "")
        return cls(
            row["tenant"],
            row["contact_id"],
            LeadSpeed(row["created_at"], row["first_touch_at"]),
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
        by_contact: dict[tuple[str, str], list[Event]] = {}
        rowed: set[tuple[str, str]] = set()
        for e in events:
            if e.contact_id is not None and e.type in _FOLDED:
                by_contact.setdefault((e.tenant, e.contact_id), []).append(e)
                if e.type in _ROWED:
                    rowed.add((e.tenant, e.contact_id))
        for u in updates:
            if u.entity == "contact" and u.property == "channel":
                by_contact.setdefault((u.tenant, u.entity_id), [])
                rowed.add((u.tenant, u.entity_id))
        if not by_contact:
            return None
        keys = sorted(by_contact)
        await conn.execute(LOCK_TENANTS, _LOCK_CLASS, sorted({t for t, _ in keys}))
        found = {(r["tenant"], r["contact_id"]): _Lead.of(r) for r in await conn.fetch(LOAD, *_columns(keys))}

        leads: list[_Lead] = []
        asks: list[_Lead] = []
        for key in keys:
            lead = found.get(key)
            if lead is None:
                if key not in rowed:
                    continue  # touches of a contact that is no lead (yet): the archive remembers them
                lead = _Lead.new(*key)
            if _fold(lead, by_contact[key]):
                asks.append(lead)
            leads.append(lead)
        await _first_touches(conn, asks)
        crm = await _crm_channels(conn, [lead for lead in leads if lead.origin is None])
        changed = [row for lead in leads if (row := _row(lead, crm)) != lead.loaded]
        if changed:
            await conn.execute(SAVE, *_columns(changed))
        return None


def _fold(lead: _Lead, events: Sequence[Event]) -> bool:
    """Fold a contact's events of the batch; True when its creation moved and the first touch must
    be looked up in the archive (which then also answers for the batch's touches)."""
    created_before = lead.created
    for e in events:
        at = e.occurred_at
        if e.type == LEAD_CREATED:
            if lead.created is None or (at, e.event_id) < lead.created:
                lead.created = (at, e.event_id)
            lead.origin = earliest_origin(lead.origin, at, e.event_id, e.channel)
        elif e.type == LEAD_QUALIFIED:
            if e.stage == "mql":
                lead.mql_at = at if lead.mql_at is None else min(lead.mql_at, at)
            elif e.stage == "sql":
                lead.sql_at = at if lead.sql_at is None else min(lead.sql_at, at)
    if lead.created is not None and (created_before is None or lead.created[0] < created_before[0]):
        lead.speed = LeadSpeed(lead.created[0])
        return True
    # Only a touch between the creation and the current first touch moves the first touch.
    for e in events:
        if e.type in TOUCH_TYPES:
            lead.speed = fold_touch(lead.speed, e.occurred_at).state
    return False


async def _first_touches(conn: asyncpg.Connection, asks: Sequence[_Lead]) -> None:
    if not asks:
        return
    rows = []
    for i, lead in enumerate(asks):
        assert lead.speed.created_at is not None
        rows.append((i, lead.tenant, lead.contact_id, lead.speed.created_at))
    for r in await conn.fetch(FIRST_TOUCHES, *_columns(rows), _TOUCHES):
        lead = asks[r["i"]]
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
