"""All SQL of coaching over time: the weeks due a snapshot, taking a week exactly once, storing its
reps' coaching, reading one rep's snapshot weeks back, and the group sums of the weeks computed
instead (one statement for all of them).

Weeks are Monday to Sunday in the tenant's timezone. Taking a week is guarded twice, in the
snapshot's own transaction: a transaction-scoped advisory lock per tenant and week, tried without
waiting, keeps a second process from queueing behind the first's computation; the marker row in
`coaching_snapshot_weeks`, inserted with ON CONFLICT DO NOTHING, is what makes the week taken
exactly once, also after the first process committed (and whatever the lock's hash collides with).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg
import orjson

from services.api.coaching.queries import (
    COUNTER_COLUMNS,
    REPS_VERSION,
    TALK_COLUMNS,
    GroupSums,
    employed_days_sql,
)
from services.api.kit.conversations import conversation_sums_sql
from services.api.kit.reads import ReadPool
from services.api.kit.snapshot import AS_OF_SQL, SNAPSHOT_SQL
from services.api.kit.sums import sums_sql
from services.api.kit.tenure import active_sql
from services.core.tenancy import known_zone_sql

# The two-key advisory lock space, apart from the aggregator's folds' classes.
_LOCK_CLASS = 0xC0AC4

_TENANT_ZONE = known_zone_sql("t.timezone")

# $1 now, $2 the days after a week's end before it is due, $3 at most this many tenants. A tenant
# created after the week ended has no snapshot of it: nobody watched that week (its numbers may
# still be arriving by import), so its history is computed.
DUE_WEEKS = f"""
SELECT t.slug AS tenant, d.week_start
FROM tenants AS t
CROSS JOIN LATERAL (
  SELECT (date_trunc('week', timezone({_TENANT_ZONE}, $1::timestamptz) - make_interval(days => $2)))::date
         - 7 AS week_start
) AS d
WHERE t.created_at < timezone({_TENANT_ZONE}, (d.week_start + 7)::timestamp)
  AND NOT EXISTS (
    SELECT 1 FROM coaching_snapshot_weeks AS s WHERE s.tenant = t.slug AND s.week_start = d.week_start
  )
ORDER BY random()
LIMIT $3
"""

TRY_LOCK = "SELECT pg_try_advisory_xact_lock($1, hashtext($2 || '/' || $3::date::text))"

CLAIM = """
INSERT INTO coaching_snapshot_weeks (tenant, week_start, window_start, window_end, as_of)
VALUES ($1::text, $2, $3, $4, (SELECT as_of FROM tenant_watermarks WHERE tenant = $1::text))
ON CONFLICT DO NOTHING
RETURNING taken_at
"""

STORE = """
INSERT INTO coaching_snapshots (tenant, week_start, rep_id, team, peer_group, focus, priorities, metrics)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb)
"""
COUNT = "UPDATE coaching_snapshot_weeks SET reps = $3 WHERE tenant = $1 AND week_start = $2"

# $1 tenant, $2 rep, $3 now: the probe of a rep's history; no row for an unknown rep.
HISTORY_PROBE = f"""
SELECT {SNAPSHOT_SQL} AS snapshot, {AS_OF_SQL} AS as_of,
       timezone({_TENANT_ZONE}, $3::timestamptz)::date AS today
FROM reps AS r JOIN tenants AS t ON t.slug = r.tenant
WHERE r.tenant = $1 AND r.rep_id = $2
"""

# $1 tenant, $2 rep, $3 and $4 the first and last week: every snapshot week, with the rep's row
# when the rep was coached that week.
REP_WEEKS = """
SELECT w.week_start, w.taken_at, s.rep_id, s.team, s.peer_group, s.focus, s.priorities, s.metrics
FROM coaching_snapshot_weeks AS w
LEFT JOIN coaching_snapshots AS s
  ON s.tenant = w.tenant AND s.week_start = w.week_start AND s.rep_id = $2
WHERE w.tenant = $1 AND w.week_start BETWEEN $3 AND $4
"""


# $1 tenant, $2 now, $3 the first window's first day (a Monday), $4 how many windows, $5 their length
# in weeks, each window starting a week after the one before, $6 a rep included whether active or
# not. The group of every window (queries.GROUP_SUMS with fixed dates, for each window): the active
# reps and $6, each with its sums over the window. Each rep's rollup rows of the whole span are one
# range of the primary key, summed per week (exactly: numeric as numeric), and the weeks per window.
_SPAN = "d.day >= $3::date AND d.day < $3::date + 7 * ($4::int + $5::int - 1)"


def _per_window(table: str, columns: tuple[str, ...], total: str) -> str:
    """SQL: the rep `r.rep_id`'s `columns` of `table` summed per window `k` (`total`: a window's weeks
    summed)."""
    return f"""(
    SELECT w.k, {total}
    FROM (
      SELECT (d.day - $3::date) / 7 AS week, {", ".join(f"sum(d.{c}) AS {c}" for c in columns)}
      FROM {table} AS d
      WHERE d.tenant = $1 AND d.rep_id = r.rep_id AND {_SPAN}
      GROUP BY 1
    ) AS s
    JOIN w ON s.week BETWEEN w.k AND w.k + $5::int - 1
    GROUP BY w.k
  )"""


_COUNTERS = (COUNTER_COLUMNS, sums_sql(COUNTER_COLUMNS, "s"))
_TALK = (TALK_COLUMNS, conversation_sums_sql(TALK_COLUMNS, "s"))
WEEKS_SUMS = f"""
WITH r AS MATERIALIZED (
  SELECT r.rep_id, r.team, r.hired_at, r.left_at FROM reps AS r
  WHERE r.tenant = $1 AND ({active_sql("r", "$2::timestamptz")} OR r.rep_id = $6::text)
),
w AS MATERIALIZED (
  SELECT k, ($3::date + 7 * k) AS start, ($3::date + 7 * (k + $5::int) - 1) AS "end"
  FROM generate_series(0, $4::int - 1) AS k
),
-- Materialized: each rep's sums are read once, not once per window of the join below.
sums AS MATERIALIZED (
  SELECT r.rep_id, s.* FROM r CROSS JOIN LATERAL {_per_window("rollup_rep_daily", *_COUNTERS)} AS s
),
talk AS MATERIALIZED (
  SELECT r.rep_id, t.* FROM r CROSS JOIN LATERAL {_per_window("conversation_rollups", *_TALK)} AS t
)
SELECT w.k, w.start, w."end", {SNAPSHOT_SQL} AS snapshot, {AS_OF_SQL} AS as_of,
       {REPS_VERSION} AS reps_version, r.rep_id, r.team, r.hired_at,
       {employed_days_sql("w.start", 'w."end"')} AS employed_days,
       {", ".join(f"coalesce(s.{c}, 0) AS {c}" for c in COUNTER_COLUMNS)},
       {", ".join(f"coalesce(t.{c}, 0) AS {c}" for c in TALK_COLUMNS)}
