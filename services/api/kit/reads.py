"""The feedback reads: their own connection pool, a snapshot-keyed answer cache, JSON answers.

Hot reads (rep metrics, coaching, demand channels) are single statements on a plain asyncpg pool:
one round trip each. Through the SQLAlchemy engine the same read costs six (a BEGIN, ping and
ROLLBACK at checkout, then BEGIN, the statement and ROLLBACK); writes and the other reads keep the
engine.

Answers that take real work are cached under the database snapshot they were read in
(`pg_current_snapshot()`: xmin, xmax and the transactions in progress). Two statements with the
same snapshot see exactly the same rows, so a cached answer is only served to a request whose own
snapshot, taken by a one-row probe, is identical. Any commit since (a folded batch, a rebuild, a
CRM re-attribution, a PUT of a rep, in any tenant) changes the snapshot and the next read
recomputes: nothing folded is ever hidden. The tenant's watermark would not do as a version: a
rebuild or a CRM owner change moves rollups without advancing it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from fastapi.responses import Response
from prometheus_client import Counter, Histogram
from pydantic import BaseModel
from pydantic_core import to_json

from services.core.db import asyncpg_dsn
from services.core.http import database_unavailable
from services.core.observability import LATENCY_BUCKETS, child
from services.core.settings import Settings

log = logging.getLogger(__name__)
V = TypeVar("V")

APPLICATION_NAME = "salesloop-api-reads"
CACHE_ENTRIES = 512

CACHE_LOOKUPS = Counter(
    "salesloop_api_answer_cache_total",
    "Cached feedback answers looked up, by answer kind and whether the snapshot's answer was there",
    ["query", "result"],
)

ROLLUP_READ_SECONDS = Histogram(
    "salesloop_api_rollup_read_seconds",
    "Time to read the rollups behind one answer (one database round trip)",
    ["query"],
    buckets=LATENCY_BUCKETS,
)


@contextmanager
def rollup_read(query: str) -> Iterator[None]:
    """Time a rollup read; `query` is a fixed name per call site (rep_metrics, team_metrics, ...)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        ROLLUP_READ_SECONDS.labels(query).observe(time.perf_counter() - start)


# A connection Postgres dropped (restart, failover, pg_terminate_backend): the pool is renewed and
# the read tried once more. A connection that got the server's goodbye but not yet the end of the
# stream refuses the next statement with InternalClientError.
_LOST: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.exceptions.OperatorInterventionError,
    OSError,
)
_UNAVAILABLE: tuple[type[BaseException], ...] = (*_LOST, TimeoutError, asyncpg.TooManyConnectionsError)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Reads change no session state (no SET, locks, LISTEN or cursors), so a connection returned to
    the pool needs no RESET ALL: that would be a round trip per read. An open transaction, which a
    read never leaves, is still rolled back by asyncpg itself."""


class ReadPool:
    """Autocommit reads, one statement per round trip, prepared once per connection."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, settings: Settings) -> ReadPool:
        """A lazy pool: no connection until the first read, so the api starts while Postgres is down."""
        pool = await asyncpg.create_pool(
            asyncpg_dsn(settings.database_url.get_secret_value()),
            min_size=0,
            max_size=settings.db_pool_size,
            timeout=5,
            command_timeout=30,
            server_settings={"application_name": APPLICATION_NAME},
            reset=_keep_session,
        )
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._run("fetchrow", sql, args)
        return row

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._run("fetch", sql, args)
        return rows

    async def _run(self, method: str, sql: str, args: tuple[Any, ...]) -> Any:
        for attempt in (1, 2):
            try:
                async with self._pool.acquire() as conn:
                    return await getattr(conn, method)(sql, *args)
            except asyncpg.SerializationError:
                # On a read replica: cancelled by a conflict with the WAL it replays (rows the statement
                # still needed were removed). Read again at a newer snapshot, once.
                if attempt == 1:
                    continue
                raise database_unavailable("the numbers cannot be read right now; retry later") from None
            except _UNAVAILABLE as exc:
                if attempt == 1 and isinstance(exc, _LOST):
                    # Every idle connection of the pool is likely as dead as this one.
                    await self._pool.expire_connections()
                    continue
                log.warning("database unavailable for a read; answering 503", extra={"error": repr(exc)})
                raise database_unavailable("the numbers cannot be read right now; retry later") from None
        raise AssertionError("unreachable")


