"""Ramp and certifications (SPEC 5.4) on a small organisation worked out by hand."""

from __future__ import annotations

from datetime import date

import pytest

from services.api.kit.tenure import add_months, first_known_month, month_index
from services.api.training.schemas import CertificationsOut, RampOut
from services.api.training.service import (
    Attempt,
    MonthRange,
    RampMonth,
    RampRep,
    certifications,
    certified_reps,
    cohort_key,
    days_to_first_win,
    module_stats,
    month_ranges,
    ramp,
    ramp_months,
)

D = date


@pytest.mark.parametrize(
    ("day", "index"),
    [
        (D(2026, 1, 30), None),
        (D(2026, 1, 31), 0),
        (D(2026, 2, 27), 0),
        (D(2026, 2, 28), 1),  # 31 Jan + 1 month is clamped to 28 Feb
        (D(2026, 3, 30), 1),
        (D(2026, 3, 31), 2),
        (D(2027, 1, 31), 12),
        (D(2027, 1, 30), 11),
    ],
)
def test_month_index_clamps_to_month_end(day: date, index: int | None) -> None:
    assert month_index(D(2026, 1, 31), day) == index


def test_add_months() -> None:
    assert add_months(D(2028, 1, 31), 1) == D(2028, 2, 29)  # leap year
    assert add_months(D(2026, 11, 15), 3) == D(2027, 2, 15)
    assert add_months(D(2026, 3, 31), -1) == D(2026, 2, 28)


def test_month_index_agrees_with_ranges_on_every_day() -> None:
    hired = D(2026, 1, 31)
    ranges = month_ranges(hired, D(2026, 12, 31))
    for r in ranges:
        for offset in range((r.end - r.start).days):
            assert month_index(hired, D.fromordinal(r.start.toordinal() + offset)) == r.index
    assert [r.start for r in ranges[:3]] == [D(2026, 1, 31), D(2026, 2, 28), D(2026, 3, 31)]


def test_month_ranges_up_to_the_current_month() -> None:
    hired = D(2026, 1, 15)
    assert month_ranges(hired, D(2026, 3, 20)) == [
        MonthRange(0, D(2026, 1, 15), D(2026, 2, 15), complete=True),
        MonthRange(1, D(2026, 2, 15), D(2026, 3, 15), complete=True),
        MonthRange(2, D(2026, 3, 15), D(2026, 4, 15), complete=False),
    ]
    # on 14 Feb month 0 is current; on 15 Feb its last day (14 Feb) is past and month 1 begins
    assert [(r.index, r.complete) for r in month_ranges(hired, D(2026, 2, 14))] == [(0, False)]
    assert [(r.index, r.complete) for r in month_ranges(hired, D(2026, 2, 15))] == [(0, True), (1, False)]
    assert month_ranges(hired, D(2026, 1, 14)) == []
    assert [r.index for r in month_ranges(hired, D(2026, 12, 1), max_months=2)] == [0, 1]


def test_cohort_keys() -> None:
    assert cohort_key(D(2026, 3, 5), "month") == "2026-03"
    assert cohort_key(D(2026, 3, 5), "quarter") == "2026-Q1"
    assert cohort_key(D(2026, 4, 1), "quarter") == "2026-Q2"
    assert cohort_key(D(2026, 12, 31), "quarter") == "2026-Q4"


def test_days_to_first_win() -> None:
    assert days_to_first_win(D(2026, 1, 10), D(2026, 2, 20)) == 41
    assert days_to_first_win(D(2026, 1, 10), D(2026, 1, 10)) == 0
    assert days_to_first_win(D(2026, 1, 10), None) is None
    assert days_to_first_win(D(2026, 1, 10), D(2026, 1, 9)) is None


TODAY = D(2026, 4, 5)
# revenue_won per tenure month; a missing month had no won deals
R1 = RampRep("r1", D(2026, 1, 10), {0: 0.0, 1: 5000.0, 2: 12000.0}, first_win=D(2026, 2, 20))
R2 = RampRep("r2", D(2026, 2, 1), {0: 1000.0, 1: 3000.0}, first_win=D(2026, 2, 25))
R3 = RampRep("r3", D(2026, 3, 25), {0: 0.0})
R4 = RampRep("r4", D(2026, 4, 1), {1: 999.0})  # hired last week; month 1 has not started
R5 = RampRep("r5", D(2026, 1, 20), {0: 2000.0, 1: 7000.0, 2: 4000.0}, first_win=D(2026, 2, 1))
NO_HIRE_DATE = RampRep("old", None, {0: 50000.0})


