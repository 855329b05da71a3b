"""The pipeline fold's SQL: `deal_changes`, `pipeline_deals`, `deal_stage_stays` and
`contact_activity` (the pure part: pipeline.py).

Two batches may bring changes of one deal at once (a HubSpot deal's events and property updates
travel on different partitions), and two sides of `contact_activity` may be in flight at once too: a
call with a contact, and the deal change that names the contact. So every batch with deal changes,
or with calls, emails and meetings with a contact, first takes a transaction-scoped advisory lock per
tenant: the batches of a tenant pass here one after the other, and each sees what those before it
committed. The leads and conversation folds queue the same batches on locks of their own just before,
so this moves the queue, little more. A batch with neither does nothing here.

Then the batch inserts its changes, reads its deals' whole change sets with one statement and writes
the deals' rows again. `contact_activity` is kept for the contacts deals name only: a call raises the
contact's row if a deal names the contact; a deal that names a contact anew looks its latest activity
up in the event archive, which holds every event folded so far and this batch's own; a contact no
deal names any longer loses its row. The rows are so those of the contacts the deals name now,
whatever the order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg
import orjson

from services.aggregator.fold import FoldInput
from services.aggregator.folds.pipeline import (
    ACTIVITY_TYPES,
    ChangeRow,
    Contact,
    DealKey,
    batch_changes,
    derive_all,
    scan,
)
from services.aggregator.store import columns, copy_new_rows, insert_rows

TABLES = ("deal_changes", "pipeline_deals", "deal_stage_stays", "contact_activity")
# The two-key advisory lock space, apart from REBUILD_LOCK_KEY and the leads and conversation folds'.
_LOCK_CLASS = 0x919E1
_ACTIVITY = ", ".join(f"'{t}'" for t in sorted(ACTIVITY_TYPES))  # constants: SQL literals

LOCK_TENANTS = """
SELECT count(pg_advisory_xact_lock($1, k))
FROM (SELECT DISTINCT hashtext(t) AS k FROM unnest($2::text[]) AS t ORDER BY k) AS s
"""
INSERT_CHANGES = """
INSERT INTO deal_changes (tenant, deal_id, change_id, at, kind, value, rep_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
                     $7::text[])
ON CONFLICT (tenant, deal_id, change_id) DO NOTHING
"""
# The stored rows of deals that have changes already, read through their primary key: a no-op update
# of each (in key order) returns the row as last committed. The primary key is the conflict arbiter, so
# no plan can probe another (tenant, ...) index instead: one the planner could pick on a table without
# statistics yet (a first import), scanning the tenant's every deal per key.
STORED = """
INSERT INTO pipeline_deals AS p (tenant, deal_id)
SELECT * FROM unnest($1::text[], $2::text[]) ORDER BY 1, 2
ON CONFLICT (tenant, deal_id) DO UPDATE SET updated_at = p.updated_at
RETURNING tenant, deal_id, contact_id, stage IS NOT NULL AS staged
"""
# Every change of the deals. The look-up is LATERAL ... OFFSET 0, so Postgres probes the index per key
# rather than hashing the whole table (it would, for a batch of many keys and a table of a few thousand
# rows).
CHANGES = """
SELECT c.tenant, c.deal_id, c.change_id, c.at, c.kind, c.value, c.rep_id
FROM unnest($1::text[], $2::text[]) AS u(tenant, deal_id)
CROSS JOIN LATERAL (
  SELECT * FROM deal_changes c WHERE c.tenant = u.tenant AND c.deal_id = u.deal_id OFFSET 0
) AS c
"""
_DEAL_COLUMNS = (
    "rep_id, created_rep_id, contact_id, created_at, status, closed_at, stage, stage_entered_at, amount, "
    "close_date, forecast_category, updated_at"
)
_DEAL_ROW = ("tenant", "deal_id", *_DEAL_COLUMNS.split(", "))
_CHANGE_COLUMNS = ("tenant", "deal_id", "change_id", "at", "kind", "value", "rep_id")
SAVE_DEALS = f"""
INSERT INTO pipeline_deals AS p (tenant, deal_id, {_DEAL_COLUMNS})
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                     $7::text[], $8::timestamptz[], $9::text[], $10::timestamptz[], $11::numeric[],
                     $12::date[], $13::text[], $14::timestamptz[])
