"""Channel report, spend, speed-to-lead folding in every arrival order, first-touch attribution (SPEC 5.5)."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.api.demand.schemas import ChannelsOut, SpendIn
from services.api.demand.service import (
    ChannelCounts,
    LeadSpeed,
    SpeedStep,
    channel_stats,
    channels_report,
    deal_channel,
    earliest_origin,
    first_origin,
    fold_lead_created,
    fold_speed_event,
    fold_touch,
    parse_month,
    resolve_first_touch,
    spend_in_window,
)


def at(hh: int, mm: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 10, day, hh, mm, tzinfo=UTC)


ORGANIC = ChannelCounts(
    leads=40, mqls=12, sqls=6, deals_created=5, deals_won=2, revenue_won=Decimal("24000.00")
)


def test_channel_stats_by_hand() -> None:
    s = channel_stats(ORGANIC, spend=Decimal("3000"), speeds=[300, 540, 900, 60, 1200])
    assert (s.leads, s.mqls, s.sqls, s.deals_created, s.deals_won) == (40, 12, 6, 5, 2)
    assert s.revenue_won == 24000.0
    assert s.lead_to_deal == 0.125
    assert s.lead_to_won == 0.05
    assert s.revenue_per_lead == 600.0
    assert s.speed_to_lead_median_s == 540.0  # 60 300 540 900 1200
    assert s.spend == 3000.0
    assert s.cac == 1500.0
    assert channel_stats(ORGANIC, speeds=[60, 300]).speed_to_lead_median_s == 180.0


def test_rates_over_zero_are_null() -> None:
    s = channel_stats(ChannelCounts(deals_won=0), spend=500)
    assert s.lead_to_deal is None
    assert s.lead_to_won is None
    assert s.revenue_per_lead is None
    assert s.speed_to_lead_median_s is None
    assert s.cac is None  # spend but nothing won
    assert s.spend == 500.0
    assert channel_stats(ORGANIC).cac is None  # won deals but no spend
    assert channel_stats(ORGANIC, spend=0).cac == 0.0  # free channel


def test_channels_report_lists_every_channel_seen() -> None:
    report = channels_report(
        {"organic_search": ORGANIC, "referral": ChannelCounts(leads=4, deals_won=1, revenue_won=9000)},
        spend={"paid_search": 1200.0, "referral": 100.0},
        speeds={"organic_search": [120.0], "events": [30.0]},
    )
    assert list(report) == ["events", "organic_search", "paid_search", "referral"]
    assert report["paid_search"].leads == 0
    assert report["paid_search"].spend == 1200.0
    assert report["paid_search"].cac is None
    assert report["referral"].cac == 100.0
    assert report["events"].speed_to_lead_median_s == 30.0
    assert report["organic_search"].speed_to_lead_median_s == 120.0
    body = ChannelsOut.of(report, start=date(2026, 10, 1), end=date(2026, 10, 30), as_of=None)
    dumped = body.model_dump(mode="json", by_alias=True)
    assert dumped["from"] == "2026-10-01"
    assert dumped["channels"]["referral"]["lead_to_won"] == 0.25


def test_spend_is_prorated_by_day() -> None:
    monthly: dict[str, Decimal | float] = {"2026-10": Decimal("3100"), "2026-11": 3000.0, "2027-01": 999.0}
    # 17-31 Oct is 15 of 31 days, 1-10 Nov 10 of 30
    assert spend_in_window(monthly, date(2026, 10, 17), date(2026, 11, 10)) == pytest.approx(2500.0)
    assert spend_in_window(monthly, date(2026, 10, 1), date(2026, 11, 30)) == pytest.approx(6100.0)
    assert spend_in_window(monthly, date(2026, 12, 1), date(2026, 12, 31)) is None
    assert spend_in_window({"2026-12": 0}, date(2026, 12, 1), date(2026, 12, 1)) == 0.0


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-1", "26-01", "2026-01-01", "soon"])
def test_bad_months_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_month(text)
    with pytest.raises(ValidationError):
        SpendIn.model_validate({"channel": "paid_search", "month": text, "amount": "10"})


def test_spend_body() -> None:
    body = SpendIn.model_validate({"channel": "paid_search", "month": "2026-10", "amount": "12500.00"})
    assert body.amount == Decimal("12500.00")
    assert parse_month(body.month) == date(2026, 10, 1)
    for bad in (
        {"channel": "tv", "month": "2026-10", "amount": 1},
        {"channel": "events", "month": "2026-10"},
    ):
        with pytest.raises(ValidationError):
            SpendIn.model_validate(bad)
    with pytest.raises(ValidationError):
        SpendIn.model_validate({"channel": "events", "month": "2026-10", "amount": -1})


# --- speed to lead ---------------------------------------------------------------------------------

Event = tuple[str, datetime]
TOUCHES = ("call.completed", "email.sent", "meeting.booked")


def fold_in_order(events: list[Event]) -> tuple[LeadSpeed, int]:
    """Fold like the aggregator: steps chain, lookups are answered from the events folded so far."""
    state, lookups, contribution = LeadSpeed(), 0, None
    archive: list[Event] = []
    for kind, moment in events:
        step = fold_speed_event(state, kind, moment)
        assert step.before == contribution
        if step.lookup is not None:
            lookups += 1
            lo, hi = step.lookup
            found = min((t for k, t in archive if k in TOUCHES and lo <= t <= hi), default=None)
            resolved = resolve_first_touch(step.state, found)
            assert resolved.before == step.after
            step = SpeedStep(resolved.state, step.before, resolved.after)
        archive.append((kind, moment))
        state, contribution = step.state, step.after
        assert contribution is None or contribution >= 0
    assert state.speed_s == contribution
    return state, lookups


def reference_speed(events: list[Event]) -> float | None:
    created = min((t for k, t in events if k == "lead.created"), default=None)
    if created is None:
        return None
    touches = [t for k, t in events if k in TOUCHES and t >= created]
    return (min(touches) - created).total_seconds() if touches else None


ONE_LEAD: list[Event] = [
    ("call.completed", at(9)),  # prospecting before the lead: ignored
    ("lead.created", at(10)),
    ("email.opened", at(10, 5)),  # not a touch
    ("email.sent", at(10, 9)),  # the first touch: 9 minutes
    ("meeting.booked", at(11)),
    ("lead.created", at(12)),  # the contact converts again: the clock does not restart
]


def test_every_arrival_order_gives_the_same_speed() -> None:
    lookups = 0
    for order in itertools.permutations(ONE_LEAD):
        state, n = fold_in_order(list(order))
        assert state.speed_s == 540.0
        assert state.created_at == at(10)
        assert state.first_touch == at(10, 9)
        lookups += n
    assert lookups > 0  # some orders can only be settled from the archive


def test_an_earlier_creation_arriving_late_moves_the_clock_back() -> None:
    events: list[Event] = [
        ("call.completed", at(9)),
        ("lead.created", at(10)),
        ("lead.created", at(9, 30)),
        ("email.sent", at(9, 45)),
        ("meeting.booked", at(10, 30)),
    ]
    for order in itertools.permutations(events):
        state, _ = fold_in_order(list(order))
        assert state.speed_s == 900.0  # 9:30 -> 9:45


def test_touches_only_before_the_lead_give_no_speed() -> None:
    events: list[Event] = [("call.completed", at(8)), ("email.sent", at(9)), ("lead.created", at(10))]
    for order in itertools.permutations(events):
        state, lookups = fold_in_order(list(order))
        assert state.speed_s is None
        assert lookups == 0  # the latest touch precedes the creation: settled without the archive


def test_no_lead_no_speed() -> None:
    state, _ = fold_in_order([("call.completed", at(8)), ("email.sent", at(9))])
    assert state.speed_s is None
    assert state.earliest_touch == at(8)
    assert state.latest_touch == at(9)


@pytest.mark.parametrize("seed", range(25))
def test_random_histories_match_the_definition_in_any_order(seed: int) -> None:
    rnd = random.Random(seed)
    kinds = ["lead.created", "call.completed", "email.sent", "meeting.booked", "email.replied"]
    events = [
        (rnd.choice(kinds), at(8) + timedelta(minutes=rnd.randrange(0, 600)))
        for _ in range(rnd.randrange(1, 9))
    ]
    expected = reference_speed(events)
    for _ in range(30):
        rnd.shuffle(events)
        state, _ = fold_in_order(events)
        assert state.speed_s == expected


def test_steps_report_the_change_in_contribution() -> None:
    created = fold_lead_created(LeadSpeed(), at(10))
    assert (created.before, created.after, created.changed, created.lookup) == (None, None, False, None)
    touched = fold_touch(created.state, at(10, 9))
    assert (touched.before, touched.after, touched.changed) == (None, 540.0, True)
    faster = fold_touch(touched.state, at(10, 1))
    assert (faster.before, faster.after) == (540.0, 60.0)
    again = fold_touch(faster.state, at(10, 1))  # a redelivery changes nothing
    assert (again.before, again.after, again.changed) == (60.0, 60.0, False)
    assert again.state == faster.state
    other = fold_speed_event(again.state, "deal.won", at(9))
    assert other.state == again.state
    assert not other.changed


def test_lookup_covers_exactly_the_unknown_span() -> None:
    state = fold_touch(fold_touch(LeadSpeed(), at(9)).state, at(11)).state
    step = fold_lead_created(state, at(10))
    assert step.lookup == (at(10), at(11))
    assert step.state.first_touch is None
    done = resolve_first_touch(step.state, at(10, 20))
    assert done.after == 1200.0
    with pytest.raises(ValueError, match="precede"):
        resolve_first_touch(step.state, at(9))
    with pytest.raises(ValueError, match="creation"):
        resolve_first_touch(LeadSpeed(), at(9))


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        fold_touch(LeadSpeed(), datetime(2026, 10, 1, 9))  # noqa: DTZ001
    with pytest.raises(ValueError, match="timezone-aware"):
        fold_lead_created(LeadSpeed(), datetime(2026, 10, 1, 9))  # noqa: DTZ001


# --- first-touch attribution -------------------------------------------------------------------------

LEADS = [
    (at(9, day=5), "e5", None),  # the earliest lead names no channel
    (at(9, day=7), "e7", "paid_search"),
    (at(9, day=6), "e6b", "referral"),
    (at(9, day=6), "e6a", "events"),  # same instant as e6b: the smaller event id wins
]


def test_first_touch_in_any_arrival_order() -> None:
    for order in itertools.permutations(LEADS):
        origin = first_origin(order)
        assert origin is not None
        assert (origin.event_id, origin.channel) == ("e6a", "events")


def test_deal_channel_prefers_its_own() -> None:
    origin = first_origin(LEADS)
    assert deal_channel(None, origin) == "events"
    assert deal_channel("partner", origin) == "partner"
    assert deal_channel(None, None) is None
    assert first_origin([(at(9), "e1", None)]) is None
    assert earliest_origin(origin, at(8), "e0", None) == origin
