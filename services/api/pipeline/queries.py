"""The SQL of the pipeline domain (SPEC 5.8): the tenant's stage order, stage statistics, velocity and
forecast, and the statement parts the deal lists (deal_queries.py) share.

Each read is one statement on the read pool (services/api/kit/reads.py) with the snapshot it saw. It
reads the state the pipeline fold keeps (`pipeline_deals`, `deal_stage_stays`, `contact_activity`,
and for a close date at a past moment `deal_changes`), never the event archive, and every part of it
is bounded by an index range that does not grow with older history: deals created or closed in the
window, open deals, stays of one stage completed in the last 365 days, one probe per stage for the
default order.

Parameters: $1 the tenant, $2..$5 a window (kit.windows.window_args); the others per statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.kit.reads import ReadPool
from services.api.kit.snapshot import AS_OF_SQL, SNAPSHOT_SQL
from services.api.kit.windows import WindowSpec, window_args, window_sql
from services.core.models import PipelineStage
from services.core.tenancy import known_zone_sql

_ZONE = known_zone_sql("t.timezone")
# `lo` and `hi`: local midnight of the window's first day and of the day after its last, as instants.
WINDOW = f"""w AS MATERIALIZED (
  SELECT d.start, d."end", timezone({_ZONE}, d.start::timestamp) AS lo,
         timezone({_ZONE}, (d."end" + 1)::timestamp) AS hi
  FROM tenants AS t CROSS JOIN LATERAL ({window_sql("t.timezone")}) AS d
  WHERE t.slug = $1
)"""


def days(later: str, earlier: str) -> str:
    """Days between two instants, as float8."""
    return f"(date_part('epoch', {later} - {earlier}) / 86400)"


# Every stage the tenant's deals entered (needs WITH RECURSIVE), walked on the (tenant, stage,
# entered_at) index: one probe per stage.
SEEN = """seen(stage) AS (
  (SELECT s.stage FROM deal_stage_stays AS s WHERE s.tenant = $1 ORDER BY s.stage LIMIT 1)
  UNION ALL
  SELECT (SELECT s.stage FROM deal_stage_stays AS s
          WHERE s.tenant = $1 AND s.stage > seen.stage ORDER BY s.stage LIMIT 1)
  FROM seen WHERE seen.stage IS NOT NULL
)"""
# The stage order: the tenant's stages by position, then every other stage entered by first entry.
STAGE_ORDER = (
    SEEN
    + """,
