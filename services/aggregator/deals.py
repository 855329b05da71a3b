"""`deal_facts`: one row per deal.created, deal.won and deal.lost, for channel attribution at read time.

The row keeps the event's own channel (null when it names none): the demand report gives such a deal
its contact's first-touch channel by joining `leads` when it reads, so a lead that arrives after its
deal still claims it. Events attributed through CRM entity state (`Event.entity`) get their rows from
the CRM fold, which keeps their rep, amount and contact current (services/aggregator/crm.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.aggregator.entities import FACT_TYPES
from services.aggregator.fold import Deltas, ZoneOf
from services.core.crm import CrmUpdate
from services.core.wire import Event

INSERT_FACTS = """
INSERT INTO deal_facts (tenant, event_id, type, deal_id, contact_id, rep_id, channel, amount, occurred_at)
SELECT * FROM unnest(
  $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::numeric[],
  $9::timestamptz[]
)
ORDER BY 1, 2
ON CONFLICT (tenant, event_id) DO NOTHING
"""


class DealsFold:
    name = "deals"

    async def apply(
        self,
        conn: asyncpg.Connection,
        events: Sequence[Event],
        zone_of: ZoneOf,
        updates: Sequence[CrmUpdate] = (),
    ) -> Deltas | None:
        rows = [
            (
                e.tenant,
                e.event_id,
                e.type,
                e.deal_id,
                e.contact_id,
                e.rep_id,
                e.channel,
                e.amount,
                e.occurred_at,
            )
            for e in events
            if e.type in FACT_TYPES and e.entity is None
        ]
        if rows:
            await conn.execute(INSERT_FACTS, *map(list, zip(*rows, strict=True)))
        return None
