"""The aggregator's connection pool and the SQL of the batch transaction's own steps (commit.py): the
rebuild lock, the event and CRM update archives (and reading them back for a rebuild), vendor
identities, timezones and new reps, offsets. Each fold's tables have their own SQL module
(folds/<name>_sql.py), which share the helpers here; `failed_events` is dlq.py's.

The archives' keys are the dedupe (an event's in `event_keys`, a CRM update's its primary key): an
event (or CRM update) is folded by the transaction that archived it, so a redelivered one (after a
crash, a rebalance, a duplicate webhook) is recognised by whichever consumer sees it and never counted
twice.

Every multi-row statement sends its rows sorted by key: concurrent consumers then take row locks in
the same order and cannot deadlock (archives, reps, rollups, watermarks, offsets).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from services.aggregator import archive_partitions, gc_pause
from services.core.crm import CrmUpdate
from services.core.db import asyncpg_dsn
from services.core.settings import Settings
from services.core.wire import Event

log = logging.getLogger(__name__)

APPLICATION_NAME = "salesloop-aggregator"
UTC = ZoneInfo("UTC")

# What a lost or refused connection looks like; the consumer retries the batch on these.
DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)

# Taken shared by every batch transaction and exclusively by `salesloop rebuild`, so no batch
# commits while a rebuild recomputes rollups from the archive.
REBUILD_LOCK_KEY = 0x5A1E5100

# The batch's dedupe keys are COPYed into a per-connection staging table, then go into `event_keys`
# (unique across the archive's monthly partitions, which no unique index of `events` can be) in key
# order (lock order). Events that occurred before the archive's horizon (retention dropped their month)
# are not. Returns the keys that were not new, or past the horizon: few rows, where the new ones would
# be thousands; when every key was new (the counts say so) the anti-join does not even run. The
# events whose key was new are then COPYed into `events` itself (archive_events): no other transaction
# can archive them meanwhile, as it would wait on their new keys first.
STAGE_TABLE = "aggregator_stage_keys"
CREATE_STAGE = f"""
CREATE TEMP TABLE IF NOT EXISTS {STAGE_TABLE} (tenant text, event_id text, occurred_at timestamptz)
ON COMMIT DELETE ROWS
"""
_HORIZON = "coalesce((SELECT kept_from FROM archive_horizon WHERE table_name = 'events'), '-infinity')"
ARCHIVE_KEYS = f"""
WITH fresh AS (
  INSERT INTO event_keys (tenant, event_id, occurred_at)
  SELECT tenant, event_id, occurred_at FROM {STAGE_TABLE} WHERE occurred_at >= {_HORIZON}
  ORDER BY tenant, event_id
  ON CONFLICT (tenant, event_id) DO NOTHING
  RETURNING tenant, event_id
)
SELECT s.tenant, s.event_id, s.occurred_at < {_HORIZON} AS past FROM {STAGE_TABLE} s
WHERE (SELECT count(*) FROM fresh) < (SELECT count(*) FROM {STAGE_TABLE})
  AND NOT EXISTS (SELECT 1 FROM fresh n WHERE n.tenant = s.tenant AND n.event_id = s.event_id)
"""
ARCHIVED = "tenant, event_id, type, occurred_at, received_at, source, rep_id, contact_id, payload".split(", ")
ARCHIVE_UPDATES = """
INSERT INTO crm_updates (tenant, update_id, source, entity, entity_id, property, value, occurred_at,
                         received_at, alias_kind, alias_value, rep_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[], $12::text[])
ORDER BY 1, 2
ON CONFLICT (tenant, update_id) DO NOTHING
RETURNING tenant, update_id
"""
ARCHIVED_UPDATES = """
SELECT tenant, update_id, source, entity, entity_id, property, value, occurred_at, received_at,
       alias_kind, alias_value, rep_id
FROM crm_updates WHERE tenant = $1
"""

ARCHIVE_SIZES = """
SELECT (SELECT count(*) FROM events WHERE tenant = $1) AS events,
       (SELECT count(*) FROM crm_updates WHERE tenant = $1) AS updates
