"""The data-quality fold's SQL: `data_quality`, unresolved vendor identities (data_quality.py)."""

from __future__ import annotations

import asyncpg

from services.aggregator.fold import FoldInput
from services.aggregator.folds.data_quality import unresolved_rows
from services.aggregator.store import insert_rows

TABLES = ("data_quality",)

UPSERT = """
INSERT INTO data_quality AS q (tenant, source, alias_kind, alias_value, events, first_seen, last_seen)
SELECT * FROM unnest(
  $1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::timestamptz[], $7::timestamptz[]
)
ORDER BY 1, 2, 3, 4
ON CONFLICT (tenant, source, alias_kind, alias_value) DO UPDATE
SET events = q.events + EXCLUDED.events,
    first_seen = least(q.first_seen, EXCLUDED.first_seen),
    last_seen = greatest(q.last_seen, EXCLUDED.last_seen)
"""


async def apply(conn: asyncpg.Connection, new: FoldInput) -> None:
    await insert_rows(conn, UPSERT, unresolved_rows(new.events, new.updates))
