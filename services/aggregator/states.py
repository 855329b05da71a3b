"""Stateful folds that run inside the batch transaction, after the archive decided which events are new.

The rollup fold (fold.py) is pure and additive. Some feedback numbers need state that is not a
plain sum: lead state for speed to lead, CRM entity state for attribution by event time,
certification attempts, unresolved vendor identities. Each such fold gets the batch's NEW events
(never a redelivery) and the open connection, writes its own tables, and may return extra rollup
deltas (e.g. revenue re-attributed when a deal's amount arrives after its win), which the store adds
to the batch's deltas. A fold must give the same result whatever order the events arrive in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import asyncpg

from services.aggregator.certifications import CertificationsFold
from services.aggregator.crm import CrmFold
from services.aggregator.data_quality import DataQualityFold
from services.aggregator.deals import DealsFold
from services.aggregator.fold import Deltas, ZoneOf
from services.aggregator.leads import LeadsFold
from services.core.crm import CrmUpdate
from services.core.wire import Event


class StateFold(Protocol):
    name: str

    async def apply(
        self,
        conn: asyncpg.Connection,
        events: Sequence[Event],
        zone_of: ZoneOf,
        updates: Sequence[CrmUpdate] = (),
    ) -> Deltas | None:
        """Update this fold's tables for the batch's new `events` and CRM `updates` (both distinct,
        never seen before) within the caller's transaction."""
        ...


# In this order: tables are locked data_quality, crm_entities (and their deal_facts), leads, and the
# leads fold reads the contacts' CRM channels the CRM fold has just brought up to date.
FEEDBACK_FOLDS = (DealsFold(), CertificationsFold(), DataQualityFold(), CrmFold(), LeadsFold())
STATE_FOLDS: tuple[StateFold, ...] = FEEDBACK_FOLDS

# Taken shared by every batch transaction and exclusively by `salesloop rebuild`, so no batch
# commits while a rebuild recomputes rollups from the archive.
REBUILD_LOCK_KEY = 0x5A1E5100
