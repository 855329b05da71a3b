"""Demand generation numbers (SPEC 5.5): what each acquisition channel yields, and how fast leads
are worked.

The per-channel report is computed from what the aggregator folded into `leads` and `deal_facts`
(its speed-to-lead and first-touch fold: services/aggregator/folds/leads.py). The reads at the end
fetch the window's funnel counts and spend (see queries.py).
"""

from __future__ import annotations

import calendar
import statistics
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.demand import queries
from services.api.demand.queries import ChannelCounts
from services.api.demand.schemas import ChannelsOut, ChannelStatsOut, SpendOut, month_key, parse_month
from services.api.kit.errors import NotFound
from services.api.kit.reads import AnswerKey, Reads, model_json, rollup_read
from services.api.kit.snapshot import answer_key, tenant_probe
from services.api.kit.sums import ratio
from services.api.kit.windows import WindowSpec

QUERY = "demand_channels"
# Leads and deals whose channel is not known are reported under this name rather than dropped.
UNATTRIBUTED = "unattributed"


def channel_stats(
    counts: ChannelCounts,
    *,
    spend: Decimal | float | None = None,
    speeds: Sequence[float] = (),
    speed_median_s: float | None = None,
) -> ChannelStatsOut:
    """The rates of one channel. `speeds`: seconds from lead.created to first touch, one per lead;
    or their median already taken (`speed_median_s`, as the database computes it)."""
    if speed_median_s is None and speeds:
        speed_median_s = float(statistics.median(speeds))
    return ChannelStatsOut(
        leads=counts.leads,
        mqls=counts.mqls,
        sqls=counts.sqls,
        deals_created=counts.deals_created,
        deals_won=counts.deals_won,
        revenue_won=float(counts.revenue_won),
        lead_to_deal=ratio(counts.deals_created, counts.leads),
        lead_to_won=ratio(counts.deals_won, counts.leads),
        revenue_per_lead=ratio(counts.revenue_won, counts.leads),
        speed_to_lead_median_s=speed_median_s,
        spend=None if spend is None else float(spend),
        cac=None if spend is None else ratio(spend, counts.deals_won),
    )


def channels_report(
    counts: Mapping[str, ChannelCounts],
    *,
    spend: Mapping[str, Decimal | float] | None = None,
    speeds: Mapping[str, Sequence[float]] | None = None,
    speed_medians: Mapping[str, float] | None = None,
) -> dict[str, ChannelStatsOut]:
    """Every channel that has counts, spend or speeds in the window, by channel name."""
    spend = spend or {}
    speeds = speeds or {}
    speed_medians = speed_medians or {}
    names = sorted(set(counts) | set(spend) | set(speeds) | set(speed_medians))
    return {
        name: channel_stats(
            counts.get(name, ChannelCounts()),
            spend=spend.get(name),
            speeds=speeds.get(name, ()),
            speed_median_s=speed_medians.get(name),
        )
        for name in names
    }


def spend_in_window(monthly: Mapping[str, Decimal | float], start: date, end: date) -> float | None:
    """The spend falling in the inclusive days `start`..`end`: each "YYYY-MM" month's amount in
    proportion to its days inside the window. None when no month with spend overlaps the window.
    """
    total: float | None = None
    for month, amount in monthly.items():
        first = parse_month(month)
        days_in_month = calendar.monthrange(first.year, first.month)[1]
        last = first + timedelta(days=days_in_month - 1)
        overlap = (min(last, end) - max(first, start)).days + 1
        if overlap > 0:
            total = (total or 0.0) + float(amount) * overlap / days_in_month
    return total


# --- reads and writes -----------------------------------------------------------------------------


def report_from(data: queries.ChannelData) -> dict[str, ChannelStatsOut]:
    """The per-channel report from what the database counted; unknown channels as `unattributed`."""
    counts = {channel or UNATTRIBUTED: c for channel, c in data.counts.items()}
    medians = {channel or UNATTRIBUTED: m for channel, m in data.speed_medians.items()}
    spend: dict[str, Decimal | float] = {}
    for channel, months in data.spend.items():
        amount = spend_in_window({month_key(m): a for m, a in months.items()}, data.start, data.end)
        if amount is not None:
            spend[channel] = amount
    return channels_report(counts, spend=spend, speed_medians=medians)


async def channels(reads: Reads, *, tenant: str, spec: WindowSpec, now: datetime) -> bytes:
    """The JSON of `ChannelsOut`, from the cache while the snapshot and the window are the same."""
    probe = await tenant_probe(reads.pool, tenant, spec, now)
    if probe is None:
        raise NotFound("no such tenant")

    async def answer() -> tuple[AnswerKey, bytes]:
        with rollup_read(QUERY):
            data = await queries.channel_data(reads.pool, tenant, spec, now)
        if data is None:
            raise NotFound("no such tenant")
        report = ChannelsOut(from_=data.start, to=data.end, as_of=data.as_of, channels=report_from(data))
        return answer_key(QUERY, data, tenant), model_json(report)

    return await reads.cache.get(QUERY, answer_key(QUERY, probe, tenant), answer)


async def put_spend(
    engine: AsyncEngine, *, tenant: str, channel: str, month: str, amount: Decimal
) -> tuple[SpendOut, bool]:
    """Record or replace a channel's spend of a month; returns (spend, created)."""
    row, created = await queries.put_spend(engine, tenant, channel, parse_month(month), amount)
    return SpendOut(channel=row.channel, month=month_key(row.month), amount=float(row.amount)), created
