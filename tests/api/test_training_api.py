"""Training (SPEC 5.4) end to end: hires, wins and certifications posted through ingest; ramp medians,
days to first win and certification statistics worked out by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.org import Org, organisation
from tests.conftest import Services
from tests.factories import TenantFactory

TODAY = datetime.now(UTC).date()
NEW_HIRE = TODAY - timedelta(days=7)  # hired last week
HIRES = {
    "r1": date(2025, 1, 15),
    "r2": date(2025, 2, 1),
    "r3": date(2025, 3, 31),  # month 1 starts on 30 April (31 April does not exist)
    "r4": date(2025, 4, 10),  # no activity at all
    "r5": NEW_HIRE,
}


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)


def won(org: Org, rep: str, day: date, amount: int) -> None:
    org.event("deal.won", at(day), rep_id=rep, amount=str(amount))


def certification(org: Org, rep: str, day: date, module: str, score: float, passed: bool) -> None:
    org.event("training.certification", at(day, 10), rep_id=rep, module=module, score=score, passed=passed)


@pytest.fixture(scope="module")
async def org(services: Services, tenants: TenantFactory, engine: AsyncEngine) -> AsyncIterator[Org]:
    async with organisation(services, tenants, engine) as o:
        for rep, hired in HIRES.items():
            await o.rep(rep, team="east", hired_at=str(hired))
        await o.rep("no-date", team="east")  # no hire date: not part of any ramp
        await o.rep("left", team="east", hired_at="2025-01-20", active=False)

        won(o, "r1", date(2025, 1, 20), 1000)  # month 0 (15 Jan - 14 Feb)
        won(o, "r1", date(2025, 2, 20), 2000)  # month 1
        won(o, "r1", date(2025, 3, 20), 3000)  # month 2
        won(o, "r2", date(2025, 1, 10), 9999)  # before the hire: no month, not a first win
        o.event("deal.lost", at(date(2025, 2, 10)), rep_id="r2")  # month 0
        won(o, "r2", date(2025, 3, 5), 500)  # month 1 (1 Mar - 31 Mar)
        won(o, "r3", date(2025, 4, 29), 100)  # month 0 (31 Mar - 29 Apr)
        won(o, "r3", date(2025, 4, 30), 700)  # month 1
        won(o, "r5", NEW_HIRE + timedelta(days=3), 50)
        won(o, "no-date", date(2025, 2, 2), 4242)
        won(o, "left", date(2025, 1, 25), 4242)

        certification(o, "r1", date(2025, 1, 20), "discovery", 55, False)
        certification(o, "r1", date(2025, 2, 10), "discovery", 80, True)
        certification(o, "r2", date(2025, 2, 5), "discovery", 90, True)
        certification(o, "r3", date(2025, 4, 10), "discovery", 40, False)
        certification(o, "r1", date(2025, 3, 1), "demo", 85, True)
        certification(o, "r2", date(2025, 6, 1), "demo", 70, True)  # after month 3 (1 May)
        certification(o, "no-date", date(2025, 5, 1), "demo", 60, True)
        certification(o, "left", date(2025, 2, 1), "discovery", 100, True)
        await o.flush()
        yield o


def quarter(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def months(*medians: tuple[int, float | None]) -> list[dict[str, Any]]:
    return [{"month": i, "reps": n, "median": m} for i, (n, m) in enumerate(medians)]


async def test_ramp_by_quarter(org: Org) -> None:
    body = await org.get("/v1/training/ramp", cohort="quarter", months=3)
    assert (body["metric"], body["cohort"]) == ("revenue_won", "quarter")
    assert body["as_of"] is not None
    assert body["cohorts"] == [
        {
            "cohort": "2025-Q1",
            "reps": 3,
            # month 0: r1 1000, r2 0, r3 100; month 1: 2000, 500, 700; month 2: 3000, 0, 0
            "months": months((3, 100.0), (3, 700.0), (3, 0.0)),
            # r1 15 Jan -> 20 Jan; r2 1 Feb -> 5 Mar (its win before the hire does not count);
            # r3 31 Mar -> 29 Apr
            "days_to_first_win": {"r1": 5, "r2": 32, "r3": 29},
            # hired after the tenant's first event (10 Jan 2025): every month is known
            "data_from_month": 0,
        },
        {
            "cohort": "2025-Q2",
            "reps": 1,
            "months": months((1, 0.0), (1, 0.0), (1, 0.0)),
            "days_to_first_win": {"r4": None},
            "data_from_month": 0,
        },
        # hired last week: only month 0 has started
        {
            "cohort": quarter(NEW_HIRE),
            "reps": 1,
            "months": months((1, 50.0)),
            "days_to_first_win": {"r5": 3},
            "data_from_month": 0,
        },
    ]
    # After month 2 nobody won anything: a steady state of 0 measures no ramp.
    assert (body["ramp_months"], body["ramp_measured"], body["steady_state"]) == (3, False, 0.0)


async def test_ramp_by_month_runs_to_the_longest_tenure(org: Org) -> None:
    body = await org.get("/v1/training/ramp", cohort="month")  # 12 months by default
    by_cohort = {c["cohort"]: c for c in body["cohorts"]}
    assert list(by_cohort) == ["2025-01", "2025-02", "2025-03", "2025-04", f"{NEW_HIRE:%Y-%m}"]
    assert by_cohort["2025-01"]["months"][:4] == months((1, 1000.0), (1, 2000.0), (1, 3000.0), (1, 0.0))
    assert len(by_cohort["2025-01"]["months"]) == 12
    assert by_cohort["2025-03"]["months"][:2] == months((1, 100.0), (1, 700.0))


async def test_ramp_of_a_rate_leaves_months_without_deals_out(org: Org) -> None:
    body = await org.get("/v1/training/ramp", cohort="quarter", metric="win_rate", months=3)
    q1 = body["cohorts"][0]
    # month 0: r1 1/1, r2 0/1, r3 1/1; month 1: all 1/1; month 2: only r1 closed anything
    assert q1["months"] == months((3, 1.0), (3, 1.0), (1, 1.0))
    assert body["cohorts"][1]["months"] == months((0, None), (0, None), (0, None))


async def test_the_window_selects_hires(org: Org) -> None:
    body = await org.get(
        "/v1/training/ramp", cohort="quarter", months=2, **{"from": "2025-01-01", "to": "2025-03-31"}
    )
    assert [c["cohort"] for c in body["cohorts"]] == ["2025-Q1"]
    recent = await org.get("/v1/training/ramp", window="30d")
    assert [list(c["days_to_first_win"]) for c in recent["cohorts"]] == [["r5"]]


async def test_certifications(org: Org) -> None:
    body = await org.get("/v1/training/certifications", months=3)
    assert body["metric"] == "revenue_won"
    assert body["modules"] == {
        "demo": {
            "attempts": 3,
            "reps_attempted": 3,
            "reps_passed": 3,
            "pass_rate": 1.0,
            "median_score": 70.0,
            "median_days_to_pass": 82.5,  # r1 45 days, r2 120 days; "no-date" has no hire date
        },
        "discovery": {
            "attempts": 4,  # the inactive rep's attempt is not counted
            "reps_attempted": 3,
            "reps_passed": 2,
            "pass_rate": pytest.approx(2 / 3),
            "median_score": 67.5,  # 40 55 80 90
            "median_days_to_pass": 15.0,  # r1 26 days, r2 4 days
        },
    }
    ramp = body["certified_ramp"]
    assert ramp["by_month"] == 3
    assert ramp["modules"] == ["demo", "discovery"]
    # Only r1 passed both modules within three months of its hire.
    assert ramp["certified"] == {"reps": 1, "months": months((1, 1000.0), (1, 2000.0), (1, 3000.0))}
    # r2, r3, r4 and the new hire: month 0 is 0, 100, 0, 50
    assert ramp["others"] == {"reps": 4, "months": months((4, 25.0), (3, 500.0), (3, 0.0))}


async def test_certifications_of_the_selected_hires(org: Org) -> None:
    body = await org.get(
        "/v1/training/certifications", months=3, **{"from": "2025-01-01", "to": "2025-03-31"}
    )
    assert body["modules"]["demo"]["attempts"] == 2
    assert body["certified_ramp"]["others"]["reps"] == 2


async def test_refusals(org: Org) -> None:
    for url, params, field in [
        ("/v1/training/ramp", {"metric": "happiness"}, "metric"),
        ("/v1/training/ramp", {"cohort": "week"}, "cohort"),
        ("/v1/training/ramp", {"months": "0"}, "months"),
        ("/v1/training/ramp", {"from": "2025-01-01"}, "to"),
        ("/v1/training/certifications", {"metric": "happiness"}, "metric"),
        ("/v1/training/certifications", {"window": "0d"}, "window"),
    ]:
        r = await org.request("GET", url, params=params)
        assert r.status_code == 422, (url, params, r.text)
        assert any(d["field"].endswith(field) for d in r.json()["error"]["details"]), r.text