ON CONFLICT (tenant, deal_id) DO UPDATE
SET {", ".join(f"{c} = EXCLUDED.{c}" for c in _DEAL_COLUMNS.split(", "))}
"""
DELETE_STAYS = """
DELETE FROM deal_stage_stays s USING unnest($1::text[], $2::text[]) AS u(tenant, deal_id)
WHERE s.tenant = u.tenant AND s.deal_id = u.deal_id
"""
# Arrays of arrays cannot be unnested row by row, so `reached_later` travels as JSON text.
INSERT_STAYS = """
INSERT INTO deal_stage_stays (tenant, deal_id, entered_at, stage, left_at, next, rep_id, deal_created_at,
                              reached_later, won_after)
SELECT u.tenant, u.deal_id, u.entered_at, u.stage, u.left_at, u.next, u.rep_id, u.deal_created_at,
       ARRAY(SELECT jsonb_array_elements_text(u.reached_later::jsonb)), u.won_after
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::timestamptz[], $6::text[],
            $7::text[], $8::timestamptz[], $9::text[], $10::boolean[])
  AS u(tenant, deal_id, entered_at, stage, left_at, next, rep_id, deal_created_at, reached_later, won_after)
"""
# The batch's calls, emails and meetings raise the rows of contacts that a deal names (one index probe
# per contact, LATERAL as above: this runs for most batches).
RAISE_ACTIVITY = """
INSERT INTO contact_activity AS a (tenant, contact_id, last_activity_at)
SELECT u.tenant, u.contact_id, u.at
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(tenant, contact_id, at)
CROSS JOIN LATERAL (
  SELECT 1 FROM pipeline_deals d WHERE d.tenant = u.tenant AND d.contact_id = u.contact_id LIMIT 1
) AS named
ON CONFLICT (tenant, contact_id) DO UPDATE SET last_activity_at = EXCLUDED.last_activity_at
WHERE a.last_activity_at < EXCLUDED.last_activity_at
"""
# Contacts a deal stopped naming: their rows go unless another deal names them.
DROP_ACTIVITY = """
DELETE FROM contact_activity a USING unnest($1::text[], $2::text[]) AS u(tenant, contact_id)
WHERE a.tenant = u.tenant AND a.contact_id = u.contact_id
  AND NOT EXISTS (SELECT 1 FROM pipeline_deals d WHERE d.tenant = a.tenant AND d.contact_id = a.contact_id)