def test_ramp_by_quarter() -> None:
    cohorts = ramp([R1, R2, R3, R4, NO_HIRE_DATE], cohort="quarter", today=TODAY, missing=0.0)
    assert [c.cohort for c in cohorts] == ["2026-Q1", "2026-Q2"]
    q1, q2 = cohorts
    assert q1.reps == 3
    # on 5 Apr: r1 is in month 2 (10 Apr starts month 3), r2 in month 2, r3 in month 0
    assert q1.months == (
        RampMonth(0, 3, 0.0),  # 0, 1000, 0
        RampMonth(1, 2, 4000.0),  # 5000, 3000
        RampMonth(2, 2, 6000.0),  # 12000, 0 (r2 had no wins in month 2)
    )
    assert q1.days_to_first_win == {"r1": 41, "r2": 24, "r3": None}
    assert q2.reps == 1
    assert q2.months == (RampMonth(0, 1, 0.0),)
    assert q2.days_to_first_win == {"r4": None}


def test_missing_months_without_a_fill_are_no_data() -> None:
    [q1] = ramp([R1, R2, R3], cohort="quarter", today=TODAY)
    assert q1.months[2] == RampMonth(2, 1, 12000.0)
    rates = [RampRep("a", D(2026, 1, 10), {0: 0.2, 1: None}), RampRep("b", D(2026, 1, 12), {0: 0.4, 1: 0.3})]
    assert ramp_months(rates, today=TODAY) == (
        RampMonth(0, 2, pytest.approx(0.3)),  # type: ignore[arg-type]
        RampMonth(1, 1, 0.3),
        RampMonth(2, 0, None),
    )


def test_ramp_by_month_and_capped() -> None:
    cohorts = ramp([R1, R2, R3, R4], cohort="month", today=TODAY, missing=0.0, max_months=2)
    assert [c.cohort for c in cohorts] == ["2026-01", "2026-02", "2026-03", "2026-04"]
    assert cohorts[0].months == (RampMonth(0, 1, 0.0), RampMonth(1, 1, 5000.0))
    assert cohorts[3].months == (RampMonth(0, 1, 0.0),)


def test_future_hire_counts_in_its_cohort_without_months() -> None:
    [cohort] = ramp([RampRep("new", D(2026, 5, 1), {})], cohort="quarter", today=TODAY, missing=0.0)
    assert (cohort.cohort, cohort.reps, cohort.months) == ("2026-Q2", 1, ())


def test_ramp_response_shape() -> None:
    cohorts = ramp([R1], cohort="quarter", today=TODAY, missing=0.0)
    body = RampOut(
        metric="revenue_won",
        cohort="quarter",
        as_of=None,
        cohorts=cohorts,
        ramp_months=3,
        ramp_measured=False,
        steady_state=None,
    ).model_dump(mode="json")
    assert body["cohorts"][0]["months"][1] == {"month": 1, "reps": 1, "median": 5000.0}
    assert body["cohorts"][0]["days_to_first_win"] == {"r1": 41}
    assert body["cohorts"][0]["data_from_month"] == 0
    assert (body["ramp_months"], body["ramp_measured"], body["steady_state"]) == (3, False, None)


ATTEMPTS = [
    Attempt("r1", "discovery", False, D(2026, 1, 20), 55),
    Attempt("r1", "discovery", True, D(2026, 2, 1), 80),
    Attempt("r1", "demo", True, D(2026, 3, 1), 90),
    Attempt("r1", "discovery", True, D(2026, 3, 10), 88),  # a retake after passing
    Attempt("r2", "discovery", True, D(2026, 2, 10), 85),
    Attempt("r2", "demo", True, D(2026, 5, 15), 75),  # after 1 May: too late for month 3
    Attempt("r3", "discovery", False, D(2026, 4, 1), 40),
    Attempt("r4", "discovery", True, D(2026, 1, 5), 70),  # not a current rep: no hire date
    Attempt("r5", "discovery", True, D(2026, 1, 15), 95),  # before starting on 20 Jan
    Attempt("r5", "demo", True, D(2026, 2, 1)),  # no score recorded
]


def test_module_stats_by_hand() -> None:
    hired = {r.rep_id: r.hired_at for r in (R1, R2, R3, R5)}
    stats = module_stats(ATTEMPTS, hired)
    assert list(stats) == ["demo", "discovery"]
    discovery = stats["discovery"]
    assert discovery.attempts == 7
    assert discovery.reps_attempted == 5
    assert discovery.reps_passed == 4
    assert discovery.pass_rate == 0.8
    assert discovery.median_score == 80.0  # 40 55 70 80 85 88 95
    assert discovery.median_days_to_pass == 9.0  # r1 22, r2 9, r5 0 (passed before the start)
    demo = stats["demo"]
    assert (demo.attempts, demo.reps_attempted, demo.reps_passed, demo.pass_rate) == (3, 3, 3, 1.0)
    assert demo.median_score == 82.5  # 90 75
    assert demo.median_days_to_pass == 50.0  # r1 50, r2 103, r5 12


