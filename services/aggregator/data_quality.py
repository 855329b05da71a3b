"""`data_quality`: vendor identities that resolve to no rep, with how much activity carries them (SPEC 4).

A vendor event whose rep alias is unknown is archived with `rep_id` null and counted nowhere per rep
("unassigned"). A CRM whose events carry no rep (HubSpot, see services/aggregator/entities.py) names
owners in property updates instead; an update naming an unknown owner leaves that owner's deals and
leads unassigned. Both count here per tenant, source and identity, with the first and last time they
occurred at, until an operator adds the alias and `salesloop rebuild` re-attributes them (the
rebuild recomputes this table from the archive, so resolved identities drop out of it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from services.aggregator.fold import Deltas, ZoneOf
from services.core.crm import CrmUpdate
from services.core.wire import Event

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

Key = tuple[str, str, str, str]  # tenant, source, alias kind, alias value


class DataQualityFold:
    name = "data_quality"

    async def apply(
        self,
        conn: asyncpg.Connection,
        events: Sequence[Event],
        zone_of: ZoneOf,
        updates: Sequence[CrmUpdate] = (),
    ) -> Deltas | None:
        found: list[tuple[Key, datetime]] = [
            ((e.tenant, e.source, *e.rep_alias), e.occurred_at)
            for e in events
            if e.rep_id is None and e.rep_alias is not None and e.source != "api"
        ]
        found += [
            ((u.tenant, u.source, *u.rep_alias), u.occurred_at)
            for u in updates
            if u.property == "owner"
            and u.rep_id is None
            and u.rep_alias is not None
            and u.attribution is not None
        ]
        if not found:
            return None
        seen: dict[Key, tuple[int, datetime, datetime]] = {}
        for key, at in found:
            n, first, last = seen.get(key, (0, at, at))
            seen[key] = (n + 1, min(first, at), max(last, at))
        rows = [(*key, *counts) for key, counts in sorted(seen.items())]
        await conn.execute(UPSERT, *map(list, zip(*rows, strict=True)))
        return None
