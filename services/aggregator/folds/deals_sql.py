"""The deals fold's SQL: `deal_facts` rows of events that carry their own rep and amount (deals.py)."""

from __future__ import annotations

import asyncpg

from services.aggregator.fold import FoldInput
from services.aggregator.folds.deals import fact_rows
from services.aggregator.store import insert_rows

TABLES = ("deal_facts",)

INSERT_FACTS = """
INSERT INTO deal_facts (tenant, event_id, type, deal_id, contact_id, rep_id, channel, amount, occurred_at)
SELECT * FROM unnest(
  $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::numeric[],
  $9::timestamptz[]
)
ORDER BY 1, 2
ON CONFLICT (tenant, event_id) DO NOTHING
"""


async def apply(conn: asyncpg.Connection, new: FoldInput) -> None:
    await insert_rows(conn, INSERT_FACTS, fact_rows(new.events))
