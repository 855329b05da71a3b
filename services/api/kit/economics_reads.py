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

Cost: every movement of the tenant before the window's end, grouped per account (a few per account
and month), and one row per rep, spend month and setting; cached per database snapshot, tenant and
window in `reads.cache`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from services.api.kit.economics import DAYS_PER_MONTH, AccountWindow, Summary, economics_summary, rep_cost
from services.api.kit.reads import AnswerKey, Reads, rollup_read
from services.api.kit.snapshot import AS_OF_SQL, SNAPSHOT_SQL, answer_key, tenant_probe
from services.api.kit.windows import WindowSpec, window_args, window_sql
from services.core.tenancy import known_zone_sql

QUERY = "economics_summary"
_MOVEMENTS = ("new", "reactivation", "expansion", "contraction", "churn")
_LAST = 'ORDER BY m.at DESC, m.rank DESC, m.event_id COLLATE "C" DESC'
_SUMS = ", ".join(
    f"coalesce(sum(m.amount) FILTER (WHERE m.inside AND m.movement = '{k}'), 0) AS {k}" for k in _MOVEMENTS
)
_COUNTS = ", ".join(f"count(*) FILTER (WHERE m.inside AND m.movement = '{k}') AS n_{k}" for k in _MOVEMENTS)

# $1 tenant, $2..$5 the window (kit.windows.window_args).
ECONOMICS = f"""
WITH w AS MATERIALIZED (
  SELECT d.start, d."end",
         timezone({known_zone_sql("t.timezone")}, d.start::timestamp) AS lo,
         timezone({known_zone_sql("t.timezone")}, (d."end" + 1)::timestamp) AS hi
  FROM tenants AS t CROSS JOIN LATERAL ({window_sql("t.timezone")}) AS d
  WHERE t.slug = $1
),
m AS (
  SELECT m.account_id, m.at, m.event_id, m.movement, m.mrr_after, abs(m.mrr_after - m.mrr_before) AS amount,
         m.at >= (SELECT lo FROM w) AS inside,
         CASE m.type WHEN 'subscription.started' THEN 0 WHEN 'subscription.canceled' THEN 2 ELSE 1 END AS rank
  FROM mrr_movements AS m
  WHERE m.tenant = $1 AND m.at < (SELECT hi FROM w)
),
per AS (
  SELECT m.account_id,
         coalesce((array_agg(m.mrr_after {_LAST}) FILTER (WHERE NOT m.inside))[1], 0) AS mrr_start,
         (array_agg(m.mrr_after {_LAST}))[1] AS mrr_end, {_SUMS}, {_COUNTS}
  FROM m GROUP BY m.account_id
),
accounts AS (
  SELECT coalesce(a.channel, (SELECT l.channel FROM leads AS l
                              WHERE l.tenant = a.tenant AND l.contact_id = a.contact_id)) AS channel,
         per.*
  FROM per JOIN subscription_accounts AS a ON a.tenant = $1 AND a.account_id = per.account_id
  WHERE per.mrr_start > 0 OR per.mrr_end > 0 OR per.n_new + per.n_reactivation + per.n_expansion
        + per.n_contraction + per.n_churn > 0
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
       (SELECT array_agg((channel, mrr_start, mrr_end, new, reactivation, expansion, contraction, churn,
                          n_new, n_reactivation, n_churn)) FROM accounts) AS accounts,
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
    accounts = [
        AccountWindow(
            ch, s, e, n, re, ex, co, cu, customers_new=nn, customers_reactivated=nr, customers_churned=nc
        )
        for ch, s, e, n, re, ex, co, cu, nn, nr, nc in r["accounts"] or ()
    ]
    summary = economics_summary(
        accounts,
        days=days,
        gross_margin=settings.gross_margin,
        marketing_spend={ch: float(a) for ch, a in r["spend"] or ()},
        sales_cost=sales_cost,
    )
    return EconomicsRead(start, end, r["as_of"], settings, summary, r["snapshot"])
