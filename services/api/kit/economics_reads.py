"""Unit economics read for a window (SPEC 5.10): the accounts' MRR and movements, spend, rep costs and
the tenant's settings in one statement, and the summary of them (services/api/kit/economics.py).

    async def economics_read(reads: Reads, tenant: str, *, spec: WindowSpec, now: datetime)
        -> EconomicsRead | None   # None: no such tenant

The window is resolved in the tenant's timezone: its first day's local midnight to the local
midnight after its last day. An account's MRR at an instant is the account's MRR after its last
event before it, in the fold's order (services/aggregator/folds/subscriptions.py: time, then a start
first and a cancellation last, then event id). Its first-touch channel is its events' channel, else
its contact's lead's, looked up at read time, so a lead arriving after the billing claims it. Spend
is each month's amount in proportion to its days inside the window (as /v1/demand/channels does).
Reps' costs count the reps that are active or have left (an inactive rep without a leaving day
costs nothing: when it stopped is unknown).

Cost: an account's MRR at the window's start and end is its MRR now less its movements since, so
the read takes the movements from the window's start on (an index range) and every account that
paid before the window's end (a primary-key range), and one row per rep, spend month and setting;
cached per database snapshot, tenant and window in `reads.cache`. The accounts are added up per
channel in the statement, so what travels and what Python computes is a row per channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from services.api.kit.economics import DAYS_PER_MONTH, Summary, Totals, economics_summary, rep_cost
from services.api.kit.reads import AnswerKey, Reads, rollup_read
from services.api.kit.snapshot import AS_OF_SQL, SNAPSHOT_SQL, answer_key, tenant_probe
from services.api.kit.windows import WindowSpec, window_args, window_sql
from services.core.tenancy import known_zone_sql

QUERY = "economics_summary"
_MOVEMENTS = ("new", "reactivation", "expansion", "contraction", "churn")
_IN = "m.at < (SELECT hi FROM w)"  # a movement since the window's start that is in it
_SUMS = ", ".join(
    f"coalesce(sum(abs(m.mrr_after - m.mrr_before)) FILTER (WHERE {_IN} AND m.movement = '{k}'), 0) AS {k}"
    for k in _MOVEMENTS
)
_COUNTS = ", ".join(f"count(*) FILTER (WHERE {_IN} AND m.movement = '{k}') AS n_{k}" for k in _MOVEMENTS)
_ZEROED = ", ".join(f"coalesce(per.{c}, 0) AS {c}" for k in _MOVEMENTS for c in (k, f"n_{k}"))

# $1 tenant, $2..$5 the window (kit.windows.window_args).
ECONOMICS = f"""
WITH w AS MATERIALIZED (
  SELECT d.start, d."end",
         timezone({known_zone_sql("t.timezone")}, d.start::timestamp) AS lo,
         timezone({known_zone_sql("t.timezone")}, (d."end" + 1)::timestamp) AS hi
  FROM tenants AS t CROSS JOIN LATERAL ({window_sql("t.timezone")}) AS d
  WHERE t.slug = $1
),
-- The movements since the window's start, per account: what came after the window, and the window's.
m AS (
  SELECT m.account_id,
         coalesce(sum(m.mrr_after - m.mrr_before) FILTER (WHERE m.at >= (SELECT hi FROM w)), 0) AS later,
         coalesce(sum(m.mrr_after - m.mrr_before) FILTER (WHERE m.at < (SELECT hi FROM w)), 0) AS inside,
         count(*) FILTER (WHERE m.at < (SELECT hi FROM w)) AS moved,
         {_SUMS}, {_COUNTS}
  FROM mrr_movements AS m
  WHERE m.tenant = $1 AND m.at >= (SELECT lo FROM w) AND m.movement IS NOT NULL
  GROUP BY m.account_id
),
-- An account's MRR at an instant is its MRR now less the movements since: no history before the
-- window is read. Accounts that first paid after the window, or with nothing in it, drop out.
per AS (
  SELECT a.contact_id, a.channel, a.mrr - coalesce(m.later, 0) - coalesce(m.inside, 0) AS mrr_start,
         a.mrr - coalesce(m.later, 0) AS mrr_end, m.*
  FROM subscription_accounts AS a LEFT JOIN m ON m.account_id = a.account_id
  WHERE a.tenant = $1 AND a.first_paid_at < (SELECT hi FROM w)
),
-- A contact has at most one lead (its primary key): a join the planner may hash, not a probe per account.
accounts AS (
  SELECT coalesce(per.channel, l.channel) AS channel, per.mrr_start, per.mrr_end, {_ZEROED}
  FROM per LEFT JOIN leads AS l ON l.tenant = $1 AND l.contact_id = per.contact_id
  WHERE per.mrr_start > 0 OR per.mrr_end > 0 OR per.moved > 0
),
-- Per channel, in the order of kit.economics.Totals' fields.
groups AS (
  SELECT channel, sum(mrr_start), sum(mrr_end), sum(new), sum(reactivation), sum(expansion),
         sum(contraction), sum(churn), count(*) FILTER (WHERE mrr_start > 0),
         count(*) FILTER (WHERE mrr_end > 0), sum(n_new), sum(n_reactivation), sum(n_churn),
         count(*) FILTER (WHERE mrr_start > 0 AND mrr_end > 0),
         coalesce(sum(mrr_end) FILTER (WHERE mrr_start > 0), 0),
         coalesce(sum(least(mrr_start, mrr_end)) FILTER (WHERE mrr_start > 0), 0)
  FROM accounts GROUP BY channel
),
spend AS (
  SELECT s.channel,
         sum(s.amount * ((least(s.last, w."end") - greatest(s.month, w.start) + 1)::numeric
                         / (s.last - s.month + 1))) AS amount
  FROM w CROSS JOIN LATERAL (
    SELECT c.channel, c.month, c.amount, (c.month + interval '1 month' - interval '1 day')::date AS last
    FROM channel_spend AS c
    WHERE c.tenant = $1 AND c.month >= date_trunc('month', w.start)::date AND c.month <= w."end"
  ) AS s
  GROUP BY s.channel
)
SELECT w.start, w."end", {AS_OF_SQL} AS as_of, {SNAPSHOT_SQL} AS snapshot,
       (SELECT array_agg(g ORDER BY g.channel) FROM groups AS g) AS groups,
       (SELECT array_agg((channel, amount)) FROM spend) AS spend,
       (SELECT array_agg((r.monthly_cost, r.hired_at, r.left_at)) FROM reps AS r
        WHERE r.tenant = $1 AND r.monthly_cost IS NOT NULL AND (r.active OR r.left_at IS NOT NULL)) AS reps,
       e.tenant IS NOT NULL AS has_settings, e.gross_margin, e.sales_cost_monthly, e.failure_rate