ord AS MATERIALIZED (
  SELECT x.name, x.probability, x.configured,
         (row_number() OVER (ORDER BY x.configured DESC, x.position, x.first, x.name) - 1)::int AS pos
  FROM (
    SELECT p.name, p.probability, p.position, NULL::timestamptz AS first, true AS configured
    FROM pipeline_stages AS p WHERE p.tenant = $1
    UNION ALL
    SELECT seen.stage, NULL::numeric, NULL::int,
           (SELECT min(s.entered_at) FROM deal_stage_stays AS s WHERE s.tenant = $1 AND s.stage = seen.stage),
           false
    FROM seen
    WHERE seen.stage IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM pipeline_stages AS p WHERE p.tenant = $1 AND p.name = seen.stage)
  ) AS x
)"""
)

# Deals (or stays) owned by rep $6 and/or a rep of team $7, where given.
MEMBERS = "members AS (SELECT r.rep_id FROM reps AS r WHERE r.tenant = $1 AND r.team = $7)"


def owned_by(column: str) -> str:
    return (
        f"($6::text IS NULL OR {column} = $6) "
        f"AND ($7::text IS NULL OR {column} IN (SELECT rep_id FROM members))"
    )


@dataclass(frozen=True)
class Answer:
    """What a statement saw, and its rows."""

    start: date
    end: date
    as_of: datetime | None
    snapshot: str
    row: asyncpg.Record


async def read(pool: ReadPool, sql: str, *args: Any) -> Answer | None:
    """The one row of a statement that starts with `HEAD` (None for an unknown tenant)."""
    row = await pool.fetchrow(sql, *args)
    if row is None:
        return None
    return Answer(row["start"], row["end"], row["as_of"], row["snapshot"], row)


# The window, as_of and snapshot every statement reports first.
HEAD = f'SELECT w.start, w."end", {AS_OF_SQL} AS as_of, {SNAPSHOT_SQL} AS snapshot'

STAGES = f"""
WITH RECURSIVE {WINDOW},
{STAGE_ORDER},
{MEMBERS},
stays AS MATERIALIZED (
  SELECT s.deal_id, s.stage, s.entered_at, s.left_at, s.reached_later, s.won_after
  FROM deal_stage_stays AS s
  WHERE s.tenant = $1 AND s.deal_created_at >= (SELECT lo FROM w) AND s.deal_created_at < (SELECT hi FROM w)
    AND {owned_by("s.rep_id")}
),
per_deal AS (
  SELECT st.stage, bool_or(st.won_after) AS won,
         bool_or(st.won_after OR EXISTS (SELECT 1 FROM ord AS later
                                         WHERE later.name = ANY (st.reached_later) AND later.pos > o.pos))
           AS advanced
  FROM stays AS st JOIN ord AS o ON o.name = st.stage
  GROUP BY st.stage, st.deal_id
),
counts AS (
  SELECT stage, count(*) AS entered, count(*) FILTER (WHERE advanced) AS advanced,
         count(*) FILTER (WHERE won) AS won
  FROM per_deal GROUP BY stage
),
durations AS (
  SELECT stage, percentile_cont(ARRAY[0.5, 0.9]::float8[])
                  WITHIN GROUP (ORDER BY {days("left_at", "entered_at")}) AS q
  FROM stays WHERE left_at IS NOT NULL GROUP BY stage
),
open_now AS (
  SELECT d.stage, count(*) AS n FROM pipeline_deals AS d
  WHERE d.tenant = $1 AND d.status = 'open' AND d.stage IS NOT NULL AND {owned_by("d.rep_id")}
  GROUP BY d.stage
)
{HEAD},
       (SELECT array_agg((o.name, o.probability::float8, o.configured, coalesce(c.entered, 0),
                          coalesce(c.advanced, 0), coalesce(c.won, 0), du.q[1], du.q[2], coalesce(n.n, 0))
                         ORDER BY o.pos)
        FROM ord AS o LEFT JOIN counts AS c ON c.stage = o.name LEFT JOIN durations AS du ON du.stage = o.name
        LEFT JOIN open_now AS n ON n.stage = o.name) AS stages
