"""All SQL of the demand-generation domain: the lead funnel and first-touch deal attribution per
channel over a window, and marketing spend.

The report is one statement on the read pool (services/api/kit/reads.py): the window, resolved to
instants once in the tenant's timezone, the lead funnel, the deals and the spend, with the snapshot
it saw. Nothing here reads the event archive: `leads` and `deal_facts` are kept by the aggregator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, func, literal_column
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.kit.reads import ReadPool
from services.api.kit.snapshot import AS_OF_SQL, SNAPSHOT_SQL
from services.api.kit.windows import WindowSpec, window_args, window_sql
from services.core.models import ChannelSpend
from services.core.tenancy import known_zone_sql


@dataclass(frozen=True)
class ChannelCounts:
    """One channel's counts over the window."""

    leads: int = 0
    mqls: int = 0
    sqls: int = 0
    deals_created: int = 0
    deals_won: int = 0
    revenue_won: Decimal | float = 0


@dataclass(frozen=True)
class Spend:
    channel: str
    month: date  # its first day
    amount: Decimal


@dataclass(frozen=True)
class ChannelData:
    """Per channel (None: no channel known) over the window: the counts, and the median speed to
    lead of the leads created in it; the spend per channel per month."""

    start: date
    end: date
    as_of: datetime | None
    counts: dict[str | None, ChannelCounts]
    speed_medians: dict[str | None, float]
    spend: dict[str, dict[date, Decimal]]
    snapshot: str


# $1 tenant, $2..$5 the window (kit.windows.window_args). `lo` and `hi` are local midnight of the
# first day and of the day after the last, as instants; read through scalar subqueries, evaluated
# once, so that they are index conditions.
CHANNELS = f"""
WITH w AS MATERIALIZED (
  SELECT d.start, d."end",
         timezone({known_zone_sql("t.timezone")}, d.start::timestamp) AS lo,
         timezone({known_zone_sql("t.timezone")}, (d."end" + 1)::timestamp) AS hi
  FROM tenants AS t CROSS JOIN LATERAL ({window_sql("t.timezone")}) AS d
  WHERE t.slug = $1
),
leads_in AS (
  -- Leads created, turned MQL or turned SQL in the window: three index ranges.
  SELECT l.channel, l.speed_s,
         l.created_at >= (SELECT lo FROM w) AND l.created_at < (SELECT hi FROM w) AS created,
         l.mql_at >= (SELECT lo FROM w) AND l.mql_at < (SELECT hi FROM w) AS mql,
         l.sql_at >= (SELECT lo FROM w) AND l.sql_at < (SELECT hi FROM w) AS sql
  FROM leads AS l
  WHERE l.tenant = $1
    AND (l.created_at >= (SELECT lo FROM w) AND l.created_at < (SELECT hi FROM w)
      OR l.mql_at >= (SELECT lo FROM w) AND l.mql_at < (SELECT hi FROM w)
      OR l.sql_at >= (SELECT lo FROM w) AND l.sql_at < (SELECT hi FROM w))
),
lead_counts AS (
  SELECT channel, count(*) FILTER (WHERE created) AS leads, count(*) FILTER (WHERE mql) AS mqls,
         count(*) FILTER (WHERE sql) AS sqls,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY speed_s)
           FILTER (WHERE created AND speed_s IS NOT NULL) AS speed
  FROM leads_in GROUP BY channel
),
deal_counts AS (
  -- A deal without a channel takes its contact's first-touch channel, looked up per deal (the
  -- contact's lead row, by primary key) at read time, so a lead arriving after its deal claims it.
  SELECT coalesce(f.channel, (SELECT l.channel FROM leads AS l
                              WHERE l.tenant = f.tenant AND l.contact_id = f.contact_id)) AS channel,
         count(*) FILTER (WHERE f.type = 'deal.created') AS created,
         count(*) FILTER (WHERE f.type = 'deal.won') AS won,
         coalesce(sum(f.amount) FILTER (WHERE f.type = 'deal.won'), 0) AS revenue
  FROM deal_facts AS f
  WHERE f.tenant = $1 AND f.occurred_at >= (SELECT lo FROM w) AND f.occurred_at < (SELECT hi FROM w)
    AND f.type IN ('deal.created', 'deal.won')
  GROUP BY 1
)
SELECT w.start, w."end", {AS_OF_SQL} AS as_of, {SNAPSHOT_SQL} AS snapshot,
       (SELECT array_agg((channel, leads, mqls, sqls, speed)) FROM lead_counts) AS leads,
       (SELECT array_agg((channel, created, won, revenue)) FROM deal_counts) AS deals,
       (SELECT array_agg((s.channel, s.month, s.amount)) FROM channel_spend AS s
        WHERE s.tenant = $1 AND s.month >= date_trunc('month', w.start)::date AND s.month <= w."end")
         AS spend
FROM w
"""


async def channel_data(pool: ReadPool, tenant: str, spec: WindowSpec, now: datetime) -> ChannelData | None:
    """The window's funnel counts per channel and the spend of the months it touches, in one
    statement; None for an unknown tenant."""
    row = await pool.fetchrow(CHANNELS, tenant, *window_args(spec, now))
    if row is None:
        return None
    counts: dict[str | None, ChannelCounts] = {}
    medians: dict[str | None, float] = {}
    for channel, leads, mqls, sqls, speed in row["leads"] or ():
        counts[channel] = ChannelCounts(leads=leads, mqls=mqls, sqls=sqls)
        if speed is not None:
            medians[channel] = speed
    for channel, created, won, revenue in row["deals"] or ():
        found = counts.get(channel, ChannelCounts())
        counts[channel] = replace(found, deals_created=created, deals_won=won, revenue_won=revenue)
    by_channel: dict[str, dict[date, Decimal]] = {}
    for channel, month, amount in row["spend"] or ():
        by_channel.setdefault(channel, {})[month] = amount
    return ChannelData(row["start"], row["end"], row["as_of"], counts, medians, by_channel, row["snapshot"])


async def put_spend(
    engine: AsyncEngine, tenant: str, channel: str, month: date, amount: Decimal
) -> tuple[Spend, bool]:
    """Create or replace one channel's spend of one month; returns (row, created)."""
    row_in = insert(ChannelSpend).values(tenant=tenant, channel=channel, month=month, amount=amount)
    # xmax is 0 on a freshly inserted row version and set on one an ON CONFLICT update wrote.
    created: ColumnElement[bool] = literal_column("xmax = 0").label("created")
    stmt = row_in.on_conflict_do_update(
        index_elements=[ChannelSpend.tenant, ChannelSpend.channel, ChannelSpend.month],
        set_={"amount": row_in.excluded.amount, "updated_at": func.now()},
    ).returning(ChannelSpend.channel, ChannelSpend.month, ChannelSpend.amount, created)
    async with engine.begin() as conn:
        row = (await conn.execute(stmt)).one()
    return Spend(row.channel, row.month, row.amount), bool(row.created)
