"""The event archive's monthly partitions: made ahead and on demand, dropped whole by retention.

`events` is partitioned by month of `occurred_at` in UTC (migration 0016), the time the event itself
carries: every delivery of an event lands in the same month, a month's rollups and archive share
their time, and retention keeps what it says in event time. The aggregators keep the partitions
themselves, with no cron:

- `ensure` makes missing months under an advisory lock (PARTITION_LOCK_KEY), in the caller's
  transaction: a batch whose events occurred in a month without a partition (an import of old
  history) makes it before archiving them, and `run_pass` (run by retention.py when an aggregator
  starts, then every hour) makes the current month and MONTHS_AHEAD more. A month is made as a
  table of its own, then attached: ATTACH takes a SHARE UPDATE EXCLUSIVE lock on `events`, which
  neither batches nor readers wait for. With several aggregators, the lock makes each month once.
- `drop_expired` (every hour, when SALESLOOP_ARCHIVE_RETENTION_DAYS is not 0) drops the months that
  ended before the cutoff, never a row of a month still kept: (1) it moves the archive's horizon
  (`archive_horizon`) past the month, so no batch archives or folds an event of it again; (2) detaches
  the month with DETACH PARTITION CONCURRENTLY, which waits for batches in flight and blocks none;
  (3) deletes the dedupe keys of its events in chunks; (4) drops it. A pass interrupted between two
  steps is finished by the next one.

Rollups and folded state are never touched: they keep every month as it was folded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg

from services.core.models.archive import PARTITION_NAME
from services.core.settings import Settings

log = logging.getLogger(__name__)

TABLE = "events"
PARTITION_LOCK_KEY = 0x5A1E5102
MONTHS_AHEAD = 3
KEY_CHUNK = 10_000
DETACH_LOCK_TIMEOUT = "30s"

ATTACHED = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = $1::regclass AND NOT i.inhdetachpending
"""
DETACH_PENDING = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = $1::regclass AND i.inhdetachpending
"""
# Month tables that are no partition (any more): detached by a pass that stopped before dropping them.
LOOSE = """
SELECT c.relname FROM pg_class c
WHERE c.relkind = 'r' AND c.relname ~ $1 AND c.relnamespace = 'public'::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
"""
HORIZON = "SELECT kept_from FROM archive_horizon WHERE table_name = $1"
MOVE_HORIZON = """
INSERT INTO archive_horizon AS h (table_name, kept_from) VALUES ($1, $2)
ON CONFLICT (table_name) DO UPDATE SET kept_from = greatest(h.kept_from, EXCLUDED.kept_from)
"""


def month_of(at: datetime) -> date:
    """The first day of `at`'s month in UTC: the partition it belongs to."""
    utc = at.astimezone(UTC)
    return date(utc.year, utc.month, 1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def start_of(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def partition_name(month: date, table: str = TABLE) -> str:
    return f"{table}_p{month.year:04d}{month.month:02d}"


def month_of_name(name: str) -> date | None:
    m = PARTITION_NAME.match(name)
    return date(int(m["year"]), int(m["month"]), 1) if m else None


def expired(months: Iterable[date], cutoff: datetime) -> list[date]:
    """The months that ended at or before `cutoff`, oldest first: a month is dropped whole, once all of it
    is older than the retention."""
    return sorted(m for m in months if start_of(add_months(m, 1)) <= cutoff)


def cutoff(settings: Settings, now: datetime) -> datetime | None:
    """Events that occurred before this are past retention; None: retention is off."""
    days = settings.archive_retention_days
    return now - timedelta(days=days) if days else None


async def attached_months(conn: asyncpg.Connection, table: str = TABLE) -> set[date]:
    names = [r["relname"] for r in await conn.fetch(ATTACHED, table)]
    return {m for name in names if (m := month_of_name(name)) is not None}


async def horizon(conn: asyncpg.Connection, table: str = TABLE) -> datetime | None:
    kept_from: datetime | None = await conn.fetchval(HORIZON, table)
    return kept_from


async def ensure(conn: asyncpg.Connection, months: Iterable[date], table: str = TABLE) -> list[date]:
    """Make the partitions of `months` that do not exist yet, in the caller's transaction (committed with
    it); months before the horizon are not made again. Returns the months made."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK_KEY)
    have = await attached_months(conn, table)
    kept_from = await horizon(conn, table)
    made = []
    for month in sorted(set(months) - have):
        if kept_from is not None and start_of(add_months(month, 1)) <= kept_from:
            continue
        name, start, end = partition_name(month, table), start_of(month), start_of(add_months(month, 1))
        # A table of its own first: attaching it takes a lock that batches and readers do not wait for.
        await conn.execute(f"CREATE TABLE IF NOT EXISTS {name} (LIKE {table} INCLUDING DEFAULTS)")
        await conn.execute(
            f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ('{start.isoformat()}') "
            f"TO ('{end.isoformat()}')"
        )
        made.append(month)
    if made:
        log.info("archive partitions made", extra={"table": table, "months": [m.isoformat() for m in made]})
    return made


class Known:
    """The months this process knows to have a partition, so a batch asks Postgres only about new ones."""

    def __init__(self) -> None:
        self.months: set[date] = set()

    async def ensure(self, conn: asyncpg.Connection, occurred: Iterable[datetime]) -> None:
        wanted = {month_of(at) for at in occurred} - self.months
        if wanted:
            await ensure(conn, wanted)
            self.months |= wanted

    def forget(self) -> None:
        """After a failed batch: a month may have been dropped meanwhile."""
        self.months.clear()


KNOWN = Known()  # the aggregator process's


@dataclass(frozen=True)
class Dropped:
    months: list[date]
    keys: int  # dedupe keys deleted with them


async def drop_expired(pool: asyncpg.Pool, before: datetime, table: str = TABLE) -> Dropped:
    """Drop every month of `table` that ended at or before `before` (steps in the module docstring)."""
    months: list[date] = []
    keys = 0
    async with pool.acquire() as conn:
        for name in [r["relname"] for r in await conn.fetch(DETACH_PENDING, table)]:
            await conn.execute(f"ALTER TABLE {table} DETACH PARTITION {name} FINALIZE")
        for month in expired(await attached_months(conn, table), before):
            # Step 1: no batch archives an event of the month any more.
            await conn.execute(MOVE_HORIZON, table, start_of(add_months(month, 1)))
            # Step 2: out of the archive; waits for the batches that may still write to it.
            await conn.execute(f"SET lock_timeout = '{DETACH_LOCK_TIMEOUT}'")
            try:
                await conn.execute(
                    f"ALTER TABLE {table} DETACH PARTITION {partition_name(month, table)} CONCURRENTLY"
                )
            finally:
                await conn.execute("RESET lock_timeout")
            months.append(month)
        # Steps 3-4, for the months just detached and any a stopped pass left behind.
        for name in [r["relname"] for r in await conn.fetch(LOOSE, f"^{table}_p[0-9]{{6}}$")]:
            keys += await _drop_loose(conn, name)
    if months:
        log.info(
            "archive months dropped",
            extra={"table": table, "months": [m.isoformat() for m in months], "keys": keys},
        )
    return Dropped(months, keys)


CHUNK_OF_KEYS = """
SELECT tenant, event_id, occurred_at FROM {name} WHERE (tenant, event_id) > ($1, $2)
ORDER BY tenant, event_id LIMIT $3
"""
DELETE_KEYS = """
DELETE FROM event_keys k USING unnest($1::text[], $2::text[], $3::timestamptz[]) AS d(tenant, event_id, at)
WHERE k.tenant = d.tenant AND k.event_id = d.event_id AND k.occurred_at = d.at
"""


async def _drop_loose(conn: asyncpg.Connection, name: str) -> int:
    """Delete the dedupe keys of a detached month's events, a chunk at a time in key order, then drop it."""
    deleted, after = 0, ("", "")
    while rows := await conn.fetch(CHUNK_OF_KEYS.format(name=name), *after, KEY_CHUNK):
        status = await conn.execute(DELETE_KEYS, *(list(c) for c in zip(*rows, strict=True)))
        deleted += int(status.rsplit(" ", 1)[-1])
        after = (rows[-1]["tenant"], rows[-1]["event_id"])
    await conn.execute(f"DROP TABLE {name}")
    return deleted


async def run_pass(pool: asyncpg.Pool, settings: Settings, now: datetime) -> Dropped:
    """Make this month's partition and MONTHS_AHEAD more; drop the expired months."""
    this = month_of(now)
    async with pool.acquire() as conn, conn.transaction():
        await ensure(conn, [add_months(this, n) for n in range(MONTHS_AHEAD + 1)])
    before = cutoff(settings, now)
    return await drop_expired(pool, before) if before is not None else Dropped([], 0)