FROM w
"""


@dataclass(frozen=True)
class StageRow:
    name: str
    probability: float | None
    configured: bool
    entered: int
    advanced: int
    won: int
    median_days: float | None
    p90_days: float | None
    open_now: int


async def stages(
    pool: ReadPool, tenant: str, spec: WindowSpec, now: datetime, rep_id: str | None, team: str | None
) -> tuple[Answer, list[StageRow]] | None:
    """Per stage, in order: the counts and stays of deals created in the window (of the rep's or the
    team's stays, where given) and the open deals now."""
    found = await read(pool, STAGES, tenant, *window_args(spec, now), rep_id, team)
    if found is None:
        return None
    return found, [StageRow(*r) for r in found.row["stages"] or ()]


VELOCITY = f"""
WITH {WINDOW},
members AS (SELECT r.rep_id, r.team FROM reps AS r WHERE r.tenant = $1),
facts AS (
  SELECT d.rep_id, d.status, d.amount, {days("d.closed_at", "d.created_at")} AS cycle, false AS created
  FROM pipeline_deals AS d
  WHERE d.tenant = $1 AND d.closed_at >= (SELECT lo FROM w) AND d.closed_at < (SELECT hi FROM w)
    AND d.status IN ('won', 'lost')
  UNION ALL
  SELECT d.created_rep_id, NULL, NULL, NULL, true
  FROM pipeline_deals AS d
  WHERE d.tenant = $1 AND d.created_at >= (SELECT lo FROM w) AND d.created_at < (SELECT hi FROM w)
),
keyed AS (
  SELECT CASE WHEN $6::text = 'team' THEN m.team ELSE f.rep_id END AS key, f.*
  FROM facts AS f LEFT JOIN members AS m ON m.rep_id = f.rep_id
),
grouped AS (
  SELECT key, grouping(key) = 1 AS total,
         count(*) FILTER (WHERE status = 'won') AS won, count(*) FILTER (WHERE status = 'lost') AS lost,
         coalesce(sum(amount) FILTER (WHERE status = 'won'), 0) AS revenue,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY cycle) FILTER (WHERE status = 'won') AS cycle,
         count(*) FILTER (WHERE created) AS opportunities
  FROM keyed GROUP BY GROUPING SETS ((key), ())
)
{HEAD},
       (SELECT array_agg((key, total, won, lost, revenue, cycle, opportunities)) FROM grouped) AS groups,
       (SELECT array_agg(DISTINCT CASE WHEN $6::text = 'team' THEN m.team ELSE m.rep_id END)
        FROM members AS m) AS keys
FROM w
"""


@dataclass(frozen=True)
class VelocityRow:
    key: str | None
    total: bool
    won: int
    lost: int
    revenue: Decimal
    cycle_median: float | None
    opportunities: int


async def velocity(
    pool: ReadPool, tenant: str, spec: WindowSpec, now: datetime, group: str
) -> tuple[Answer, list[VelocityRow], list[str]] | None:
    """Per rep or team (`group`) and in total: deals closed and created in the window; and the
    tenant's rep ids or team names."""
    found = await read(pool, VELOCITY, tenant, *window_args(spec, now), group)
    if found is None:
        return None
    rows = [VelocityRow(*r) for r in found.row["groups"] or ()]
    return found, rows, [k for k in found.row["keys"] or () if k is not None]


STAGE_HISTORY = f"""
WITH RECURSIVE {WINDOW},
{SEEN},
hist AS (
  -- Each deal's last stay in a stage (one per deal and stage) of deals created in the window.
  SELECT s.stage, count(*) AS entered, count(*) FILTER (WHERE s.won_after) AS won
  FROM deal_stage_stays AS s
  WHERE s.tenant = $1 AND s.deal_created_at >= (SELECT lo FROM w) AND s.deal_created_at < (SELECT hi FROM w)
    AND NOT s.stage = ANY (s.reached_later)
  GROUP BY s.stage
),
p90 AS (
  -- One index range per stage: its stays completed in the window.
  SELECT x.stage, q.p90 FROM seen AS x CROSS JOIN LATERAL (
    SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY {days("s.left_at", "s.entered_at")}) AS p90
    FROM deal_stage_stays AS s
    WHERE s.tenant = $1 AND s.stage = x.stage
      AND s.left_at >= (SELECT lo FROM w) AND s.left_at < (SELECT hi FROM w)
  ) AS q
  WHERE x.stage IS NOT NULL
)
{HEAD},
       (SELECT array_agg((p.stage, coalesce(h.entered, 0), coalesce(h.won, 0), p.p90))
        FROM p90 AS p LEFT JOIN hist AS h ON h.stage = p.stage) AS stages
FROM w
"""


@dataclass(frozen=True)
class StageHistoryRow:
    stage: str
    entered: int
    won: int
    p90_days: float | None


async def stage_history(
    pool: ReadPool, tenant: str, spec: WindowSpec, now: datetime
) -> tuple[Answer, list[StageHistoryRow]] | None:
    """Per stage ever entered: of the deals created in the window, those that entered it and those
    won; and the 90th percentile of days of its stays completed in the window."""
    found = await read(pool, STAGE_HISTORY, tenant, *window_args(spec, now))
    if found is None:
        return None
    return found, [StageHistoryRow(*r) for r in found.row["stages"] or ()]


# $2..$5 the period; $6..$8 per stage its historical entries and wins (queries.stage_history).
FORECAST = f"""
WITH {WINDOW},
prob AS (
  SELECT coalesce(p.name, h.name) AS name,
         coalesce(p.probability, h.won::numeric / nullif(h.entered, 0)) AS p
  FROM (SELECT name, probability FROM pipeline_stages WHERE tenant = $1) AS p
  FULL JOIN unnest($6::text[], $7::int[], $8::int[]) AS h(name, entered, won) ON h.name = p.name
),
open AS (
  SELECT d.rep_id, d.amount, d.forecast_category, pr.p
  FROM pipeline_deals AS d LEFT JOIN prob AS pr ON pr.name = d.stage
  WHERE d.tenant = $1 AND d.status = 'open'
    AND d.close_date >= (SELECT start FROM w) AND d.close_date <= (SELECT "end" FROM w)
),
per_rep AS (
  SELECT rep_id, count(*) AS open_count, coalesce(sum(amount), 0) AS open_amount,
         coalesce(sum(amount * p), 0) AS weighted,
         coalesce(sum(amount) FILTER (WHERE forecast_category = 'commit'), 0) AS commit,
         coalesce(sum(amount) FILTER (WHERE forecast_category IN ('commit', 'best_case')), 0) AS best_case,
         count(*) FILTER (WHERE p IS NULL) AS without_probability, 0::numeric AS won
  FROM open GROUP BY rep_id
  UNION ALL
  SELECT d.rep_id, 0, 0, 0, 0, 0, 0, coalesce(sum(d.amount), 0)
  FROM pipeline_deals AS d
  WHERE d.tenant = $1 AND d.closed_at >= (SELECT lo FROM w) AND d.closed_at < (SELECT hi FROM w)
    AND d.status = 'won'
  GROUP BY d.rep_id
)
{HEAD},
       (SELECT array_agg((rep_id, open_count, open_amount, weighted, commit, best_case,
                          without_probability, won)) FROM per_rep) AS sums,
       (SELECT array_agg((r.rep_id, r.team, r.quota_monthly) ORDER BY r.rep_id)
        FROM reps AS r WHERE r.tenant = $1) AS reps
FROM w
"""


@dataclass(frozen=True)
class ForecastSums:
    """One owner's open deals closing in the period and its wins in it (a rep may have two rows)."""

    rep_id: str | None
    open_count: int
    open_amount: Decimal
    weighted: Decimal
    commit: Decimal
    best_case: Decimal
    without_probability: int
    won: Decimal


async def forecast(
    pool: ReadPool, tenant: str, period: WindowSpec, now: datetime, history: Sequence[StageHistoryRow]
) -> tuple[Answer, list[ForecastSums], list[tuple[str, str | None, Decimal | None]]] | None:
    """Sums per owner for the period, each stage weighted by the tenant's probability, else by its
    won / entered in `history`; and every rep with its team and quota."""
    arrays = ([h.stage for h in history], [h.entered for h in history], [h.won for h in history])
    found = await read(pool, FORECAST, tenant, *window_args(period, now), *arrays)
    if found is None:
        return None
    sums = [ForecastSums(*r) for r in found.row["sums"] or ()]
    return found, sums, [tuple(r) for r in found.row["reps"] or ()]


async def put_stages(
    engine: AsyncEngine, tenant: str, stages: Sequence[tuple[str, Decimal | None]]
) -> list[tuple[str, Decimal | None]]:
    """Replace the tenant's stage order; returns it as stored."""
    async with engine.begin() as conn:
        await conn.execute(delete(PipelineStage).where(PipelineStage.tenant == tenant))
        if stages:
            rows = [
                {"tenant": tenant, "position": i, "name": name, "probability": p}
                for i, (name, p) in enumerate(stages)
            ]
            await conn.execute(insert(PipelineStage), rows)
        result = await conn.execute(
            select(PipelineStage.name, PipelineStage.probability)
            .where(PipelineStage.tenant == tenant)
            .order_by(PipelineStage.position)
        )
        return [(r.name, r.probability) for r in result]
