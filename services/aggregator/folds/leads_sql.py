"""The leads fold's SQL: `leads`, one row per contact that is a lead (the pure part: leads.py).

Touches of a contact without a row write nothing: the archive remembers them for the day the contact
becomes a lead. `earliest_touch_at` and `latest_touch_at` are no longer kept (new rows leave them NULL).
When a lead's creation is set or moves earlier, its first touch is looked up in the event archive,
which at this point holds every event folded so far and this batch's new ones (they were archived
before the folds ran). The CRM channel is read from `crm_entities`, which the CRM fold has brought up
to date earlier in this transaction.

That makes the fold a read-then-write of two facts that may be in flight in another batch: a touch
of a contact not yet a lead, and the lead.created that makes it one. Each batch therefore takes a
transaction-scoped advisory lock per tenant before reading, so the batches of one tenant run this
fold one after the other and each sees the archive and the rows of those before it. They already
queue on the tenant's watermark row later in the same transaction, so this moves the queue, little more.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.aggregator.fold import Deltas, FoldInput
from services.aggregator.folds.leads import (
    TOUCH_TYPES,
    Contact,
    Lead,
    LeadOrigin,
    LeadSpeed,
    by_contact,
    fold_contact,
    lead_row,
    resolve_first_touch,
)
from services.aggregator.store import columns

TABLES = ("leads",)
_TOUCHES = sorted(TOUCH_TYPES)
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


async def apply(conn: asyncpg.Connection, new: FoldInput) -> Deltas | None:
    found_events, rowed = by_contact(new.events, new.updates)
    if not found_events:
        return None
    keys = sorted(found_events)
    await conn.execute(LOCK_TENANTS, _LOCK_CLASS, sorted({t for t, _ in keys}))
    found = {(r["tenant"], r["contact_id"]): _loaded(r) for r in await conn.fetch(LOAD, *columns(keys))}

    leads: list[Lead] = []
    asks: list[Lead] = []
    for key in keys:
        lead = found.get(key)
        if lead is None:
            if key not in rowed:
                continue  # touches of a contact that is no lead (yet): the archive remembers them
            lead = Lead.new(*key)
        if fold_contact(lead, found_events[key]):
            asks.append(lead)
        leads.append(lead)
    await _first_touches(conn, asks)
    crm = await _crm_channels(conn, [lead for lead in leads if lead.origin is None])
    rows = [lead_row(lead, crm.get((lead.tenant, lead.contact_id))) for lead in leads]
    changed = [row for lead, row in zip(leads, rows, strict=True) if row != lead.loaded]
    if changed:
        await conn.execute(SAVE, *columns(changed))
    return None


def _loaded(row: asyncpg.Record) -> Lead:
    origin = None
    if row["origin_event_id"] is not None:
        origin = LeadOrigin(row["origin_at"], row["origin_event_id"], row["channel"])
    created = None
    if row["created_at"] is not None:
        created = (row["created_at"], row["created_event_id"] or "")
    return Lead(
        row["tenant"],
        row["contact_id"],
        LeadSpeed(row["created_at"], row["first_touch_at"]),
        created,
        origin,
        row["mql_at"],
        row["sql_at"],
        tuple(row.values()),
    )


async def _first_touches(conn: asyncpg.Connection, asks: Sequence[Lead]) -> None:
    if not asks:
        return
    rows = []
    for i, lead in enumerate(asks):
        assert lead.speed.created_at is not None
        rows.append((i, lead.tenant, lead.contact_id, lead.speed.created_at))
    for r in await conn.fetch(FIRST_TOUCHES, *columns(rows), _TOUCHES):
        lead = asks[r["i"]]
        lead.speed = resolve_first_touch(lead.speed, r["found"])


async def _crm_channels(conn: asyncpg.Connection, leads: Sequence[Lead]) -> dict[Contact, str]:
    if not leads:
        return {}
    rows = await conn.fetch(CRM_CHANNELS, *columns([(lead.tenant, lead.contact_id) for lead in leads]))
    return {(r["tenant"], r["contact_id"]): r["channel"] for r in rows if r["channel"] is not None}
