"""All SQL of the aggregator: stored offsets, and the one transaction that commits a batch.

The archive's primary key is the dedupe: an event is folded by the transaction that archived it,
so a redelivered event (after a crash, a rebalance, a duplicate webhook) is recognised by whichever
consumer sees it and never counted twice. Offsets are written in the same transaction, so a batch is
either entirely in the rollups with its offsets or not at all.

Every multi-row statement sends its rows sorted by key: concurrent consumers then take row locks in
the same order and cannot deadlock (archive, reps, rep rollups, channel rollups, watermarks, offsets).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
from sqlalchemy import Numeric

from services.aggregator.crm import archive_updates
from services.aggregator.fold import Deltas, ZoneOf, distinct, fold
from services.aggregator.states import REBUILD_LOCK_KEY, STATE_FOLDS
from services.core.crm import CrmUpdate
from services.core.db import asyncpg_dsn
from services.core.models import CHANNEL_COUNTERS, REP_COUNTERS, ChannelDaily, RepDaily
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


def _upsert(table: Any, keys: tuple[str, ...], counters: tuple[str, ...]) -> str:
    """`INSERT .. SELECT FROM unnest(arrays) ON CONFLICT DO UPDATE SET c = r.c + EXCLUDED.c`."""
    columns = table.__table__.columns
    types = ["text", "text", "date"] + [
        "numeric" if isinstance(columns[c].type, Numeric) else "bigint" for c in counters
    ]
    arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=1))
    sets = ", ".join(f"{c} = r.{c} + EXCLUDED.{c}" for c in counters)
    return (
        f"INSERT INTO {table.__tablename__} AS r ({', '.join(keys + counters)}) "
        f"SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
    )


UPSERT_REP = _upsert(RepDaily, ("tenant", "rep_id", "day"), REP_COUNTERS)
UPSERT_CHANNEL = _upsert(ChannelDaily, ("tenant", "channel", "day"), CHANNEL_COUNTERS)

# The batch is COPYed into a per-connection staging table, then archived in key order (lock order).
STAGE_TABLE = "aggregator_stage_events"
CREATE_STAGE = f"""
CREATE TEMP TABLE IF NOT EXISTS {STAGE_TABLE} (
  i int, tenant text, event_id text, type text, occurred_at timestamptz, received_at timestamptz,
  source text, rep_id text, contact_id text, payload text
) ON COMMIT DELETE ROWS
"""
# Returns the positions of the events the archive already had: few rows, where the inserted ones
# would be thousands.
ARCHIVE = f"""
WITH inserted AS (
  INSERT INTO events (tenant, event_id, type, occurred_at, received_at, source, rep_id, contact_id, payload)
  SELECT tenant, event_id, type, occurred_at, received_at, source, rep_id, contact_id, payload::jsonb
  FROM {STAGE_TABLE}
  ORDER BY tenant, event_id
  ON CONFLICT (tenant, event_id) DO NOTHING
  RETURNING tenant, event_id
)
SELECT s.i FROM {STAGE_TABLE} s
WHERE NOT EXISTS (SELECT 1 FROM inserted n WHERE n.tenant = s.tenant AND n.event_id = s.event_id)
"""

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

UPSERT_WATERMARKS = """
INSERT INTO tenant_watermarks AS w (tenant, as_of, events_folded)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::bigint[])
ON CONFLICT (tenant) DO UPDATE
SET as_of = greatest(w.as_of, EXCLUDED.as_of), events_folded = w.events_folded + EXCLUDED.events_folded
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


@dataclass(frozen=True)
class BatchResult:
    folded: list[Event]  # the events this batch archived and counted
    duplicates: int  # deliveries of events archived before or earlier in the same batch
    registered_reps: int


