"""The subscriptions fold's SQL: `mrr_movements` and `subscription_accounts` (the pure part:
subscriptions.py).

A batch without `subscription.*` events does nothing here. One with some first takes a
transaction-scoped advisory lock per tenant, so the batches of a tenant that bring billing events
(an account's events may travel on several partitions: their key is the rep or contact, else '-')
pass here one after the other and each sees what those before it committed. Then it inserts its
events into the accounts' event sets (a redelivered event is there already: ON CONFLICT DO NOTHING),
reads the touched accounts' whole event sets with one statement, and writes the accounts' movements
and rows again.
"""

from __future__ import annotations

import asyncpg

from services.aggregator.fold import FoldInput
from services.aggregator.folds.subscriptions import SubscriptionEvent, batch_events, derive_all
from services.aggregator.store import columns, insert_rows

TABLES = ("mrr_movements", "subscription_accounts")
# The two-key advisory lock space, apart from REBUILD_LOCK_KEY and the other folds'.
_LOCK_CLASS = 0x5B5C1

LOCK_TENANTS = """
SELECT count(pg_advisory_xact_lock($1, k))
FROM (SELECT DISTINCT hashtext(t) AS k FROM unnest($2::text[]) AS t ORDER BY k) AS s
"""
# mrr_before and mrr_after are placeholders until the account is derived below.
INSERT_EVENTS = """
INSERT INTO mrr_movements (tenant, account_id, event_id, at, type, subscription_id, mrr, contact_id,
                           channel, mrr_before, mrr_after)
SELECT *, 0, 0 FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
                           $7::numeric[], $8::text[], $9::text[])
ORDER BY 1, 2, 3
ON CONFLICT (tenant, account_id, event_id) DO NOTHING
"""
# Every event of the accounts, probed per account by primary key (LATERAL ... OFFSET 0: no hash of
# the whole table for a batch of many accounts).
EVENTS = """
SELECT m.tenant, m.account_id, m.event_id, m.at, m.type, m.subscription_id, m.mrr, m.contact_id, m.channel
FROM unnest($1::text[], $2::text[]) AS u(tenant, account_id)
CROSS JOIN LATERAL (
  SELECT * FROM mrr_movements m WHERE m.tenant = u.tenant AND m.account_id = u.account_id OFFSET 0
) AS m
"""
SAVE_MOVEMENTS = """
UPDATE mrr_movements AS m SET mrr_before = u.mrr_before, mrr_after = u.mrr_after, movement = u.movement
FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[], $5::numeric[], $6::text[])
  AS u(tenant, account_id, event_id, mrr_before, mrr_after, movement)
WHERE m.tenant = u.tenant AND m.account_id = u.account_id AND m.event_id = u.event_id
  AND (m.mrr_before, m.mrr_after, m.movement) IS DISTINCT FROM (u.mrr_before, u.mrr_after, u.movement)
"""
_ACCOUNT_COLUMNS = "mrr, contact_id, channel, first_paid_at, updated_at"
SAVE_ACCOUNTS = f"""
INSERT INTO subscription_accounts AS a (tenant, account_id, {_ACCOUNT_COLUMNS})
SELECT * FROM unnest($1::text[], $2::text[], $3::numeric[], $4::text[], $5::text[], $6::timestamptz[],
                     $7::timestamptz[])
ON CONFLICT (tenant, account_id) DO UPDATE
SET {", ".join(f"{c} = EXCLUDED.{c}" for c in _ACCOUNT_COLUMNS.split(", "))}
"""


async def apply(conn: asyncpg.Connection, new: FoldInput) -> None:
    events = batch_events(new.events)
    if not events:
        return
    # Step 1: the tenant lock: the batch reads what batches of the tenant before it committed.
    await conn.execute(LOCK_TENANTS, _LOCK_CLASS, sorted({s.tenant for s in events}))
    # Step 2: the events join their accounts' event sets.
    await insert_rows(conn, INSERT_EVENTS, events)
    # Step 3: every touched account derived again from its whole event set.
    keys = sorted({s.account for s in events})
    found = await conn.fetch(EVENTS, *columns(keys))
    accounts, moves = derive_all(SubscriptionEvent(*r) for r in found)
    await insert_rows(conn, SAVE_MOVEMENTS, moves)
    await insert_rows(conn, SAVE_ACCOUNTS, accounts)
