"""Speed to lead and first-touch attribution, the pure part of the leads fold, in every arrival order."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from services.aggregator.folds.leads import (
    Lead,
    LeadOrigin,
    LeadSpeed,
    earliest_origin,
    fold_contact,
    fold_touch,
    resolve_first_touch,
)
from services.core.wire import Event


def at(hh: int, mm: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 10, day, hh, mm, tzinfo=UTC)


# --- speed to lead ---------------------------------------------------------------------------------

Fact = tuple[str, datetime]
TOUCHES = ("call.completed", "email.sent", "meeting.booked")


def fold_in_order(facts: list[Fact]) -> tuple[LeadSpeed, int]:
    """Fold like the aggregator, one event per batch: each event is archived before the fold runs, and
    the fold's look-ups are answered from the archive."""
    lead = Lead.new("t", "c1")
    lookups = 0
    archive: list[Fact] = []
    for i, (kind, moment) in enumerate(facts):
        archive.append((kind, moment))
        e = Event("t", f"e{i}", kind, moment, moment, "api", "{}", contact_id="c1")
        if fold_contact(lead, [e]):
            lookups += 1
            created = lead.speed.created_at
            assert created is not None
            found = min((t for k, t in archive if k in TOUCHES and t >= created), default=None)
            lead.speed = resolve_first_touch(lead.speed, found)
        speed = lead.speed.speed_s
        assert speed is None or speed >= 0
    return lead.speed, lookups


def reference_speed(facts: list[Fact]) -> float | None:
    created = min((t for k, t in facts if k == "lead.created"), default=None)
    if created is None:
        return None
    touches = [t for k, t in facts if k in TOUCHES and t >= created]
    return (min(touches) - created).total_seconds() if touches else None


ONE_LEAD: list[Fact] = [
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
    facts: list[Fact] = [
        ("call.completed", at(9)),
        ("lead.created", at(10)),
        ("lead.created", at(9, 30)),
        ("email.sent", at(9, 45)),
        ("meeting.booked", at(10, 30)),
    ]
    for order in itertools.permutations(facts):
        state, _ = fold_in_order(list(order))
        assert state.speed_s == 900.0  # 9:30 -> 9:45


def test_touches_only_before_the_lead_give_no_speed() -> None:
    facts: list[Fact] = [("call.completed", at(8)), ("email.sent", at(9)), ("lead.created", at(10))]
    for order in itertools.permutations(facts):
        state, _ = fold_in_order(list(order))
        assert state.speed_s is None


def test_no_lead_no_speed() -> None:
    state, lookups = fold_in_order([("call.completed", at(8)), ("email.sent", at(9))])
    assert state.speed_s is None
    assert state == LeadSpeed()  # touches of a contact that is no lead: only the archive keeps them
    assert lookups == 0


@pytest.mark.parametrize("seed", range(25))
def test_random_histories_match_the_definition_in_any_order(seed: int) -> None:
    rnd = random.Random(seed)
    kinds = ["lead.created", "call.completed", "email.sent", "meeting.booked", "email.replied"]
    facts = [
        (rnd.choice(kinds), at(8) + timedelta(minutes=rnd.randrange(0, 600)))
        for _ in range(rnd.randrange(1, 9))
    ]
    expected = reference_speed(facts)
    for _ in range(30):
        rnd.shuffle(facts)
        state, _ = fold_in_order(facts)
        assert state.speed_s == expected


def test_touches_move_the_first_touch_only_earlier() -> None:
    created = resolve_first_touch(LeadSpeed(at(10)), None)
    assert (created.created_at, created.first_touch, created.speed_s) == (at(10), None, None)
    touched = fold_touch(created, at(10, 9))
    assert touched.speed_s == 540.0
    faster = fold_touch(touched, at(10, 1))
    assert faster.speed_s == 60.0
    again = fold_touch(faster, at(10, 1))  # a redelivery changes nothing
    assert again == faster
    assert fold_touch(again, at(9)) == again  # before the lead: prospecting
    assert fold_touch(again, at(11)) == again  # after the first touch
    assert fold_touch(LeadSpeed(), at(9)) == LeadSpeed()  # no lead yet


def test_the_archive_answers_the_first_touch() -> None:
    done = resolve_first_touch(LeadSpeed(at(10)), at(10, 20))
    assert done.speed_s == 1200.0
    assert resolve_first_touch(done, at(10, 30)) == done  # a later touch does not displace it
    with pytest.raises(ValueError, match="precede"):
        resolve_first_touch(LeadSpeed(at(10)), at(9))
    with pytest.raises(ValueError, match="creation"):
        resolve_first_touch(LeadSpeed(), at(9))


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        fold_touch(LeadSpeed(), datetime(2026, 10, 1, 9))  # noqa: DTZ001
    with pytest.raises(ValueError, match="timezone-aware"):
        earliest_origin(None, datetime(2026, 10, 1, 9), "e1", "events")  # noqa: DTZ001


# --- first-touch attribution -------------------------------------------------------------------------

LEADS = [
    (at(9, day=5), "e5", None),  # the earliest lead names no channel
    (at(9, day=7), "e7", "paid_search"),
    (at(9, day=6), "e6b", "referral"),
    (at(9, day=6), "e6a", "events"),  # same instant as e6b: the smaller event id wins
]


def first_origin(leads: Iterable[tuple[datetime, str, str | None]]) -> LeadOrigin | None:
    """The origin of a contact from all its lead.created events, folded one by one."""
    origin = None
    for occurred_at, event_id, channel in leads:
        origin = earliest_origin(origin, occurred_at, event_id, channel)
    return origin


def test_first_touch_in_any_arrival_order() -> None:
    for order in itertools.permutations(LEADS):
        origin = first_origin(order)
        assert origin is not None
        assert (origin.event_id, origin.channel) == ("e6a", "events")


def test_a_lead_without_a_channel_attributes_nothing() -> None:
    origin = first_origin(LEADS)
    assert first_origin([(at(9), "e1", None)]) is None
    assert earliest_origin(origin, at(8), "e0", None) == origin