@dataclass(frozen=True)
class AnswerKey:
    """What a cached answer depends on: the database snapshot it was read at (`pg_current_snapshot()`
    as text, `xmin:xmax:xip,...`) and everything else (the read, tenant, window, parameters)."""

    snapshot: str
    parts: tuple[Hashable, ...]

    @property
    def xmax(self) -> int:
        """The first transaction id the snapshot has not seen: it only grows, commit after commit."""
        return int(self.snapshot.split(":", 2)[1])


class AnswerCache:
    """Answers by key, the least recently used dropped first; concurrent misses of a key compute once.

    A computation returns the key its answer belongs under (the snapshot and window its own
    statement saw) with the answer; requests that missed on the same probe key share it. That answer
    is at least as fresh as each of them needs: they probed the same snapshot, so nothing committed
    between their probes, and the computation's statement ran after the first of them.

    Once an answer is read at a newer snapshot (a greater xmax), no probe can return an older one
    again: the answers read before it are dropped at once, so memory holds the current answers only,
    however often the database commits.
    """

    def __init__(self, max_entries: int = CACHE_ENTRIES) -> None:
        self._entries: OrderedDict[AnswerKey, Any] = OrderedDict()
        self._pending: dict[AnswerKey, asyncio.Future[Any]] = {}
        self._max = max_entries
        self._xmax = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    async def get(
        self, query: str, key: AnswerKey, compute: Callable[[], Awaitable[tuple[AnswerKey, V]]]
    ) -> V:
        """The answer under `key`, else `compute()`d once for all requests that ask meanwhile."""
        if key in self._entries:
            self._entries.move_to_end(key)
            child(CACHE_LOOKUPS, query, "hit").inc()
            found: V = self._entries[key]
            return found
        child(CACHE_LOOKUPS, query, "miss").inc()
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.ensure_future(self._compute(key, compute))
            pending.add_done_callback(_retrieve)
        # Shielded: a client that hangs up must not cancel the work other requests wait for.
        shared: V = await asyncio.shield(pending)
        return shared

    async def _compute(self, key: AnswerKey, compute: Callable[[], Awaitable[tuple[AnswerKey, V]]]) -> V:
        try:
            own_key, answer = await compute()
        finally:
            del self._pending[key]
        if own_key.xmax < self._xmax:
            return answer  # read before what the cache holds now: no probe will ask for it again
        if own_key.xmax > self._xmax:
            self._xmax = own_key.xmax
            for older in [k for k in self._entries if k.xmax < own_key.xmax]:
                del self._entries[older]
        self._entries[own_key] = answer
        self._entries.move_to_end(own_key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return answer


def _retrieve(done: asyncio.Future[Any]) -> None:
    # Marks a failure as seen even when every request that waited for it hung up meanwhile.
    if not done.cancelled():
        done.exception()


@dataclass(frozen=True)
class Reads:
    """What the hot read routes need from the app."""

    pool: ReadPool
    cache: AnswerCache


def json_answer(body: Any) -> bytes:
    """The JSON of an answer built from plain values, as pydantic writes the response models
    (dates ISO 8601, UTC as `Z`, floats shortest round-trip, a non-finite float as null)."""
    return to_json(body, inf_nan_mode="null")


def model_json(model: BaseModel) -> bytes:
    """The JSON a response model writes of itself, as FastAPI would send it (aliases applied)."""
    return to_json(model, by_alias=True)


def json_response(content: bytes) -> Response:
    return Response(content=content, media_type="application/json")
