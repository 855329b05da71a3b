"""Weekly coaching snapshots, taken by the api itself: every api process runs `run` beside its routes
(started and stopped in the app's lifespan), so no cron outside the service is needed.

A pass looks for tenants whose last week (Monday to Sunday, their time) ended at least GRACE_DAYS
ago and has no snapshot, at most MAX_TENANTS_PER_PASS of them in random order, and snapshots each
in a transaction of its own: claim the week (history_queries explains the guard that lets exactly
one process have it), coach every active rep over the week's window as the coaching answer does
(history.tenant_week_coaching), store one row per rep, commit. A failure rolls the claim back with
the rest: the week is due again at the next pass. The grace leaves time for events still arriving
(vendor retries, reps whose Sunday ends up to a day after the tenant's).

Passes run a minute after the process starts, then every RUN_EVERY_S; right away again when a pass
met its bound, so a thousand tenants are done within minutes of Wednesday 00:00 without one pass
holding the database for long. Only the week just due is taken: a week no process was up to snapshot
stays computed on the fly by the history read, like the weeks before the first snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

import asyncpg
from prometheus_client import Counter, Histogram

from services.api.coaching import history, history_queries
from services.api.kit.reads import AnswerCache, ReadPool, Reads
from services.core.db import asyncpg_dsn
from services.core.http import ApiError
from services.core.observability import child
from services.core.settings import Settings

log = logging.getLogger(__name__)

APPLICATION_NAME = "salesloop-coaching-snapshots"
FIRST_RUN_AFTER_S = 60.0
RUN_EVERY_S = 600.0
AGAIN_AFTER_S = 1.0  # when a pass met its bound
GRACE_DAYS = 2
MAX_TENANTS_PER_PASS = 50

# What a failed database round trip raises here (the read pool turns its own into ApiError 503).
DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
    ApiError,
)

SNAPSHOT_WEEKS = Counter(
    "salesloop_api_coaching_snapshot_weeks_total",
    "Tenant weeks due a coaching snapshot, by what this process did: taken, skipped (another process "
    "has it) or failed (due again at the next pass)",
    ["result"],
)
PASS_SECONDS = Histogram(
    "salesloop_api_coaching_snapshot_pass_seconds",
    "Time of one coaching snapshot pass",
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0),
)


@dataclass(frozen=True)
class PassResult:
    taken: list[tuple[str, date]]  # the tenant weeks this pass snapshot
    skipped: int
    failed: int
    due: int


async def snapshot_week(
    pool: asyncpg.Pool, reads: Reads, tenant: str, week_start: date, now: datetime
) -> bool:
    """Snapshot the tenant's week unless another process has or had it; True when this call took it."""
    async with pool.acquire() as conn, conn.transaction():
        if not await history_queries.claim_week(conn, tenant, week_start, history.window_of(week_start)):
            return False
        coachings = await history.tenant_week_coaching(reads, tenant, week_start, now)
        await history_queries.store_week(conn, tenant, week_start, coachings)
    return True


async def run_pass(
    pool: asyncpg.Pool, reads: Reads, now: datetime, limit: int = MAX_TENANTS_PER_PASS
) -> PassResult:
    """One pass over at most `limit` due tenant weeks."""
    due = await history_queries.due_weeks(pool, now, GRACE_DAYS, limit)
    taken, skipped, failed = [], 0, 0
    for d in due:
        try:
            took = await snapshot_week(pool, reads, d.tenant, d.week_start, now)
        except DB_ERRORS as exc:
            log.warning(
                "coaching snapshot failed; due again at the next pass",
                extra={"tenant": d.tenant, "week_start": str(d.week_start), "error": repr(exc)},
            )
            failed += 1
            child(SNAPSHOT_WEEKS, "failed").inc()
            continue
        if took:
            taken.append((d.tenant, d.week_start))
        else:
            skipped += 1
        child(SNAPSHOT_WEEKS, "taken" if took else "skipped").inc()
    return PassResult(taken, skipped, failed, len(due))


async def run(pool: asyncpg.Pool, reads: Reads) -> None:
    """Pass after pass until cancelled; a pass that fails is tried at the next turn."""
    await asyncio.sleep(FIRST_RUN_AFTER_S)
    while True:
        start = time.perf_counter()
        try:
            result = await run_pass(pool, reads, datetime.now(UTC))
        except DB_ERRORS as exc:
            log.warning("coaching snapshot pass failed; trying again later", extra={"error": repr(exc)})
            result = None
        except Exception:
            # A bug met by one tenant's week must not end the snapshots of every tenant.
            log.exception("coaching snapshot pass failed")
            result = None
        PASS_SECONDS.observe(time.perf_counter() - start)
        if result is not None and result.due:
            log.info(
                "coaching snapshot pass",
                extra={"taken": len(result.taken), "skipped": result.skipped, "failed": result.failed},
            )
        more = result is not None and result.due >= MAX_TENANTS_PER_PASS and result.failed < result.due
        await asyncio.sleep(AGAIN_AFTER_S if more else RUN_EVERY_S)


@dataclass
class Snapshotter:
    """The api's snapshot task and the pool it writes with (two connections at most: the week's
    transaction and the reads of its computation). Lazy: no connection until the first pass."""

    pool: asyncpg.Pool
    task: asyncio.Task[None]

    @classmethod
    async def start(cls, settings: Settings) -> Snapshotter:
        pool = await asyncpg.create_pool(
            asyncpg_dsn(settings.database_url.get_secret_value()),
            min_size=0,
            max_size=2,
            timeout=5,
            command_timeout=60,
            server_settings={"application_name": APPLICATION_NAME},
        )
        # Its own answer cache: a snapshot's groups are read once and would only crowd the routes' out.
        reads = Reads(ReadPool(pool), AnswerCache(max_entries=4))
        return cls(pool, asyncio.create_task(run(pool, reads), name="coaching-snapshots"))

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.pool.close()
