"""What the import reads from PostgreSQL (all of its SQL): the tenant, its vendor options and rep
aliases, and which of the facts it is about to send the tenant already has.

Already known, and so counted `duplicate` and not sent, is an event whose id the archive holds (its
key in `event_keys`: an earlier run of the same import, or a HubSpot or Salesforce webhook: they name
a record's facts as the import does), and a deal's or lead's fact the aggregator's state already has
under another event id: `deal_facts` (a deal's creation, win or loss) and `leads` (a contact's
creation, MQL, SQL). That second look catches the same fact sent by a client under its own id, and
HubSpot facts received before the adapter named them by record (by notification then). Events still on
their way through the broker are not seen here; the aggregator's archive drops those that share an id.

The queries are plain SQL through asyncpg: a handful of them, and importing SQLAlchemy and the models
cost the command about half a CPU second, a sixth of what it spent on 50,000 rows. A caller with a
SQLAlchemy engine passes it (`EngineDatabase`): its connections' asyncpg driver runs the same SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

import asyncpg
import orjson

from services.core.events import Channel, EventType
from services.importer.model import Fact, Terms, stage_key

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

_CHANNELS = frozenset(c.value for c in Channel)
_DEAL_FACTS = [EventType.DEAL_CREATED.value, EventType.DEAL_WON.value, EventType.DEAL_LOST.value]


class Database(Protocol):
    async def fetch(self, query: str, *args: Any) -> Sequence[Any]: ...


class Connection:
    """The command's one connection (its queries run one after another)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @classmethod
    async def open(cls, dsn: str, application_name: str) -> Connection:
        # Each look planned for its own ids: the first chunks of an import into a new tenant find the
        # tables nearly empty, and a generic plan PostgreSQL settles on then (after five runs of a
        # prepared statement) scans them whole once the aggregator has filled them: in the bench, 36 s
        # of waiting over 50,000 rows instead of 1.
        server_settings = {"application_name": application_name, "plan_cache_mode": "force_custom_plan"}
        return cls(await asyncpg.connect(dsn, server_settings=server_settings, timeout=5))

    async def fetch(self, query: str, *args: Any) -> Sequence[Any]:
        rows: Sequence[Any] = await self._conn.fetch(query, *args)
        return rows

    async def close(self) -> None:
        await self._conn.close()


class EngineDatabase:
    """A SQLAlchemy engine's connections, the SQL sent to their asyncpg driver."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def fetch(self, query: str, *args: Any) -> Sequence[Any]:
        async with self._engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            rows: Sequence[Any] = await driver.fetch(query, *args)
            return rows


def database(source: Database | AsyncEngine) -> Database:
    """`source` itself, or a SQLAlchemy engine's connections."""
    if hasattr(source, "fetch"):
        return cast(Database, source)
    return EngineDatabase(source)


async def tenant(db: Database, slug: str) -> tuple[str, str] | None:
    """The tenant's (currency, timezone), None when there is no such tenant."""
    rows = await db.fetch("SELECT currency, timezone FROM tenants WHERE slug = $1", slug)
    return (rows[0][0], rows[0][1]) if rows else None


async def terms(db: Database, tenant: str) -> Terms:
    """The tenant's HubSpot and Salesforce options, as the webhook adapters read them."""
    hubspot = await _options(db, tenant, "hubspot")
    salesforce = await _options(db, tenant, "salesforce")
    defaults = Terms()
    return Terms(
        won_stages=_stages(hubspot.get("won_stages"), defaults.won_stages),
        lost_stages=_stages(hubspot.get("lost_stages"), defaults.lost_stages),
        mql_statuses=_lowered(salesforce.get("mql_statuses"), defaults.mql_statuses),
        sql_statuses=_lowered(salesforce.get("sql_statuses"), defaults.sql_statuses),
        hubspot_channels=_channels(hubspot.get("channel_overrides")),
        salesforce_channels=_channels(salesforce.get("channel_overrides")),
    )


async def aliases(db: Database, tenant: str) -> dict[tuple[str, str], str]:
    rows = await db.fetch("SELECT kind, value, rep_id FROM rep_aliases WHERE tenant = $1", tenant)
    return {(kind, value): rep for kind, value, rep in rows}


async def known_ids(db: Database, tenant: str, event_ids: Iterable[str]) -> set[str]:
    ids = list(event_ids)
    if not ids:
        return set()
    # The dedupe keys, one index over the whole archive; the archive itself is partitioned by month
    # and would be probed once per partition. The ids are one array parameter, not a literal each.
    query = "SELECT event_id FROM event_keys WHERE tenant = $1 AND event_id = ANY($2::varchar[])"
    return {row[0] for row in await db.fetch(query, tenant, ids)}


async def known_facts(db: Database, tenant: str, facts: Iterable[Fact]) -> set[Fact]:
    deals = sorted({f[1] for f in facts if f[0] == "deal"})
    contacts = sorted({f[1] for f in facts if f[0] == "lead"})
    found: set[Fact] = set()
    if deals:
        query = (
            "SELECT deal_id, type FROM deal_facts"
            " WHERE tenant = $1 AND deal_id = ANY($2::varchar[]) AND type = ANY($3::varchar[])"
        )
        rows = await db.fetch(query, tenant, deals, _DEAL_FACTS)
        found.update(("deal", deal, type_) for deal, type_ in rows if deal)
    if contacts:
        query = (
            "SELECT contact_id, created_at, mql_at, sql_at FROM leads"
            " WHERE tenant = $1 AND contact_id = ANY($2::varchar[])"
        )
        for contact, created, mql, sql in await db.fetch(query, tenant, contacts):
            for fact, at in (("lead.created", created), ("mql", mql), ("sql", sql)):
                if at is not None:
                    found.add(("lead", contact, fact))
    return found


async def _options(db: Database, tenant: str, source: str) -> dict[str, Any]:
    """A source's options (`salesloop tenants set-option`), as services.core.source_settings reads them."""
    query = "SELECT settings FROM tenant_source_settings WHERE tenant = $1 AND source = $2"
    rows = await db.fetch(query, tenant, source)
    stored = rows[0][0] if rows else None
    if isinstance(stored, str | bytes):  # jsonb as text, unless the connection decodes it
        stored = orjson.loads(stored)
    return dict(stored or {})


def _stages(value: Any, default: frozenset[str]) -> frozenset[str]:
    return frozenset(stage_key(str(v)) for v in value) if isinstance(value, list) else default


def _lowered(value: Any, default: frozenset[str]) -> frozenset[str]:
    return frozenset(str(v).lower() for v in value) if isinstance(value, list) else default


def _channels(value: Any) -> Mapping[str, Channel]:
    if not isinstance(value, dict):
        return {}
    return {str(k): Channel(v) for k, v in value.items() if v in _CHANNELS}
