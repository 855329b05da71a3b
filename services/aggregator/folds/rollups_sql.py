"""The rollup fold's SQL: `rollup_rep_daily`, `rollup_channel_daily` and `tenant_watermarks`.

The fold itself is services/aggregator/fold.py. Its deltas, and those other folds add (the CRM fold's
re-attributed revenue), are written once per batch, after every fold ran (commit.py, Step 7): each row
adds to the stored one, so the totals do not depend on how the stream was cut into batches.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy import Numeric

from services.aggregator.fold import Deltas, FoldInput, fold
from services.aggregator.store import insert_rows
from services.core.models import CHANNEL_COUNTERS, REP_COUNTERS, ChannelDaily, RepDaily

TABLES = ("rollup_rep_daily", "rollup_channel_daily", "tenant_watermarks")


def additive_upsert(table: Any, keys: tuple[str, ...], counters: tuple[str, ...]) -> str:
    """`INSERT .. SELECT FROM unnest(arrays) ON CONFLICT DO UPDATE SET c = r.c + EXCLUDED.c`."""
    table_columns = table.__table__.columns
    types = ["text", "text", "date"] + [
        "numeric" if isinstance(table_columns[c].type, Numeric) else "bigint" for c in counters
    ]
    arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=1))
    sets = ", ".join(f"{c} = r.{c} + EXCLUDED.{c}" for c in counters)
    return (
        f"INSERT INTO {table.__tablename__} AS r ({', '.join(keys + counters)}) "
        f"SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
    )


UPSERT_REP = additive_upsert(RepDaily, ("tenant", "rep_id", "day"), REP_COUNTERS)
UPSERT_CHANNEL = additive_upsert(ChannelDaily, ("tenant", "channel", "day"), CHANNEL_COUNTERS)
UPSERT_WATERMARKS = """
INSERT INTO tenant_watermarks AS w (tenant, as_of, events_folded)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::bigint[])
ON CONFLICT (tenant) DO UPDATE
SET as_of = greatest(w.as_of, EXCLUDED.as_of), events_folded = w.events_folded + EXCLUDED.events_folded
"""


async def apply(conn: asyncpg.Connection, new: FoldInput) -> Deltas:
    """The events' own contributions; nothing is written before every fold has added its deltas."""
    return fold(new.events, new.zone_of)


async def write_deltas(conn: asyncpg.Connection, deltas: Deltas) -> None:
    """Add the batch's deltas to the rollups and watermarks, rows in key order (lock order)."""
    await insert_rows(conn, UPSERT_REP, deltas.rep_rows())
    await insert_rows(conn, UPSERT_CHANNEL, deltas.channel_rows())
    await insert_rows(conn, UPSERT_WATERMARKS, deltas.watermark_rows())
