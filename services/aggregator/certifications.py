"""`certification_attempts`: every training.certification, for the certification report (SPEC 5.4)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.aggregator.fold import Deltas, ZoneOf
from services.core.crm import CrmUpdate
from services.core.wire import Event

INSERT_ATTEMPTS = """
INSERT INTO certification_attempts (tenant, event_id, rep_id, module, score, passed, occurred_at)
SELECT * FROM unnest(
  $1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[], $6::boolean[], $7::timestamptz[]
)
ORDER BY 1, 2
ON CONFLICT (tenant, event_id) DO NOTHING
"""


class CertificationsFold:
    name = "certifications"

    async def apply(
        self,
        conn: asyncpg.Connection,
        events: Sequence[Event],
        zone_of: ZoneOf,
        updates: Sequence[CrmUpdate] = (),
    ) -> Deltas | None:
        # Ingest refuses a certification without module or passed; one from an older message is skipped.
        rows = [
            (e.tenant, e.event_id, e.rep_id, e.module, e.score, e.passed, e.occurred_at)
            for e in events
            if e.type == "training.certification" and e.module is not None and e.passed is not None
        ]
        if rows:
            await conn.execute(INSERT_ATTEMPTS, *map(list, zip(*rows, strict=True)))
        return None