def test_certified_by_month_three() -> None:
    hired = {r.rep_id: r.hired_at for r in (R1, R2, R3, R5)}
    assert certified_reps(ATTEMPTS, hired) == {"r1", "r5"}
    assert certified_reps(ATTEMPTS, hired, by_month=5) == {"r1", "r2", "r5"}
    assert certified_reps([], hired) == set()


def test_certification_deadline_is_the_start_of_month_three() -> None:
    hired = {"x": D(2026, 1, 10)}
    assert certified_reps([Attempt("x", "m", True, D(2026, 4, 9))], hired) == {"x"}
    assert certified_reps([Attempt("x", "m", True, D(2026, 4, 10))], hired) == set()


def test_certified_ramp_against_the_others() -> None:
    report = certifications(ATTEMPTS, [R1, R2, R3, R5, NO_HIRE_DATE], today=TODAY, missing=0.0)
    cr = report.certified_ramp
    assert cr.by_month == 3
    assert cr.modules == ("demo", "discovery")
    assert cr.certified.reps == 2  # r1, r5
    assert cr.certified.months == (RampMonth(0, 2, 1000.0), RampMonth(1, 2, 6000.0), RampMonth(2, 2, 8000.0))
    assert cr.others.reps == 2  # r2, r3
    assert cr.others.months == (RampMonth(0, 2, 500.0), RampMonth(1, 1, 3000.0), RampMonth(2, 1, 0.0))
    assert report.modules["discovery"].median_days_to_pass == 9.0
    out = CertificationsOut(
        metric="revenue_won", as_of=None, modules=report.modules, certified_ramp=report.certified_ramp
    )
    body = out.model_dump(mode="json")
    assert body["certified_ramp"]["certified"]["months"][2] == {"month": 2, "reps": 2, "median": 8000.0}
    assert body["modules"]["demo"]["pass_rate"] == 1.0


def test_no_certifications_puts_everyone_with_a_hire_date_in_the_others() -> None:
    report = certifications([], [R1, R3, NO_HIRE_DATE], today=TODAY, missing=0.0)
    assert report.modules == {}
    assert report.certified_ramp.certified.reps == 0
    assert report.certified_ramp.certified.months == ()
    assert report.certified_ramp.others.reps == 2


@pytest.mark.parametrize(
    ("data_from", "month"),
    [
        (D(2025, 12, 1), 0),  # known before the hire: from month 0
        (D(2026, 1, 31), 0),
        (D(2026, 2, 1), 1),  # month 0 began before the data: month 1 (28 Feb) is the first known
        (D(2026, 2, 28), 1),
        (D(2026, 3, 1), 2),  # month 2 starts on 31 Mar
    ],
)
def test_first_known_month(data_from: date, month: int) -> None:
    assert first_known_month(D(2026, 1, 31), data_from) == month


def test_unknown_months_are_no_data_not_zero() -> None:
    # Hired before the tenant's data began: months 0 and 1 are unknown, even with a fill for absent months.
    veteran = RampRep("v", D(2026, 1, 10), {2: 4000.0}, first_win=D(2026, 3, 20), known_from=2)
    [q1] = ramp([R1, veteran], cohort="quarter", today=TODAY, missing=0.0)
    assert q1.months == (RampMonth(0, 1, 0.0), RampMonth(1, 1, 5000.0), RampMonth(2, 2, 8000.0))
    assert q1.data_from_month == 0  # r1's months are known from its hire
    # Its first win in the data may not be its first win.
    assert q1.days_to_first_win == {"r1": 41, "v": None}
    [alone] = ramp([veteran], cohort="quarter", today=TODAY, missing=0.0)
    assert alone.months == (RampMonth(0, 0, None), RampMonth(1, 0, None), RampMonth(2, 1, 4000.0))
    assert alone.data_from_month == 2
    nothing = RampRep("n", D(2026, 1, 10), {}, known_from=None)  # no numbers at all
    [none] = ramp([nothing], cohort="quarter", today=TODAY, missing=0.0)
    assert none.months == (RampMonth(0, 0, None), RampMonth(1, 0, None), RampMonth(2, 0, None))
    assert none.data_from_month is None
