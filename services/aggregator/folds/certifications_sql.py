"""The certifications fold's SQL: `certification_attempts`, for the certification report (SPEC 5.4)."""

from __future__ import annotations

import asyncpg

from services.aggregator.fold import FoldInput
from services.aggregator.folds.certifications import attempt_rows
from services.aggregator.store import insert_rows

TABLES = ("certification_attempts",)

INSERT_ATTEMPTS = """
INSERT INTO certification_attempts (tenant, event_id, rep_id, module, score, passed, occurred_at)
SELECT * FROM unnest(
  $1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[], $6::boolean[], $7::timestamptz[]
)
ORDER BY 1, 2
ON CONFLICT (tenant, event_id) DO NOTHING
"""


async def apply(conn: asyncpg.Connection, new: FoldInput) -> None:
    await insert_rows(conn, INSERT_ATTEMPTS, attempt_rows(new.events))
