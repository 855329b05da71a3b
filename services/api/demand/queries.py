"""All SQL of the demand-generation domain: the lead funnel and first-touch deal attribution per
channel over a window, and marketing spend.

The window is a range of the tenant's calendar days; it is resolved to instants once (the first
statement) so that the reads after it compare timestamps against plain bounds and use the indexes.
Nothing here reads the event archive: `leads` and `deal_facts` are kept by the aggregator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, DateTime, and_, cast, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.reps.queries import _as_of, _bounds
from services.api.windows import WindowSpec
from services.core.models import ChannelSpend, DealFact, Lead, Tenant


@dataclass(frozen=True)
class LeadCounts:
    leads: int
    mqls: int
    sqls: int
    speed_median_s: float | None


@dataclass(frozen=True)
class DealCounts:
    deals_created: int
    deals_won: int
    revenue_won: Decimal


@dataclass(frozen=True)
class Spend:
    channel: str
    month: date  # its first day
    amount: Decimal


@dataclass(frozen=True)
class ChannelData:
    """Per channel (None: no channel known) over the window, and spend per channel per month."""

    start: date
    end: date
    as_of: datetime | None
    leads: dict[str | None, LeadCounts]
    deals: dict[str | None, DealCounts]
    spend: dict[str, dict[date, Decimal]]


def _between(column: Any, lo: datetime, hi: datetime) -> ColumnElement[bool]:
    return and_(column >= lo, column < hi)


async def channel_data(engine: AsyncEngine, tenant: str, spec: WindowSpec, now: datetime) -> ChannelData:
    start, end = _bounds(spec, Tenant.timezone, now)
    window = select(
        start.label("start"),
        end.label("end"),
        # Local midnight of the first day and of the day after the last, as instants.
        func.timezone(Tenant.timezone, cast(start, DateTime())).label("lo"),
        func.timezone(Tenant.timezone, cast(end + 1, DateTime())).label("hi"),
        _as_of(tenant).label("as_of"),
    ).where(Tenant.slug == tenant)
    async with engine.connect() as conn:
        w = (await conn.execute(window)).one()
        leads = await conn.execute(_lead_counts(tenant, w.lo, w.hi))
        deals = await conn.execute(_deal_counts(tenant, w.lo, w.hi))
        spend = await conn.execute(
            select(ChannelSpend.channel, ChannelSpend.month, ChannelSpend.amount).where(
                ChannelSpend.tenant == tenant,
                ChannelSpend.month >= w.start.replace(day=1),
                ChannelSpend.month <= w.end,
            )
        )
        by_channel: dict[str, dict[date, Decimal]] = {}
        for row in spend:
            by_channel.setdefault(row.channel, {})[row.month] = row.amount
        return ChannelData(
            w.start,
            w.end,
            w.as_of,
            {r.channel: LeadCounts(r.leads, r.mqls, r.sqls, r.speed) for r in leads},
            {r.channel: DealCounts(r.created, r.won, r.revenue) for r in deals},
            by_channel,
        )


def _lead_counts(tenant: str, lo: datetime, hi: datetime) -> Any:
    """Leads created, turned MQL and turned SQL in the window by the lead's channel; the median
    speed to lead of the leads created in it."""
    created = _between(Lead.created_at, lo, hi)
    mql = _between(Lead.mql_at, lo, hi)
    sql = _between(Lead.sql_at, lo, hi)
    speed = func.percentile_cont(0.5).within_group(Lead.speed_s)
    return (
        select(
            Lead.channel,
            func.count().filter(created).label("leads"),
            func.count().filter(mql).label("mqls"),
            func.count().filter(sql).label("sqls"),
            speed.filter(and_(created, Lead.speed_s.is_not(None))).label("speed"),
        )
        .where(Lead.tenant == tenant, or_(created, mql, sql))
        .group_by(Lead.channel)
    )


def _deal_counts(tenant: str, lo: datetime, hi: datetime) -> Any:
    """Deals created and won in the window by the deal's channel, else its contact's first-touch
    channel: joined here, at read time, so a lead arriving after its deal still claims it."""
    channel = func.coalesce(DealFact.channel, Lead.channel).label("channel")
    won = DealFact.type == "deal.won"
    return (
        select(
            channel,
            func.count().filter(DealFact.type == "deal.created").label("created"),
            func.count().filter(won).label("won"),
            func.coalesce(func.sum(DealFact.amount).filter(won), 0).label("revenue"),
        )
        .select_from(DealFact)
        .outerjoin(Lead, and_(Lead.tenant == DealFact.tenant, Lead.contact_id == DealFact.contact_id))
        .where(
            DealFact.tenant == tenant,
            _between(DealFact.occurred_at, lo, hi),
            DealFact.type.in_(("deal.created", "deal.won")),
        )
        .group_by(channel)
    )


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
