"""Demand generation numbers (SPEC 5.5): what each acquisition channel yields, and how fast leads
are worked.

Besides the per-channel report this module holds two pure pieces the aggregator folds events with,
so that their results do not depend on the order events arrive in: the speed-to-lead state of a
contact, and first-touch attribution of deals to the channel of the contact's first lead. The
reads at the end fetch the window's funnel counts and spend (see queries.py).
"""

from __future__ import annotations

import calendar
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.demand import queries
from services.api.deps import rollup_read
from services.api.reads import AnswerKey, Reads, json_answer
from services.api.reps.queries import tenant_probe
from services.api.reps.service import ratio
from services.api.windows import WindowSpec
from services.core.http import ApiError

LEAD_CREATED = "lead.created"
# Leads and deals whose channel is not known are reported under this name rather than dropped.
UNATTRIBUTED = "unattributed"
TOUCH_TYPES: frozenset[str] = frozenset({"call.completed", "email.sent", "meeting.booked"})
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class ChannelCounts:
    """One channel's sums over the window, from the channel rollup."""

    leads: int = 0
    mqls: int = 0
    sqls: int = 0
    deals_created: int = 0
    deals_won: int = 0
    revenue_won: Decimal | float = 0


@dataclass(frozen=True)
class ChannelStats:
    """One channel of `GET /v1/demand/channels` (SPEC 5.6); `spend` is the window's share of spend."""

    leads: int
    mqls: int
    sqls: int
    deals_created: int
    deals_won: int
    revenue_won: float
    lead_to_deal: float | None
    lead_to_won: float | None
    revenue_per_lead: float | None
    speed_to_lead_median_s: float | None
    spend: float | None
    cac: float | None


def channel_stats(
    counts: ChannelCounts,
    *,
    spend: Decimal | float | None = None,
    speeds: Sequence[float] = (),
    speed_median_s: float | None = None,
) -> ChannelStats:
    """The rates of one channel. `speeds`: seconds from lead.created to first touch, one per lead;
    or their median already taken (`speed_median_s`, as the database computes it)."""
    if speed_median_s is None and speeds:
        speed_median_s = float(statistics.median(speeds))
    return ChannelStats(
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
) -> dict[str, ChannelStats]:
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


def parse_month(text: str) -> date:
    """ "2026-03" -> date(2026, 3, 1); ValueError for anything else."""
    match = _MONTH.match(text)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError("must be a month as YYYY-MM")
    return date(int(match.group(1)), int(match.group(2)), 1)


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


# --- speed to lead -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeadSpeed:
    """Speed-to-lead state of one contact, folded from its events in any arrival order.

    The lead starts at the contact's earliest `lead.created`. Its first touch is the earliest
    `call.completed`, `email.sent` or `meeting.booked` of the contact at or after that instant;
    touches before it (prospecting before the contact became a lead) are ignored, so a speed is
    never negative. A later lead.created of the same contact does not restart the clock.

    Why four timestamps: once `created_at` is known, `first_touch` is all the state a new touch
    needs. While it is unknown, no bounded summary of the touches can answer "the earliest touch at
    or after C" for a C that arrives later (each touch is that answer for some C). The state keeps
    the earliest and latest touch, which settle the usual cases exactly (all touches after C: the
    earliest; all before: none). Only when C falls between them does a fold ask the caller to look
    the answer up in the event archive (see `SpeedStep.lookup`), which holds every folded event.
    """

    created_at: datetime | None = None
    first_touch: datetime | None = None
    earliest_touch: datetime | None = None
    latest_touch: datetime | None = None

    @property
    def speed_s(self) -> float | None:
        if self.created_at is None or self.first_touch is None:
            return None
        return (self.first_touch - self.created_at).total_seconds()


@dataclass(frozen=True)
class SpeedStep:
    """The state after one fold and the lead's speed before and after it (None: no speed yet).

    When `lookup` is set, the state's first touch is unknown: find the contact's earliest touch
    with `lookup[0] <= occurred_at <= lookup[1]` among all events folded so far (the archive plus
    the earlier events of the batch being folded, under the lock of this contact's state row) and
    pass it, or None, to `resolve_first_touch` before storing the state or folding another event.
    """

    state: LeadSpeed
    before: float | None
    after: float | None
    lookup: tuple[datetime, datetime] | None = None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def fold_speed_event(state: LeadSpeed, event_type: str, occurred_at: datetime) -> SpeedStep:
    """Fold any event of the contact; types other than lead.created and touches change nothing."""
    if event_type == LEAD_CREATED:
        return fold_lead_created(state, occurred_at)
    if event_type in TOUCH_TYPES:
        return fold_touch(state, occurred_at)
    return SpeedStep(state, state.speed_s, state.speed_s)


def fold_touch(state: LeadSpeed, occurred_at: datetime) -> SpeedStep:
    _aware(occurred_at)
    first = state.first_touch
    if state.created_at is not None and occurred_at >= state.created_at:
        first = occurred_at if first is None else min(first, occurred_at)
    new = replace(
        state,
        first_touch=first,
        earliest_touch=_min(state.earliest_touch, occurred_at),
        latest_touch=_max(state.latest_touch, occurred_at),
    )
    return SpeedStep(new, state.speed_s, new.speed_s)


