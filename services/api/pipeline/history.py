"""Each stage's record over the last 365 days, read at most once a minute per tenant.

The forecast weighs a stage without a probability by its `won_from_stage` over the deals created in
the last 365 full days, and a stale deal is one longer in its stage than the stage's 90th percentile
over the stays completed in those days. Both sum up a year of stays (about four per deal): the most
costly part of those answers by far, and the part that moves least: one more won deal moves a rate
over thousands by a fraction of a percent. So it is not read again for every database snapshot, as
the answers are (services/api/kit/reads.py): a tenant's record is kept for `TTL_S` and while the
365 days are the same days, requests that need it meanwhile share one read, and after the TTL the
record in hand is served while the next one is read in the background, so that no request of a
tenant read at least every ten minutes waits for a year of stays. Everything else in
those answers (open deals, their stages, amounts, close dates, wins, activity) is read with the answer.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from services.api.kit.reads import ReadPool
from services.api.kit.windows import WindowSpec
from services.api.pipeline import queries
from services.api.pipeline.queries import StageHistoryRow

TTL_S = 60.0
# A record this many TTLs old is still served while the next one is read; an older one is not.
SERVED_TTLS = 10
MAX_TENANTS = 1024
DAYS = WindowSpec(days=365)


@dataclass(frozen=True)
class StageHistory:
    """A tenant's stages over the 365 days `start`..`end`."""

    start: date
    end: date
    stages: Sequence[StageHistoryRow]


Read = Callable[[], Awaitable[StageHistory | None]]


class HistoryCache:
    """Each tenant's latest record, the least recently used tenant dropped first."""

    def __init__(
        self,
        ttl_s: float = TTL_S,
        max_tenants: int = MAX_TENANTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[str, tuple[float, StageHistory]] = OrderedDict()
        self._pending: dict[tuple[str, date], asyncio.Future[StageHistory | None]] = {}
        self._ttl, self._max, self._clock = ttl_s, max_tenants, clock

    async def get(self, tenant: str, end: date, read: Read) -> StageHistory | None:
        """The record of `tenant` for the 365 days up to `end`: the one in hand while it is younger
        than the TTL; one up to `SERVED_TTLS` TTLs old while a new one is read in the background;
        else a new one, read once for all who ask meanwhile. None for an unknown tenant."""
        found = self._entries.get(tenant)
        if found is not None and found[1].end == end:
            age = self._clock() - found[0]
            if age < self._ttl * SERVED_TTLS:
                self._entries.move_to_end(tenant)
                if age >= self._ttl:
                    self._reading(tenant, end, read)
                return found[1]
        # Shielded: a client that hangs up must not cancel the read others wait for.
        return await asyncio.shield(self._reading(tenant, end, read))

    def _reading(self, tenant: str, end: date, read: Read) -> asyncio.Future[StageHistory | None]:
        key = (tenant, end)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.ensure_future(self._read(tenant, key, read))
            pending.add_done_callback(_retrieve)
        return pending

    async def _read(self, tenant: str, key: tuple[str, date], read: Read) -> StageHistory | None:
        try:
            history = await read()
        finally:
            del self._pending[key]
        if history is not None:
            self._entries[tenant] = (self._clock(), history)
            self._entries.move_to_end(tenant)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return history


def _retrieve(done: asyncio.Future[StageHistory | None]) -> None:
    # Marks a failure as seen even when every request that waited for it hung up meanwhile.
    if not done.cancelled():
        done.exception()


# One per process, like the answer cache's snapshot rule: every app of the process reads one database.
CACHE = HistoryCache()


async def stage_history(pool: ReadPool, tenant: str, end: date, now: datetime) -> StageHistory | None:
    """The tenant's record over the 365 days up to `end` (the day before `now`, locally)."""

    async def read() -> StageHistory | None:
        found = await queries.stage_history(pool, tenant, DAYS, now)
        return None if found is None else StageHistory(found[0].start, found[0].end, found[1])

    return await CACHE.get(tenant, end, read)