"""
# A contact a deal names for the first time: its latest activity so far, from the archive.
LOOK_UP_ACTIVITY = f"""
INSERT INTO contact_activity AS a (tenant, contact_id, last_activity_at)
SELECT u.tenant, u.contact_id, f.at
FROM unnest($1::text[], $2::text[]) AS u(tenant, contact_id)
CROSS JOIN LATERAL (
  SELECT max(e.occurred_at) AS at FROM events e
  WHERE e.tenant = u.tenant AND e.contact_id = u.contact_id AND e.type IN ({_ACTIVITY})
) AS f
WHERE f.at IS NOT NULL
ORDER BY 1, 2
ON CONFLICT (tenant, contact_id) DO UPDATE SET last_activity_at = EXCLUDED.last_activity_at
WHERE a.last_activity_at < EXCLUDED.last_activity_at
"""


async def apply(conn: asyncpg.Connection, new: FoldInput) -> None:
    deal_events, active = scan(new.events)
    changes = batch_changes(deal_events, new.updates)
    if not changes and not active:
        return
    # Step 1: the tenant lock: the batch reads what batches of the tenant before it committed.
    tenants = {t for t, _, _ in active} | {r[0] for r in changes}
    await conn.execute(LOCK_TENANTS, _LOCK_CLASS, sorted(tenants))
    # Step 2: the deals' changes and rows; the activity of contacts the deals name anew, or no longer.
    if changes:
        named, unnamed = await _fold_deals(conn, changes)
        await insert_rows(conn, LOOK_UP_ACTIVITY, named)
        await insert_rows(conn, DROP_ACTIVITY, unnamed)
    # Step 3: the batch's calls, emails and meetings.
    await insert_rows(conn, RAISE_ACTIVITY, active)


async def _fold_deals(
    conn: asyncpg.Connection, changes: Sequence[ChangeRow]
) -> tuple[list[Contact], list[Contact]]:
    """Add the changes, recompute every touched deal from its whole change set, and say which contacts
    the deals name that they did not before, and which they no longer name.

    The deals' changes are read before the batch's are added: a deal without any is new, and has no
    row either (a deal's changes and its row are written together, and deleted together by a rebuild
    or a tenant's deletion), so only the others' rows are read. A first import's deals are all new:
    it reads nothing back."""
    deals: list[DealKey] = sorted({(r[0], r[1]) for r in changes})
    prior = [_change(r) for r in await conn.fetch(CHANGES, *columns(deals))]
    known = sorted({(r[0], r[1]) for r in prior})
    stored: dict[DealKey, tuple[str | None, bool]] = {}
    if known:
        for r in await conn.fetch(STORED, *columns(known)):
            stored[(r["tenant"], r["deal_id"])] = (r["contact_id"], r["staged"])
    await copy_new_rows(conn, "deal_changes", _CHANGE_COLUMNS, changes, INSERT_CHANGES)
    deal_rows, stay_rows = derive_all(_change_set(prior, changes))
    # A new deal's row is inserted, a known one's written again.
    await copy_new_rows(
        conn, "pipeline_deals", _DEAL_ROW, [d for d in deal_rows if (d[0], d[1]) not in stored], SAVE_DEALS
    )
    await insert_rows(conn, SAVE_DEALS, [d for d in deal_rows if (d[0], d[1]) in stored])
    await insert_rows(conn, DELETE_STAYS, [k for k, (_, staged) in stored.items() if staged])
    await insert_rows(conn, INSERT_STAYS, [(*s[:8], _json(s[8]), s[9]) for s in stay_rows])
    named: set[Contact] = set()
    unnamed: set[Contact] = set()
    for d in deal_rows:
        tenant, now = d[0], d[4]
        old = stored[(tenant, d[1])][0] if (tenant, d[1]) in stored else None
        if old != now:
            if now is not None:
                named.add((tenant, now))
            if old is not None:
                unnamed.add((tenant, old))
    return sorted(named), sorted(unnamed)


def _change_set(prior: Sequence[ChangeRow], batch: Sequence[ChangeRow]) -> list[ChangeRow]:
    """The deals' changes as `deal_changes` holds them once the batch's are added: a change already
    there (or earlier in the batch) is kept as it was (INSERT_CHANGES does nothing on a conflict)."""
    if not prior:
        ids = {(r[0], r[1], r[2]) for r in batch}
        if len(ids) == len(batch):
            return list(batch)
    seen: set[tuple[str, str, str]] = set()
    merged = []
    for r in (*prior, *batch):
        key = (r[0], r[1], r[2])
        if key not in seen:
            seen.add(key)
            merged.append(r)
    return merged


def _change(r: asyncpg.Record) -> ChangeRow:
    at: datetime = r["at"]
    return (r["tenant"], r["deal_id"], r["change_id"], at, r["kind"], r["value"], r["rep_id"])


def _json(items: Sequence[str]) -> str:
    return orjson.dumps(list(items)).decode()
