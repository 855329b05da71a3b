"""The pure entity state: owner at a moment, latest amount, contributions and their storage."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.aggregator.fold import Deltas
from services.aggregator.folds.crm import (
    Attributed,
    Change,
    EntityState,
    contribution_json,
    difference,
    load_contribution,
)

at = datetime.fromisoformat
NY = ZoneInfo("America/New_York")


def deal(*changes: Change, events: tuple[Attributed, ...] = ()) -> EntityState:
    state = EntityState("acme", "deal", "d1")
    for c in changes:
        state.add_change(c)
    for e in events:
        state.add_event(e)
    return state


def won(when: str, amount: str | None = None) -> Attributed:
    value = None if amount is None else Decimal(amount)
    return Attributed("w", "deal.won", at(when), at(when), "hubspot", None, None, None, value, None)


def test_the_owner_at_a_moment_is_the_newest_change_up_to_it_else_the_first_ever() -> None:
    state = deal(
        Change("owner", "b", at("2026-11-05T00:00:00Z"), "2", "r2"),
        Change("owner", "a", at("2026-11-02T00:00:00Z"), "1", "r1"),
        Change("owner", "c", at("2026-11-05T00:00:00Z"), "3", "r3"),  # same instant: the larger id wins
    )
    owner = state.owner_at
    assert [owner(at(t)).rep_id for t in ("2026-11-01T00:00:00Z", "2026-11-04T00:00:00Z")] == ["r1", "r1"]  # type: ignore[union-attr]
    assert owner(at("2026-11-05T00:00:00Z")).rep_id == "r3"  # type: ignore[union-attr]
    assert deal().owner_at(at("2026-11-05T00:00:00Z")) is None


def test_the_amount_is_the_newest_and_a_cleared_amount_is_none() -> None:
    assert deal().amount() == (False, None)
    state = deal(
        Change("amount", "a", at("2026-11-02T00:00:00Z"), "10.5"),
        Change("amount", "b", at("2026-11-03T00:00:00Z"), "12"),
    )
    assert state.amount() == (True, Decimal(12))
    state.add_change(Change("amount", "c", at("2026-11-04T00:00:00Z"), None))
    assert state.amount() == (True, None)


def test_a_contribution_is_stored_exactly_and_differences_drop_empty_rows() -> None:
    state = deal(
        Change("owner", "a", at("2026-11-02T00:00:00Z"), "1", "r1"),
        events=(won("2026-11-10T03:00:00Z", "0.0001"),),
    )
    contribution = state.contribution(lambda tenant, rep: NY)
    day = ("acme", "r1", date(2026, 11, 9))
    assert contribution.rep[day][:1] == [1]
    stored = load_contribution("acme", contribution_json(contribution))
    assert stored.rep_rows() == contribution.rep_rows()
    assert difference(contribution, stored).rep == {}
    assert difference(Deltas(), stored).rep_rows()[0][3] == -1  # the events counter, taken back
