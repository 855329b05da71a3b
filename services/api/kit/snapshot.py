"""What an answer saw: the tenant's watermark (`as_of`), and the database snapshot and window days a
cached answer is kept under (services/api/kit/reads.py explains why the snapshot)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from services.api.kit.reads import AnswerKey, ReadPool
from services.api.kit.windows import WindowSpec, window_args, window_sql

# The tenant's watermark, $1 being the tenant: the `as_of` of every answer.
AS_OF_SQL = "(SELECT as_of FROM tenant_watermarks WHERE tenant = $1)"
# What a statement saw: equal snapshots see the same rows.
SNAPSHOT_SQL = "pg_current_snapshot()::text"

TENANT_PROBE = f"""
SELECT {SNAPSHOT_SQL} AS snapshot, w.start, w."end"
FROM tenants AS t CROSS JOIN LATERAL ({window_sql("t.timezone")}) AS w
WHERE t.slug = $1
"""


class Seen(Protocol):
    """A statement's view: the snapshot it read at and the days of its window."""

    @property
    def snapshot(self) -> str: ...

    @property
    def start(self) -> date: ...

    @property
    def end(self) -> date: ...


@dataclass(frozen=True)
class Probe:
    """What a cached answer must match: the snapshot a request sees and its window's days."""

    snapshot: str
    start: date
    end: date


def answer_key(query: str, seen: Seen, *parts: Hashable) -> AnswerKey:
    """The cache key of the answer `query` gives for `parts` (tenant, parameters) at what `seen` saw."""
    return AnswerKey(seen.snapshot, (query, seen.start, seen.end, *parts))


async def tenant_probe(pool: ReadPool, tenant: str, spec: WindowSpec, now: datetime) -> Probe | None:
    """The snapshot and the window in the tenant's timezone; None for an unknown tenant."""
    row = await pool.fetchrow(TENANT_PROBE, tenant, *window_args(spec, now))
    return None if row is None else Probe(row["snapshot"], row["start"], row["end"])