"""
# For a rebuild: the resolution a batch gets (`resolve_aliases`), applied to the archive, of any event
# or update with an identity and no rep.
REATTRIBUTE_EVENTS = """
UPDATE events AS e SET rep_id = a.rep_id
FROM rep_aliases AS a
WHERE e.tenant = $1 AND e.rep_id IS NULL AND e.payload ? 'rep_alias'
  AND a.tenant = e.tenant
  AND a.kind = e.payload -> 'rep_alias' ->> 'kind'
  AND a.value = e.payload -> 'rep_alias' ->> 'value'
"""
REATTRIBUTE_UPDATES = """
UPDATE crm_updates AS u SET rep_id = a.rep_id
FROM rep_aliases AS a
WHERE u.tenant = $1 AND u.rep_id IS NULL AND u.alias_kind IS NOT NULL
  AND a.tenant = u.tenant AND a.kind = u.alias_kind AND a.value = u.alias_value
"""
ARCHIVED_EVENTS = "SELECT rep_id, payload::text AS payload FROM events WHERE tenant = $1"

RESOLVE_ALIASES = """
SELECT u.i, a.rep_id
FROM unnest($1::int[], $2::text[], $3::text[], $4::text[]) AS u(i, tenant, kind, value)
JOIN rep_aliases a ON a.tenant = u.tenant AND a.kind = u.kind AND a.value = u.value
"""

# rep_id NULL asks for the tenant's own timezone. Unknown tenants fold in UTC.
ZONES = """
SELECT u.tenant, u.rep_id, coalesce(r.timezone, t.timezone, 'UTC') AS timezone, r.rep_id IS NOT NULL AS known
FROM unnest($1::text[], $2::text[]) AS u(tenant, rep_id)
LEFT JOIN tenants t ON t.slug = u.tenant
LEFT JOIN reps r ON r.tenant = u.tenant AND r.rep_id = u.rep_id
"""

# SPEC 4: a canonical event naming an unknown rep registers it (active, tenant timezone).
REGISTER_REPS = """
INSERT INTO reps (tenant, rep_id, timezone)
SELECT u.tenant, u.rep_id, t.timezone
FROM unnest($1::text[], $2::text[]) AS u(tenant, rep_id)
JOIN tenants t ON t.slug = u.tenant
ORDER BY u.tenant, u.rep_id
ON CONFLICT (tenant, rep_id) DO NOTHING
"""

SAVE_OFFSETS = """
INSERT INTO consumer_offsets AS o (consumer_group, topic, partition, next_offset)
SELECT $1, $2, p, n FROM unnest($3::int[], $4::bigint[]) AS u(p, n)
ON CONFLICT (consumer_group, topic, partition) DO UPDATE
SET next_offset = EXCLUDED.next_offset, updated_at = now()
"""

LOAD_OFFSETS = """
SELECT partition, next_offset FROM consumer_offsets
WHERE consumer_group = $1 AND topic = $2 AND partition = any($3::int[])
"""


class Store:
    """The pool of one aggregator (or `salesloop replay-failed`) and the consumer group it commits for."""

    def __init__(self, pool: asyncpg.Pool, consumer_group: str, topic: str) -> None:
        self._pool = pool
        self.consumer_group = consumer_group
        self.topic = topic

    @classmethod
    async def open(cls, settings: Settings, *, max_connections: int = 3) -> Store:
        """A lazy pool: it opens no connection until asked, so the service starts with Postgres down."""
        pool = await asyncpg.create_pool(
            asyncpg_dsn(settings.database_url.get_secret_value()),
            min_size=0,
            max_size=max_connections,
            timeout=5,
            command_timeout=60,
            server_settings={"application_name": APPLICATION_NAME},
            init=prepare_connection,
        )
        return cls(pool, settings.consumer_group, settings.events_topic)

    async def close(self) -> None:
        await self._pool.close()

    async def ping(self, timeout_s: float = 2.0) -> bool:
        try:
            async with self._pool.acquire(timeout=timeout_s) as conn:
                await conn.fetchval("SELECT 1", timeout=timeout_s)
        except DB_ERRORS:
            return False
        return True

    async def load_offsets(self, partitions: Iterable[int]) -> dict[int, int]:
        """The next offset to read per partition, for those this consumer group has folded before."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(LOAD_OFFSETS, self.consumer_group, self.topic, sorted(partitions))
        return {r["partition"]: r["next_offset"] for r in rows}

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A batch transaction, with the cyclic garbage collector paused (gc_pause.py)."""
        with gc_pause.paused():
            async with self._pool.acquire() as conn, conn.transaction():
                yield conn

    async def save_offsets(self, conn: asyncpg.Connection, offsets: dict[int, int]) -> None:
        parts = sorted(offsets)
        await conn.execute(SAVE_OFFSETS, self.consumer_group, self.topic, parts, [offsets[p] for p in parts])


async def prepare_connection(conn: asyncpg.Connection) -> None:
    await conn.execute(CREATE_STAGE)


def columns(rows: Sequence[Sequence[Any]], width: int = 0) -> list[list[Any]]:
    """Rows -> one list per column, the shape `unnest($1::t[], ...)` takes (`width` empty ones if none)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(c) for c in zip(*rows, strict=True)]