FROM w
LEFT JOIN r ON true
LEFT JOIN sums AS s ON s.k = w.k AND s.rep_id = r.rep_id
LEFT JOIN talk AS t ON t.k = w.k AND t.rep_id = r.rep_id
ORDER BY w.k, r.rep_id
"""


@dataclass(frozen=True)
class Due:
    tenant: str
    week_start: date


@dataclass(frozen=True)
class HistoryProbe:
    """What a rep's history sees: the database snapshot, the tenant's watermark and its local day."""

    snapshot: str
    as_of: datetime | None
    today: date


@dataclass(frozen=True)
class SnapshotRow:
    """A snapshot week, with the rep's coaching in it (`coaching` None: the rep was not coached)."""

    week_start: date
    taken_at: datetime
    coaching: dict[str, Any] | None


async def due_weeks(pool: asyncpg.Pool, now: datetime, grace_days: int, limit: int) -> list[Due]:
    """Tenants whose last week ended at least `grace_days` ago (their time) and has no snapshot;
    at most `limit`, in random order, so that processes spread over them."""
    rows = await pool.fetch(DUE_WEEKS, now, grace_days, limit)
    return [Due(r["tenant"], r["week_start"]) for r in rows]


async def claim_week(
    conn: asyncpg.Connection, tenant: str, week_start: date, window: tuple[date, date]
) -> bool:
    """Take the week in the caller's transaction; False when another process has it or had it."""
    if not await conn.fetchval(TRY_LOCK, _LOCK_CLASS, tenant, week_start):
        return False
    return await conn.fetchval(CLAIM, tenant, week_start, *window) is not None


async def store_week(
    conn: asyncpg.Connection, tenant: str, week_start: date, coachings: Mapping[str, Mapping[str, Any]]
) -> None:
    """Each rep's coaching (a coaching answer's fields) in the claimed week, in the caller's transaction."""
    rows = [
        (
            tenant,
            week_start,
            rep_id,
            c.get("team"),
            c.get("peer_group"),
            list(c.get("focus", ())),
            orjson.dumps(c.get("priorities", [])).decode(),
            orjson.dumps(c["metrics"]).decode(),
        )
        for rep_id, c in coachings.items()
    ]
    await conn.executemany(STORE, rows)
    await conn.execute(COUNT, tenant, week_start, len(rows))


async def history_probe(pool: ReadPool, tenant: str, rep_id: str, now: datetime) -> HistoryProbe | None:
    row = await pool.fetchrow(HISTORY_PROBE, tenant, rep_id, now)
    return None if row is None else HistoryProbe(row["snapshot"], row["as_of"], row["today"])


async def rep_weeks(pool: ReadPool, tenant: str, rep_id: str, weeks: Sequence[date]) -> list[SnapshotRow]:
    """The snapshot weeks among `weeks` (Mondays, oldest first), with the rep's coaching in each."""
    rows = await pool.fetch(REP_WEEKS, tenant, rep_id, weeks[0], weeks[-1])
    return [SnapshotRow(r["week_start"], r["taken_at"], _coaching(r)) for r in rows]


def _coaching(row: asyncpg.Record) -> dict[str, Any] | None:
    if row["rep_id"] is None:
        return None
    return {
        "team": row["team"],
        "peer_group": row["peer_group"],
        "focus": list(row["focus"]),
        "priorities": orjson.loads(row["priorities"]),
        "metrics": orjson.loads(row["metrics"]),
    }


async def weeks_sums(
    pool: ReadPool, tenant: str, rep_id: str, first: date, windows: int, weeks: int, now: datetime
) -> list[GroupSums]:
    """The groups of `windows` windows of `weeks` weeks each, the first from `first`, the next a week
    later each: the tenant's active reps and `rep_id`, with their sums (queries.GROUP_COLUMNS)."""
    rows = await pool.fetch(WEEKS_SUMS, tenant, now, first, windows, weeks, rep_id)
    by_window: dict[int, list[Any]] = {}
    for row in rows:
        by_window.setdefault(row["k"], []).append(row)
    out = []
    for k in sorted(by_window):
        head, reps = by_window[k][0], [r for r in by_window[k] if r["rep_id"] is not None]
        out.append(
            GroupSums(head["snapshot"], head["start"], head["end"], head["as_of"], reps, head["reps_version"])
        )
    return out
