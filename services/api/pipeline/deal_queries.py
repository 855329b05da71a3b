"""The SQL of the deal lists (SPEC 5.8 `GET /v1/pipeline/deals`): stale and slipped deals, each one
statement on the read pool, over the pipeline fold's tables and the statement parts of queries.py.

Stale: the tenant's open deals (the index range of its open deals) with their contacts' latest
activity, against each stage's p90 over the stays of that stage completed in the window (read once
for many answers: services/api/pipeline/history.py). Slipped: the deals changed since the period
began whose close date now lies after it (an index range per status) or that were lost since (the
range of deals closed since), with their close date at its first midnight (one probe of
`deal_changes` each).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from services.api.kit.reads import ReadPool
from services.api.kit.snapshot import AS_OF_SQL
from services.api.kit.windows import WindowSpec, window_args
from services.api.pipeline.queries import (
    HEAD,
    MEMBERS,
    WINDOW,
    Answer,
    StageHistoryRow,
    days,
    owned_by,
    read,
)

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
-- Each stage's p90 days over its stays completed in the window (queries.stage_history).
p90 AS (SELECT * FROM unnest($10::text[], $11::float8[]) AS h(stage, p90)),
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
{MEMBERS},
candidates AS (
  -- Changed since the period began, with a close date after it now: an index range per status.
  SELECT d.deal_id, d.rep_id, d.stage, d.amount, d.status, d.closed_at, d.stage_entered_at, d.close_date
  FROM pipeline_deals AS d
  WHERE d.tenant = $1 AND d.status IN ('open', 'won', 'lost') AND d.close_date > (SELECT "end" FROM w)
    AND d.updated_at >= (SELECT lo FROM w)
  UNION
  -- Lost since: the range of deals closed since (bounded on both sides, so that the planner takes it).
  SELECT d.deal_id, d.rep_id, d.stage, d.amount, d.status, d.closed_at, d.stage_entered_at, d.close_date
  FROM pipeline_deals AS d
  WHERE d.tenant = $1 AND d.closed_at >= (SELECT lo FROM w) AND d.closed_at < 'infinity'
    AND d.status = 'lost'
)
{HEAD},
       (SELECT array_agg((d.deal_id, d.rep_id, d.stage, d.amount,
                          {days(f"coalesce(d.closed_at, {AS_OF_SQL})", "d.stage_entered_at")},
                          d.close_date, c.value, d.close_date > w."end",
                          d.status = 'lost' AND d.closed_at >= w.lo))
        FROM candidates AS d
        CROSS JOIN LATERAL (
          -- The close date at the period's first midnight.
          SELECT x.value FROM deal_changes AS x
          WHERE x.tenant = $1 AND x.deal_id = d.deal_id AND x.kind = 'close_date' AND x.at <= w.lo
          ORDER BY x.at DESC, x.change_id DESC LIMIT 1
        ) AS c
        WHERE {owned_by("d.rep_id")}) AS deals
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
    pool: ReadPool, tenant: str, window: WindowSpec, now: datetime, history: Sequence[StageHistoryRow], *,
    stale_days: int, rep_id: str | None, team: str | None, limit: int,
) -> tuple[Answer, int, Decimal, list[DealRow]] | None:  # fmt: skip
    """Open deals over their stage's p90 in `history` (stays completed in the `window`) or whose
    contact had no call, email or meeting for `stale_days`: how many, their amount, the `limit`
    largest."""
    p90 = ([h.stage for h in history], [h.p90_days for h in history])
    args = (*window_args(window, now), rep_id, team, stale_days, limit, *p90)
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
