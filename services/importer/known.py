"""What the import reads from PostgreSQL (all of its SQL): the tenant, its vendor options and rep
aliases, and which of the facts it is about to send the tenant already has.

Already known, and so counted `duplicate` and not sent, is an event whose id the archive holds (its
key in `event_keys`: an earlier run of the same import, or a HubSpot or Salesforce webhook: they name
a record's facts as the import does), and a deal's or lead's fact the aggregator's state already has
under another event id: `deal_facts` (a deal's creation, win or loss) and `leads` (a contact's
creation, MQL, SQL). That second look catches the same fact sent by a client under its own id, and
HubSpot facts received before the adapter named them by record (by notification then). Events still on
their way through the broker are not seen here; the aggregator's archive drops those that share an id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import String, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.core.events import Channel, EventType
from services.core.models import DealFact, Lead, RepAlias
from services.core.models.archive import EventKey
from services.core.source_settings import load_settings
from services.importer.model import Fact, Terms, stage_key

_CHANNELS = frozenset(c.value for c in Channel)
_DEAL_FACTS = (EventType.DEAL_CREATED.value, EventType.DEAL_WON.value, EventType.DEAL_LOST.value)


def _any(name: str) -> Any:
    """`= ANY(:name)` with one array parameter: a chunk's thousands of ids are one value to bind, not
    thousands of literals for SQLAlchemy to render into each statement."""
    return func.any(bindparam(name, type_=ARRAY(String)))


async def terms(engine: AsyncEngine, tenant: str) -> Terms:
    """The tenant's HubSpot and Salesforce options, as the webhook adapters read them."""
    hubspot = await load_settings(engine, tenant, "hubspot")
    salesforce = await load_settings(engine, tenant, "salesforce")
    defaults = Terms()
    return Terms(
        won_stages=_stages(hubspot.get("won_stages"), defaults.won_stages),
        lost_stages=_stages(hubspot.get("lost_stages"), defaults.lost_stages),
        mql_statuses=_lowered(salesforce.get("mql_statuses"), defaults.mql_statuses),
        sql_statuses=_lowered(salesforce.get("sql_statuses"), defaults.sql_statuses),
        hubspot_channels=_channels(hubspot.get("channel_overrides")),
        salesforce_channels=_channels(salesforce.get("channel_overrides")),
    )


async def aliases(engine: AsyncEngine, tenant: str) -> dict[tuple[str, str], str]:
    query = select(RepAlias.kind, RepAlias.value, RepAlias.rep_id).where(RepAlias.tenant == tenant)
    async with engine.connect() as conn:
        return {(kind, value): rep for kind, value, rep in await conn.execute(query)}


async def known_ids(conn: AsyncConnection, tenant: str, event_ids: Iterable[str]) -> set[str]:
    ids = list(event_ids)
    if not ids:
        return set()
    # The dedupe keys, one index over the whole archive; the archive itself is partitioned by month
    # and would be probed once per partition.
    query = select(EventKey.event_id).where(EventKey.tenant == tenant, EventKey.event_id == _any("ids"))
    return set((await conn.execute(query, {"ids": ids})).scalars())


async def known_facts(conn: AsyncConnection, tenant: str, facts: Iterable[Fact]) -> set[Fact]:
    deals = sorted({f[1] for f in facts if f[0] == "deal"})
    contacts = sorted({f[1] for f in facts if f[0] == "lead"})
    found: set[Fact] = set()
    if deals:
        deal_facts = select(DealFact.deal_id, DealFact.type).where(
            DealFact.tenant == tenant, DealFact.deal_id == _any("deals"), DealFact.type.in_(_DEAL_FACTS)
        )
        rows = await conn.execute(deal_facts, {"deals": deals})
        found.update(("deal", deal, type_) for deal, type_ in rows if deal)
    if contacts:
        leads = select(Lead.contact_id, Lead.created_at, Lead.mql_at, Lead.sql_at).where(
            Lead.tenant == tenant, Lead.contact_id == _any("contacts")
        )
        for contact, created, mql, sql in await conn.execute(leads, {"contacts": contacts}):
            for fact, at in (("lead.created", created), ("mql", mql), ("sql", sql)):
                if at is not None:
                    found.add(("lead", contact, fact))
    return found


def _stages(value: Any, default: frozenset[str]) -> frozenset[str]:
    return frozenset(stage_key(str(v)) for v in value) if isinstance(value, list) else default


def _lowered(value: Any, default: frozenset[str]) -> frozenset[str]:
    return frozenset(str(v).lower() for v in value) if isinstance(value, list) else default


def _channels(value: Any) -> Mapping[str, Channel]:
    if not isinstance(value, dict):
        return {}
    return {str(k): Channel(v) for k, v in value.items() if v in _CHANNELS}
