"""Failure rate, monthly attrition and head count from reps' hire and leaving days, by hand."""

from __future__ import annotations

import math
from datetime import date

from services.api.kit.attrition import RepTenure, headcount, measure_attrition

TODAY = date(2026, 12, 3)


def rep(i: int, hired: date | None, left: date | None = None, *, active: bool | None = None) -> RepTenure:
    return RepTenure(f"r{i}", hired, left, left is None if active is None else active)


def test_failure_rate_counts_hires_with_a_complete_first_year() -> None:
    reps = [rep(i, date(2024, 1, 1 + i)) for i in range(8)]  # stayed
    reps += [
        rep(8, date(2025, 1, 10), date(2025, 6, 1)),  # failed
        rep(9, date(2025, 2, 1), date(2026, 1, 31)),  # failed: left the day before its anniversary
        rep(10, date(2025, 3, 1), date(2026, 3, 1)),  # made it: left on its anniversary
        rep(11, date(2025, 12, 3)),  # first year complete today
        rep(12, date(2025, 12, 4), date(2026, 2, 1)),  # first year not complete: not counted yet
        rep(13, date(2025, 1, 1), active=False),  # switched off without a leaving day: left out
        rep(14, None),  # no hire date: left out
    ]
    found = measure_attrition(reps, today=TODAY)
    assert (found.failed, found.hires) == (2, 12)
    assert found.failure_rate == 2 / 12


def test_too_few_hires_measure_no_failure_rate() -> None:
    reps = [rep(i, date(2024, 1, 1), date(2024, 3, 1) if i < 5 else None) for i in range(9)]
    found = measure_attrition(reps, today=TODAY)
    assert (found.failed, found.hires, found.failure_rate) == (5, 9, None)


def test_monthly_attrition_over_the_last_year_past_the_first_year() -> None:
    """Since 3 Dec 2025: ten veterans on the team, two of them leaving; a rep whose first year ended
    in June counts from then; a failure in its first year is not attrition."""
    reps = [rep(i, date(2020, 1, 1)) for i in range(8)]  # 365 days each
    reps += [
        rep(8, date(2020, 1, 1), date(2026, 3, 4)),  # 91 days, left
        rep(9, date(2019, 5, 5), date(2026, 12, 2)),  # 364 days, left yesterday
        rep(10, date(2025, 6, 10)),  # first year ends 10 Jun 2026: 176 days
        rep(11, date(2026, 1, 5), date(2026, 5, 1)),  # a failure, not attrition
        rep(12, date(2020, 1, 1), date(2025, 11, 1)),  # left before the last year
    ]
    found = measure_attrition(reps, today=TODAY)
    days = 8 * 365 + 91 + 364 + 176
    assert found.reps_exposed == 11
    assert found.leavers == 2
    assert math.isclose(found.rep_months, days / (365.25 / 12))
    assert found.monthly_rate is not None
    assert math.isclose(found.monthly_rate, 1 - math.exp(-2 / (days / (365.25 / 12))))


def test_too_few_veterans_measure_no_attrition() -> None:
    reps = [rep(i, date(2020, 1, 1)) for i in range(9)] + [rep(9, date(2026, 1, 1))]
    found = measure_attrition(reps, today=TODAY)
    assert (found.reps_exposed, found.monthly_rate) == (9, None)


def test_headcount_on_a_day() -> None:
    reps = [
        rep(1, date(2026, 1, 1)),
        rep(2, date(2026, 9, 1)),
        rep(3, date(2026, 1, 1), date(2026, 9, 3)),  # away from 3 Sep on
        rep(4, None),  # no hire date: counted while active
        rep(5, None, active=False),
        rep(6, date(2026, 1, 1), active=False),  # switched off without a leaving day
    ]
    assert headcount(reps, date(2026, 9, 2)) == 4
    assert headcount(reps, date(2026, 9, 3)) == 3
    assert headcount(reps, date(2026, 8, 31)) == 3
