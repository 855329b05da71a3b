"""The CRM fold: deal and contact state from CRM property updates, and the rollups that follow from it.

HubSpot's deal and lead events carry no rep and no amount; the deal's owner and amount arrive as
separate property updates (services/core/crm.py), before or after the events. Each entity keeps its
property-change history and the events attributed through it (`crm_entities`); what the entity adds
to the rollups is a pure function of that state (services/aggregator/entities.py) and is stored with
it. A batch that changes an entity adds `new contribution - stored contribution` to the rollups, so
the totals equal a fold of the final state whatever order updates and events came in and however
they were cut into batches. The entity's `deal_facts` rows are kept current the same way.

Updates are archived in `crm_updates` (its primary key is their dedupe, as the events table's is for
events) and replayed from there by `salesloop rebuild`.

Every batch locks the entities it touches in key order with one statement, so consumers folding the
same deal serialise and cannot deadlock; the lock order across tables is data_quality, crm_entities,
deal_facts, leads (see states.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from services.aggregator.entities import (
    Attributed,
    Change,
    EntityState,
    contribution_json,
    difference,
    load_contribution,
)
from services.aggregator.fold import Deltas, ZoneOf
from services.core.crm import CrmUpdate
from services.core.wire import Event

log = logging.getLogger(__name__)

UTC = ZoneInfo("UTC")
Key = tuple[str, str, str]  # tenant, entity, entity_id

RESOLVE_OWNERS = """
SELECT u.i, a.rep_id
FROM unnest($1::int[], $2::text[], $3::text[], $4::text[]) AS u(i, tenant, kind, value)
JOIN rep_aliases a ON a.tenant = u.tenant AND a.kind = u.kind AND a.value = u.value
"""
ARCHIVE = """
INSERT INTO crm_updates (tenant, update_id, source, entity, entity_id, property, value, occurred_at,
                         received_at, alias_kind, alias_value, rep_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[], $12::text[])
ORDER BY 1, 2
ON CONFLICT (tenant, update_id) DO NOTHING
RETURNING tenant, update_id
"""
ARCHIVED = """
SELECT tenant, update_id, source, entity, entity_id, property, value, occurred_at, received_at,
       alias_kind, alias_value, rep_id
FROM crm_updates WHERE tenant = $1
"""
# A no-op update takes the row lock (in key order) and returns the row as last committed.
LOCK = """
INSERT INTO crm_entities AS c (tenant, entity, entity_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ORDER BY 1, 2, 3
ON CONFLICT (tenant, entity, entity_id) DO UPDATE SET updated_at = c.updated_at
RETURNING tenant, entity, entity_id, history::text AS history, events::text AS events,
          contribution::text AS contribution
"""
SAVE = """
UPDATE crm_entities AS c
SET owner = u.owner, rep_id = u.rep_id, amount = u.amount, contact_id = u.contact_id, channel = u.channel,
    stage = u.stage, lifecycle_stage = u.lifecycle_stage, history = u.history::jsonb,
    events = u.events::jsonb, contribution = u.contribution::jsonb, updated_at = now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::numeric[], $7::text[],
            $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[])
  AS u(tenant, entity, entity_id, owner, rep_id, amount, contact_id, channel, stage, lifecycle_stage,
       history, events, contribution)
WHERE c.tenant = u.tenant AND c.entity = u.entity AND c.entity_id = u.entity_id
"""
UPSERT_FACTS = """
INSERT INTO deal_facts AS d (tenant, event_id, type, deal_id, contact_id, rep_id, channel, amount,
                             occurred_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::numeric[], $9::timestamptz[])
ORDER BY 1, 2
ON CONFLICT (tenant, event_id) DO UPDATE
SET contact_id = EXCLUDED.contact_id, rep_id = EXCLUDED.rep_id, amount = EXCLUDED.amount
WHERE (d.contact_id, d.rep_id, d.amount)
      IS DISTINCT FROM (EXCLUDED.contact_id, EXCLUDED.rep_id, EXCLUDED.amount)
