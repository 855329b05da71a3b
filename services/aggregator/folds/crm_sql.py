"""The CRM fold's SQL: `crm_entities` (deal and contact state) and the `deal_facts` rows of events
attributed through it (the pure part: crm.py).

Each entity keeps its property-change history and the events attributed through it; a batch that
changes an entity adds `new contribution - stored contribution` to the rollups, so the totals equal a
fold of the final state whatever order updates and events came in and however they were cut into
batches. The entity's `deal_facts` rows are kept current the same way. The updates themselves are
archived in `crm_updates` before the folds run (store.py) and replayed from there by a rebuild.

Every batch locks the entities it touches in key order with one statement, so consumers folding the
same deal serialise and cannot deadlock.
"""

from __future__ import annotations

import asyncpg

from services.aggregator.fold import Deltas, FoldInput
from services.aggregator.folds.crm import (
    Attributed,
    Change,
    EntityState,
    Key,
    load_contribution,
    settle,
    zone_pairs,
)
from services.aggregator.store import columns, insert_rows, zones

TABLES = ("crm_entities", "deal_facts")

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


async def apply(conn: asyncpg.Connection, new: FoldInput) -> Deltas | None:
    """Fold attributed events (`Event.entity`) and new CRM updates into their entities' state."""
    attributed = [((e.tenant, *e.entity), e) for e in new.events if e.entity is not None]
    if not attributed and not new.updates:
        return None
    keys: set[Key] = {k for k, _ in attributed} | {(u.tenant, u.entity, u.entity_id) for u in new.updates}
    states: dict[Key, EntityState] = {}
    stored: dict[Key, Deltas] = {}
    for row in await conn.fetch(LOCK, *columns(sorted(keys))):
        key = (row["tenant"], row["entity"], row["entity_id"])
        states[key] = EntityState.load(*key, row["history"], row["events"])
        stored[key] = load_contribution(row["tenant"], row["contribution"])
    for key, e in attributed:
        states[key].add_event(Attributed.of(e))
    for u in new.updates:
        states[(u.tenant, u.entity, u.entity_id)].add_change(Change.of(u))

    owners = await zones(conn, zone_pairs(states.values()))
    deltas, saved, facts = settle(states, stored, owners.zone_of)
    await conn.execute(SAVE, *columns(saved))
    await insert_rows(conn, UPSERT_FACTS, facts)
    return deltas