async def insert_rows(conn: asyncpg.Connection, statement: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run an `unnest($1::t[], ...)` statement with these rows as its columns; nothing if no rows."""
    if rows:
        await conn.execute(statement, *columns(rows))


async def copy_new_rows(
    conn: asyncpg.Connection,
    table: str,
    names: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fallback: str,
) -> None:
    """Insert rows whose keys the table should not have yet with COPY, in a savepoint: binary COPY
    encodes no array per column and checks no conflict before each row, which for thousands of rows
    is most of what an `unnest` insert costs, in Python and in Postgres alike. Should a key be taken
    after all, the savepoint is rolled back and `fallback` (the `unnest($1::t[], ...)` insert with its
    ON CONFLICT clause) inserts the rows instead: the result is that of `fallback` either way."""
    if not rows:
        return
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(table, records=rows, columns=list(names))
    except asyncpg.UniqueViolationError:
        await conn.execute(fallback, *columns(rows))


def affected(status: str) -> int:
    """The row count of a command status such as "INSERT 0 <rows>" or "UPDATE <rows>"."""
    return int(status.rsplit(" ", 1)[-1])


async def share_rebuild_lock(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", REBUILD_LOCK_KEY)


async def take_rebuild_lock(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", REBUILD_LOCK_KEY)


class Aliased(Protocol):
    """An event or CRM update that may name a vendor identity (`rep_alias`) instead of a rep."""

    tenant: str
    rep_alias: tuple[str, str] | None
    rep_id: str | None


async def resolve_aliases(conn: asyncpg.Connection, items: Sequence[Aliased]) -> None:
    """Give every item without a rep but with a known vendor identity the rep it belongs to (SPEC 4).

    Each distinct identity is looked up once: an import's thousands of events name a few owners."""
    wanted: dict[tuple[str, str, str], list[int]] = {}
    for i, x in enumerate(items):
        if x.rep_id is None and x.rep_alias:
            wanted.setdefault((x.tenant, *x.rep_alias), []).append(i)
    if not wanted:
        return
    identities = list(wanted)
    rows = await conn.fetch(RESOLVE_ALIASES, *columns([(n, *k) for n, k in enumerate(identities)]))
    for row in rows:
        for i in wanted[identities[row["i"]]]:
            items[i].rep_id = row["rep_id"]


async def archive_events(conn: asyncpg.Connection, events: Sequence[Event]) -> list[Event]:
    """Insert distinct events into the archive; returns those it did not have yet, in stream order.
    Those it refuses as past its horizon are logged.

    The keys are inserted first (ARCHIVE_KEYS), then the new events are COPYed into their partitions:
    binary COPY writes a page of rows at a time and needs no staging of the payloads, which makes the
    archive about a quarter cheaper for Postgres than inserting them from a staging table."""
    if not events:
        return []
    try:
        await archive_partitions.KNOWN.ensure(conn, (e.occurred_at for e in events))
        await conn.copy_records_to_table(
            STAGE_TABLE, records=[(e.tenant, e.event_id, e.occurred_at) for e in events]
        )
        known = await conn.fetch(ARCHIVE_KEYS)
        new = _new(events, known)
        if new:
            await conn.copy_records_to_table("events", records=map(_event_row, new), columns=ARCHIVED)
    except DB_ERRORS:
        archive_partitions.KNOWN.forget()  # a month may have been dropped meanwhile
        raise
    return new


def _new(events: Sequence[Event], known: Sequence[asyncpg.Record]) -> list[Event]:
    """The events whose key ARCHIVE_KEYS did not find (`known`) nor refuse."""
    if not known:
        return list(events)
    if past := sum(r["past"] for r in known):
        log.warning("events past the archive's retention not folded", extra={"events": past})
    skipped = {(r["tenant"], r["event_id"]) for r in known}
    return [e for e in events if (e.tenant, e.event_id) not in skipped]


def _event_row(e: Event) -> tuple[Any, ...]:
    return (e.tenant, e.event_id, e.type, e.occurred_at, e.received_at, e.source, e.rep_id, e.contact_id,
            e.payload)  # fmt: skip


async def archive_updates(conn: asyncpg.Connection, updates: Sequence[CrmUpdate]) -> list[CrmUpdate]:
    """Insert distinct updates into `crm_updates`; returns those it did not have yet, in stream order."""
    if not updates:
        return []
    rows = [
        (u.tenant, u.update_id, u.source, u.entity, u.entity_id, u.property, u.value, u.occurred_at,
         u.received_at, *(u.rep_alias or (None, None)), u.rep_id)
        for u in updates
    ]  # fmt: skip
    new = {(r["tenant"], r["update_id"]) for r in await conn.fetch(ARCHIVE_UPDATES, *columns(rows))}
    return [u for u in updates if (u.tenant, u.update_id) in new]


def archived_update(row: asyncpg.Record) -> CrmUpdate:
    """An update as read back from `crm_updates` (ARCHIVED_UPDATES) for a rebuild."""
    alias = (row["alias_kind"], row["alias_value"]) if row["alias_kind"] is not None else None
    return CrmUpdate(
        row["tenant"], row["update_id"], row["source"], row["entity"], row["entity_id"], row["property"],
        row["value"], row["occurred_at"], row["received_at"], alias, row["rep_id"],
    )  # fmt: skip


class Zones:
    """The timezone of reps and tenants as the fold asks for them (`zone_of`), and the reps asked
    about that do not exist yet."""

    def __init__(self, found: dict[tuple[str, str | None], ZoneInfo], unknown: list[tuple[str, str]]) -> None:
        self._found = found
        self.unknown = unknown

    def zone_of(self, tenant: str, rep_id: str | None) -> ZoneInfo:
        return self._found.get((tenant, rep_id)) or self._found.get((tenant, None)) or UTC


async def zones(conn: asyncpg.Connection, pairs: Iterable[tuple[str, str | None]]) -> Zones:
    """Look up (tenant, rep_id) pairs; rep_id None asks for the tenant's own timezone."""
    asked = list(pairs)
    found: dict[tuple[str, str | None], ZoneInfo] = {}
    unknown: list[tuple[str, str]] = []
    if asked:
        for row in await conn.fetch(ZONES, *columns(asked)):
            found[(row["tenant"], row["rep_id"])] = _zone(row["timezone"])
            if row["rep_id"] is not None and not row["known"]:
                unknown.append((row["tenant"], row["rep_id"]))
    return Zones(found, sorted(unknown))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown timezone %r in the database; folding in UTC", name)
        return UTC


async def register_reps(conn: asyncpg.Connection, reps: Sequence[tuple[str, str]]) -> int:
    """Register the (tenant, rep_id) pairs as reps (sorted: lock order); returns how many were new."""
    if not reps:
        return 0
    return affected(await conn.execute(REGISTER_REPS, *columns(reps)))