"""
ZONES = """
SELECT u.tenant, u.rep_id, coalesce(r.timezone, t.timezone, 'UTC') AS timezone
FROM unnest($1::text[], $2::text[]) AS u(tenant, rep_id)
LEFT JOIN tenants t ON t.slug = u.tenant
LEFT JOIN reps r ON r.tenant = u.tenant AND r.rep_id = u.rep_id
"""


async def archive_updates(conn: asyncpg.Connection, updates: Sequence[CrmUpdate]) -> list[CrmUpdate]:
    """Resolve owner identities to reps and archive the updates; returns those not archived before,
    in stream order (of several deliveries in `updates`, the first)."""
    unique: dict[tuple[str, str], CrmUpdate] = {}
    for u in updates:
        unique.setdefault((u.tenant, u.update_id), u)
    if not unique:
        return []
    batch = list(unique.values())
    wanted = [(i, u.tenant, *u.rep_alias) for i, u in enumerate(batch) if u.rep_alias and u.rep_id is None]
    if wanted:
        for row in await conn.fetch(RESOLVE_OWNERS, *_columns(wanted)):
            batch[row["i"]].rep_id = row["rep_id"]
    rows = [
        (u.tenant, u.update_id, u.source, u.entity, u.entity_id, u.property, u.value, u.occurred_at,
         u.received_at, *(u.rep_alias or (None, None)), u.rep_id)
        for u in batch
    ]  # fmt: skip
    new = {(r["tenant"], r["update_id"]) for r in await conn.fetch(ARCHIVE, *_columns(rows))}
    return [u for u in batch if (u.tenant, u.update_id) in new]


def archived_update(row: asyncpg.Record) -> CrmUpdate:
    """An update as read back from `crm_updates` (ARCHIVED) for a rebuild."""
    alias = (row["alias_kind"], row["alias_value"]) if row["alias_kind"] is not None else None
    return CrmUpdate(
        row["tenant"],
        row["update_id"],
        row["source"],
        row["entity"],
        row["entity_id"],
        row["property"],
        row["value"],
        row["occurred_at"],
        row["received_at"],
        alias,
        row["rep_id"],
    )


class CrmFold:
    """Folds attributed events (`Event.entity`) and archived-as-new CRM updates into entity state."""

    name = "crm"

    async def apply(
        self,
        conn: asyncpg.Connection,
        events: Sequence[Event],
        zone_of: ZoneOf,
        updates: Sequence[CrmUpdate] = (),
    ) -> Deltas | None:
        attributed = [(_key(e), e) for e in events if e.entity is not None]
        if not attributed and not updates:
            return None
        keys = sorted({k for k, _ in attributed} | {(u.tenant, u.entity, u.entity_id) for u in updates})
        states: dict[Key, EntityState] = {}
        stored: dict[Key, Deltas] = {}
        for row in await conn.fetch(LOCK, *_columns(keys)):
            key = (row["tenant"], row["entity"], row["entity_id"])
            states[key] = EntityState.load(*key, row["history"], row["events"])
            stored[key] = load_contribution(row["tenant"], row["contribution"])
        for key, e in attributed:
            states[key].add_event(Attributed.of(e))
        for u in updates:
            states[(u.tenant, u.entity, u.entity_id)].add_change(Change.of(u))

        zones = await _zones(conn, states.values())
        deltas = Deltas()
        saved: list[tuple[Any, ...]] = []
        facts: list[tuple[Any, ...]] = []
        for key in keys:
            state = states[key]
            contribution = state.contribution(zones)
            deltas.merge(difference(contribution, stored[key]))
            s = state.snapshot()
            saved.append(
                (*key, s.owner, s.rep_id, s.amount, s.contact_id, s.channel, s.stage, s.lifecycle_stage,
                 state.history_json(), state.events_json(), contribution_json(contribution))
            )  # fmt: skip
            facts.extend((key[0], *fact) for fact in state.facts())
        await conn.execute(SAVE, *_columns(saved))
        if facts:
            await conn.execute(UPSERT_FACTS, *_columns(sorted(facts, key=lambda f: (f[0], f[1]))))
        return deltas


def _key(e: Event) -> Key:
    assert e.entity is not None
    return (e.tenant, *e.entity)


async def _zones(conn: asyncpg.Connection, states: Iterable[EntityState]) -> ZoneOf:
    """The timezone of every rep the entities' owners resolved to, and of their tenants."""
    pairs: set[tuple[str, str | None]] = set()
    for state in states:
        pairs.add((state.tenant, None))
        pairs.update((state.tenant, c.rep_id) for c in state.changes.values() if c.rep_id is not None)
    found: dict[tuple[str, str | None], ZoneInfo] = {}
    for row in await conn.fetch(ZONES, *_columns(sorted(pairs, key=lambda p: (p[0], p[1] or "")))):
        found[(row["tenant"], row["rep_id"])] = _zone(row["timezone"])

    def zone_of(tenant: str, rep_id: str | None) -> ZoneInfo:
        return found.get((tenant, rep_id)) or found.get((tenant, None)) or UTC

    return zone_of


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown timezone %r in the database; folding in UTC", name)
        return UTC


def _columns(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows -> one list per column, the shape `unnest($1::t[], ...)` takes."""
    return [list(c) for c in zip(*rows, strict=True)]
