"""The SQL of the deal lists (SPEC 5.8 `GET /v1/pipeline/deals`): stale and slipped deals, each one
statement on the read pool, over the pipeline fold's tables and the statement parts of queries.py.

Stale: the tenant's open deals (the index range of its open deals), each stage's p90 over the stays
of that stage completed in the window (one index range per stage), the contacts' latest activity.
Slipped: the deals changed since the period began whose close date now lies after it or that were
lost since, with their close date at its first midnight (one probe of `deal_changes` each).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from services.api.kit.reads import ReadPool
from services.api.kit.snapshot import AS_OF_SQL
from services.api.kit.windows import WindowSpec, window_args
from services.api.pipeline.queries import HEAD, MEMBERS, WINDOW, Answer, days, owned_by, read

STALE = f"""
WITH {WINDOW},
{MEMBERS},
open AS MATERIALIZED (
  SELECT d.deal_id, d.rep_id, d.stage, d.amount, d.close_date, d.contact_id,
         {days(AS_OF_SQL, "d.stage_entered_at")} AS days_in_stage,
         coalesce(a.last_activity_at, d.created_at, d.stage_entered_at) AS quiet_since
  FROM pipeline_deals AS d
  LEFT JOIN contact_activity AS a ON a.tenant = d.tenant AND a.contact_id = d.contact_id
  WHERE d.tenant = $1 AND d.status = 'open' AND {owned_by("d.rep_id")}
),
p90 AS (
  SELECT x.stage,
         (SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY {days("s.left_at", "s.entered_at")})
          FROM deal_stage_stays AS s
          WHERE s.tenant = $1 AND s.stage = x.stage
            AND s.left_at >= (SELECT lo FROM w) AND s.left_at < (SELECT hi FROM w)) AS p90
  FROM (SELECT DISTINCT stage FROM open WHERE stage IS NOT NULL) AS x
),
matched AS MATERIALIZED (
  SELECT * FROM (
    SELECT o.*, coalesce(o.days_in_stage > p.p90, false) AS over_p90,
           coalesce(o.contact_id IS NOT NULL
                    AND o.quiet_since < {AS_OF_SQL} - make_interval(days => $8), false) AS quiet
    FROM open AS o LEFT JOIN p90 AS p ON p.stage = o.stage
  ) AS j
  WHERE over_p90 OR quiet
)
{HEAD},
       (SELECT count(*) FROM matched) AS count,
       (SELECT coalesce(sum(amount), 0) FROM matched) AS amount,
       (SELECT array_agg((m.deal_id, m.rep_id, m.stage, m.amount, m.days_in_stage, m.close_date, prev.value,
                          m.over_p90, m.quiet) ORDER BY m.amount DESC NULLS LAST, m.deal_id)
        FROM (SELECT * FROM matched ORDER BY amount DESC NULLS LAST, deal_id LIMIT $9) AS m
        LEFT JOIN LATERAL (
          -- The newest close date other than the current one.
          SELECT c.value FROM deal_changes AS c
          WHERE c.tenant = $1 AND c.deal_id = m.deal_id AND c.kind = 'close_date'
            AND left(c.value, 10) IS DISTINCT FROM to_char(m.close_date, 'YYYY-MM-DD')
          ORDER BY c.at DESC, c.change_id DESC LIMIT 1
        ) AS prev ON true) AS deals
FROM w
"""

SLIPPED = f"""
WITH {WINDOW},
{MEMBERS}
{HEAD},
       (SELECT array_agg((d.deal_id, d.rep_id, d.stage, d.amount,
                          {days(f"coalesce(d.closed_at, {AS_OF_SQL})", "d.stage_entered_at")},
                          d.close_date, c.value, d.close_date > w."end",
                          d.status = 'lost' AND d.closed_at >= w.lo))
        FROM pipeline_deals AS d
        CROSS JOIN LATERAL (
          -- The close date at the period's first midnight.
          SELECT x.value FROM deal_changes AS x
          WHERE x.tenant = d.tenant AND x.deal_id = d.deal_id AND x.kind = 'close_date' AND x.at <= w.lo
          ORDER BY x.at DESC, x.change_id DESC LIMIT 1
        ) AS c
        WHERE d.tenant = $1 AND d.updated_at >= w.lo
          AND (d.close_date > w."end" OR d.status = 'lost' AND d.closed_at >= w.lo)
          AND {owned_by("d.rep_id")}) AS deals
FROM w
"""


@dataclass(frozen=True)
class DealRow:
    """A listed deal; `close_date_then` is the raw value of the close date it is compared with."""

    deal_id: str
    rep_id: str | None
    stage: str | None
    amount: Decimal | None
    days_in_stage: float | None
    close_date: date | None
    close_date_then: str | None
    first_reason: bool
    second_reason: bool


async def stale(
    pool: ReadPool, tenant: str, history: WindowSpec, now: datetime, *, stale_days: int,
    rep_id: str | None, team: str | None, limit: int,
) -> tuple[Answer, int, Decimal, list[DealRow]] | None:  # fmt: skip
    """Open deals over their stage's p90 (stays completed in the `history` window) or whose contact
    had no call, email or meeting for `stale_days`: how many, their amount, the `limit` largest."""
    args = (*window_args(history, now), rep_id, team, stale_days, limit)
    found = await read(pool, STALE, tenant, *args)
    if found is None:
        return None
    rows = [DealRow(*r) for r in found.row["deals"] or ()]
    return found, found.row["count"], found.row["amount"], rows


async def slipped(
    pool: ReadPool, tenant: str, period: WindowSpec, now: datetime, rep_id: str | None, team: str | None
) -> tuple[Answer, list[DealRow]] | None:
    """Deals with a close date at the period's start whose close date now lies after the period, or
    lost since: the candidates, whose close date then the caller checks."""
    found = await read(pool, SLIPPED, tenant, *window_args(period, now), rep_id, team)
    if found is None:
        return None
    return found, [DealRow(*r) for r in found.row["deals"] or ()]