class Store:
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
            init=_prepare_connection,
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

    async def commit_batch(
        self,
        events: Sequence[Event],
        offsets: Mapping[int, int],
        updates: Sequence[CrmUpdate] = (),
        also: Callable[[asyncpg.Connection], Awaitable[object]] | None = None,
    ) -> BatchResult:
        """Archive, fold and store one batch and its next offsets in one transaction.

        `offsets` maps every partition of the batch to its next offset, including partitions whose
        messages were all skipped. Of several deliveries of one event in the batch the first counts.
        `updates` are the batch's CRM entity updates, archived (and deduplicated) like events.
        `also` writes more rows in the same transaction (the batch's dead letters).
        """
        unique = distinct(events)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", REBUILD_LOCK_KEY)
            await _resolve_aliases(conn, unique)
            new = await _archive(conn, unique)
            zone_of, unknown_reps = await _zones(conn, new)
            registered = 0
            if unknown_reps:
                status = await conn.execute(REGISTER_REPS, *_columns(unknown_reps, 2))
                registered = int(status.rsplit(" ", 1)[-1])  # "INSERT 0 <rows>"
            new_updates = await archive_updates(conn, updates) if updates else []
            deltas = fold(new, zone_of)
            for state in STATE_FOLDS:
                extra = await state.apply(conn, new, zone_of, new_updates)
                if extra is not None:
                    deltas.merge(extra)
            await _write_deltas(conn, deltas)
            if also is not None:
                await also(conn)
            parts = sorted(offsets)
            await conn.execute(
                SAVE_OFFSETS, self.consumer_group, self.topic, parts, [offsets[p] for p in parts]
            )
        return BatchResult(new, len(events) - len(new), registered)


async def _prepare_connection(conn: asyncpg.Connection) -> None:
    await conn.execute(CREATE_STAGE)


async def _resolve_aliases(conn: asyncpg.Connection, events: Sequence[Event]) -> None:
    """Vendor events without a rep_id but with a known vendor identity get the rep it belongs to."""
    wanted = [(i, e.tenant, *e.rep_alias) for i, e in enumerate(events) if e.rep_id is None and e.rep_alias]
    if not wanted:
        return
    for row in await conn.fetch(RESOLVE_ALIASES, *_columns(wanted, 4)):
        events[row["i"]].rep_id = row["rep_id"]


async def _archive(conn: asyncpg.Connection, events: Sequence[Event]) -> list[Event]:
    """Insert into the archive; returns the events it did not have yet, in stream order."""
    if not events:
        return []
    await conn.copy_records_to_table(STAGE_TABLE, records=map(_archive_row, range(len(events)), events))
    known = {r[0] for r in await conn.fetch(ARCHIVE)}
    if not known:
        return list(events)
    return [e for i, e in enumerate(events) if i not in known]


def _archive_row(i: int, e: Event) -> tuple[Any, ...]:
    return (
        i,
        e.tenant,
        e.event_id,
        e.type,
        e.occurred_at,
        e.received_at,
        e.source,
        e.rep_id,
        e.contact_id,
        e.payload,
    )


async def _zones(conn: asyncpg.Connection, events: Sequence[Event]) -> tuple[ZoneOf, list[tuple[str, str]]]:
    """The fold's timezone lookup for these events, and the reps they name that do not exist yet."""
    pairs = list({(e.tenant, e.rep_id) for e in events} | {(e.tenant, None) for e in events})
    rep_zones: dict[tuple[str, str | None], ZoneInfo] = {}
    unknown: list[tuple[str, str]] = []
    if pairs:
        for row in await conn.fetch(ZONES, *_columns(pairs, 2)):
            rep_zones[(row["tenant"], row["rep_id"])] = _zone(row["timezone"])
            if row["rep_id"] is not None and not row["known"]:
                unknown.append((row["tenant"], row["rep_id"]))

    def zone_of(tenant: str, rep_id: str | None) -> ZoneInfo:
        return rep_zones.get((tenant, rep_id)) or rep_zones.get((tenant, None)) or UTC

    return zone_of, sorted(unknown)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown timezone %r in the database; folding in UTC", name)
        return UTC


async def _write_deltas(conn: asyncpg.Connection, deltas: Deltas) -> None:
    rep_rows = deltas.rep_rows()
    if rep_rows:
        await conn.execute(UPSERT_REP, *_columns(rep_rows, 3 + len(REP_COUNTERS)))
    channel_rows = deltas.channel_rows()
    if channel_rows:
        await conn.execute(UPSERT_CHANNEL, *_columns(channel_rows, 3 + len(CHANNEL_COUNTERS)))
    marks = deltas.watermark_rows()
    if marks:
        await conn.execute(UPSERT_WATERMARKS, *_columns(marks, 3))


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows -> one list per column, the shape `unnest($1::t[], ...)` takes."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(c) for c in zip(*rows, strict=True)]