FROM w LEFT JOIN economics_settings AS e ON e.tenant = $1
"""


@dataclass(frozen=True)
class Settings:
    """What the tenant set (None: not set); `failure_rate` None means measured, else 0.35."""

    gross_margin: float | None = None
    sales_cost_monthly: float = 0.0
    failure_rate: float | None = None


@dataclass(frozen=True)
class EconomicsRead:
    start: date
    end: date
    as_of: datetime | None
    settings: Settings
    summary: Summary
    snapshot: str


async def economics_read(
    reads: Reads, tenant: str, *, spec: WindowSpec, now: datetime
) -> EconomicsRead | None:
    """The window's unit economics, from the cache while the snapshot and the window are the same."""
    probe = await tenant_probe(reads.pool, tenant, spec, now)
    if probe is None:
        return None

    async def compute() -> tuple[AnswerKey, EconomicsRead | None]:
        with rollup_read(QUERY):
            row = await reads.pool.fetchrow(ECONOMICS, tenant, *window_args(spec, now))
        if row is None:
            return answer_key(QUERY, probe, tenant), None
        read = _from_row(row)
        return answer_key(QUERY, read, tenant), read

    return await reads.cache.get(QUERY, answer_key(QUERY, probe, tenant), compute)


def _from_row(r: asyncpg.Record) -> EconomicsRead:
    start, end = r["start"], r["end"]
    settings = Settings(
        gross_margin=None if r["gross_margin"] is None else float(r["gross_margin"]),
        sales_cost_monthly=float(r["sales_cost_monthly"] or 0),
        failure_rate=None if r["failure_rate"] is None else float(r["failure_rate"]),
    )
    days = (end - start).days + 1
    reps = r["reps"] or ()
    sales_cost: float | None = None
    if reps or r["has_settings"]:
        sales_cost = sum(rep_cost(c, hired_at=h, left_at=left, start=start, end=end) for c, h, left in reps)
        sales_cost += settings.sales_cost_monthly * days / DAYS_PER_MONTH
    groups = {g[0]: _totals(g) for g in r["groups"] or ()}
    summary = economics_summary(
        groups,
        days=days,
        gross_margin=settings.gross_margin,
        marketing_spend={ch: float(a) for ch, a in r["spend"] or ()},
        sales_cost=sales_cost,
    )
    return EconomicsRead(start, end, r["as_of"], settings, summary, r["snapshot"])


def _totals(g: Sequence[Any]) -> Totals:
    """A `groups` row: the channel, then Totals' fields in order."""
    return Totals(
        mrr_start=float(g[1]), mrr_end=float(g[2]), new=float(g[3]), reactivation=float(g[4]),
        expansion=float(g[5]), contraction=float(g[6]), churned=float(g[7]), customers_start=int(g[8]),
        customers_end=int(g[9]), customers_new=int(g[10]), customers_reactivated=int(g[11]),
        customers_churned=int(g[12]), retained=int(g[13]), retained_mrr=float(g[14]), kept_mrr=float(g[15]),
    )  # fmt: skip