def fold_lead_created(state: LeadSpeed, occurred_at: datetime) -> SpeedStep:
    _aware(occurred_at)
    before = state.speed_s
    if state.created_at is not None and occurred_at >= state.created_at:
        return SpeedStep(state, before, before)
    earliest, latest = state.earliest_touch, state.latest_touch
    lookup = None
    if earliest is None or latest is None or latest < occurred_at:
        first = None
    elif earliest >= occurred_at:
        first = earliest
    else:
        # Some touch precedes the creation and some follows it: which follows first is not kept.
        first = None
        upper = latest if state.first_touch is None else min(latest, state.first_touch)
        lookup = (occurred_at, upper)
    new = replace(state, created_at=occurred_at, first_touch=first)
    return SpeedStep(new, before, new.speed_s, lookup)


def resolve_first_touch(state: LeadSpeed, found: datetime | None) -> SpeedStep:
    """Complete a fold that asked for a lookup with the earliest touch found (or None)."""
    if state.created_at is None:
        raise ValueError("nothing to resolve before the lead's creation is known")
    if found is not None and found < state.created_at:
        raise ValueError("the first touch cannot precede the lead's creation")
    first = state.first_touch if found is None else _min(state.first_touch, found)
    new = replace(state, first_touch=first)
    return SpeedStep(new, state.speed_s, new.speed_s)


# --- first-touch attribution ---------------------------------------------------------------------


@dataclass(frozen=True)
class LeadOrigin:
    """The lead.created a contact's deals are attributed to."""

    occurred_at: datetime
    event_id: str
    channel: str


def earliest_origin(
    current: LeadOrigin | None, occurred_at: datetime, event_id: str, channel: str | None
) -> LeadOrigin | None:
    """Fold one lead.created of the contact into its origin: the earliest lead that names a channel.

    A lead without a channel cannot attribute anything, so it never displaces one that can. Ties
    on time go to the smaller event id, so the result does not depend on arrival order.
    """
    _aware(occurred_at)
    if channel is None:
        return current
    if current is None or (occurred_at, event_id) < (current.occurred_at, current.event_id):
        return LeadOrigin(occurred_at, event_id, channel)
    return current


def first_origin(leads: Iterable[tuple[datetime, str, str | None]]) -> LeadOrigin | None:
    """The origin of a contact from all its lead.created events as (occurred_at, event_id, channel)."""
    origin = None
    for occurred_at, event_id, channel in leads:
        origin = earliest_origin(origin, occurred_at, event_id, channel)
    return origin


def deal_channel(event_channel: str | None, origin: LeadOrigin | None) -> str | None:
    """The channel a deal event counts under: its own, else its contact's first lead's (first touch)."""
    if event_channel is not None:
        return event_channel
    return origin.channel if origin is not None else None


def _aware(moment: datetime) -> None:
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")


def _min(a: datetime | None, b: datetime) -> datetime:
    return b if a is None else min(a, b)


def _max(a: datetime | None, b: datetime) -> datetime:
    return b if a is None else max(a, b)


# --- reads and writes -----------------------------------------------------------------------------


def month_key(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def report_from(data: queries.ChannelData) -> dict[str, ChannelStats]:
    """The per-channel report from what the database counted; unknown channels as `unattributed`."""
    counts: dict[str, ChannelCounts] = {}
    for channel in set(data.leads) | set(data.deals):
        leads, deals = data.leads.get(channel), data.deals.get(channel)
        counts[channel or UNATTRIBUTED] = ChannelCounts(
            leads=leads.leads if leads else 0,
            mqls=leads.mqls if leads else 0,
            sqls=leads.sqls if leads else 0,
            deals_created=deals.deals_created if deals else 0,
            deals_won=deals.deals_won if deals else 0,
            revenue_won=deals.revenue_won if deals else 0,
        )
    medians = {
        channel or UNATTRIBUTED: leads.speed_median_s
        for channel, leads in data.leads.items()
        if leads.speed_median_s is not None
    }
    spend: dict[str, Decimal | float] = {}
    for channel, months in data.spend.items():
        amount = spend_in_window({month_key(m): a for m, a in months.items()}, data.start, data.end)
        if amount is not None:
            spend[channel] = amount
    return channels_report(counts, spend=spend, speed_medians=medians)


async def channels(reads: Reads, tenant: str, spec: WindowSpec, now: datetime) -> bytes:
    """The JSON of `ChannelsOut`, from the cache while the snapshot and the window are the same."""
    probe = await tenant_probe(reads.pool, tenant, spec, now)
    if probe is None:
        raise ApiError(404, "not_found", "no such tenant")

    def key(snapshot: str, start: date, end: date) -> AnswerKey:
        return AnswerKey(snapshot, ("demand_channels", tenant, start, end))

    async def answer() -> tuple[AnswerKey, bytes]:
        with rollup_read("demand_channels"):
            data = await queries.channel_data(reads.pool, tenant, spec, now)
        if data is None:
            raise ApiError(404, "not_found", "no such tenant")
        report = {name: asdict(stats) for name, stats in report_from(data).items()}
        body = json_answer({"from": data.start, "to": data.end, "as_of": data.as_of, "channels": report})
        return key(data.snapshot, data.start, data.end), body

    return await reads.cache.get("demand_channels", key(probe.snapshot, probe.start, probe.end), answer)


async def put_spend(
    engine: AsyncEngine, tenant: str, channel: str, month: str, amount: Decimal
) -> tuple[queries.Spend, bool]:
    return await queries.put_spend(engine, tenant, channel, parse_month(month), amount)
