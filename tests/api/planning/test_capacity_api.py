"""GET /v1/planning/capacity end to end: fourteen reps and a year and more of won deals posted
through ingest and folded by the aggregator; the ramp, failure rate, attrition, quota and attainment
worked out here from the same dates, and the plan from them by the test's own team simulation."""

from __future__ import annotations

import calendar
import math
import statistics
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.planning.capacity import PlanInputs
from tests.api.org import Org, organisation
from tests.api.planning.test_capacity import simulate
from tests.conftest import Services
from tests.factories import TenantFactory

TODAY = datetime.now(UTC).date()
QUOTA = 10_000
CURVE = {0: 1_000, 1: 4_000, 2: 7_000}  # then 10,000 a month: ramped from tenure month 3
MONTH = 365.25 / 12


def add_months(day: date, months: int) -> date:
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def hired(months_ago: int) -> date:
    return add_months(TODAY, -months_ago).replace(day=10)


# rep -> (hired, left)
REPS: dict[str, tuple[date, date | None]] = {f"v{i}": (hired(13 + i), None) for i in range(10)}
REPS["gone"] = (hired(20), TODAY - timedelta(days=40))  # left after its first year: attrition
for i in range(3):  # left in tenure month 5: failures
    REPS[f"f{i}"] = (hired(14 + i), add_months(hired(14 + i), 5) + timedelta(days=3))


def months_worked(start: date, left: date | None) -> list[tuple[int, date]]:
    """(tenure month, its first day) of every month begun before today and the leaving day."""
    out, k = [], 0
    while (first := add_months(start, k)) < min(TODAY, left or TODAY):
        out.append((k, first))
        k += 1
    return out


@pytest.fixture(scope="module")
async def org(services: Services, tenants: TenantFactory, engine: AsyncEngine) -> AsyncIterator[Org]:
    async with organisation(services, tenants, engine) as o:
        for rep, (start, left) in REPS.items():
            body = {"hired_at": str(start), "quota_monthly": QUOTA}
            if left is not None:
                body["left_at"] = str(left)
            await o.rep(rep, **body)
            for k, first in months_worked(start, left):
                at = datetime.combine(first, time(12), tzinfo=UTC)
                o.event("deal.won", at, rep_id=rep, amount=str(CURVE.get(k, 10_000)))
        await o.flush()
        yield o


def expected_inputs() -> dict[str, float]:
    since = add_months(TODAY, -12)
    days, leavers = 0, 0
    for start, left in REPS.values():
        anniversary = add_months(start, 12)
        if left is not None and left < anniversary:
            continue  # a failure
        lo, hi = max(since, anniversary), min(TODAY, left or TODAY)
        days += max(0, (hi - lo).days)
        leavers += left is not None
    attainments = []
    for start, left in REPS.values():
        for k, first in months_worked(start, left):
            end = add_months(start, k + 1)
            if 6 <= k <= 24 and end <= min(TODAY, left or TODAY):
                attainments.append(10_000 / (QUOTA * (end - first).days / MONTH))
    return {
        "failure_rate": 3 / 14,
        "monthly_attrition": 1 - math.exp(-leavers / (days / MONTH)),
        "quota": QUOTA,
        "median_attainment": statistics.median(attainments),
    }


def plan_inputs(found: dict[str, float], failure_rate: float) -> tuple[date, PlanInputs]:
    """The first month the plan covers, and the inputs of a 150,000 bookings, nine-month plan over
    the measured team (`found`: expected_inputs()) with `failure_rate`."""
    start = add_months(TODAY.replace(day=1), 1)
    # Hired on the 10th: on the 1st of a month the tenure month is one less than the months between.
    team = tuple(
        (start.year - s.year) * 12 + start.month - s.month - 1 for s, left in REPS.values() if not left
    )
    return start, PlanInputs(
        target=150_000,
        months=9,
        shares=(0.1, 0.4, 0.7),
        per_rep=QUOTA * found["median_attainment"],
        quota=QUOTA,
        failure_rate=failure_rate,
        attrition=found["monthly_attrition"],
        team=team,
        lead=1,
    )


@asynccontextmanager
async def failure_rate_set(org: Org, rate: str) -> AsyncIterator[None]:
    """The economics settings' failure rate set to `rate` for the block, the settings emptied after."""
    r = await org.request("PUT", "/v1/economics/settings", json={"failure_rate": rate})
    assert r.status_code == 200, r.text
    try:
        yield
    finally:
        await org.request("PUT", "/v1/economics/settings", json={})


async def plan_and_fit(org: Org) -> tuple[dict[str, Any], dict[str, Any]]:
    """The 150,000 bookings, nine-month plan and the fit, as the API answers them now."""
    body = await org.get("/v1/planning/capacity", target_bookings=150_000, months=9)
    return body, await org.get("/v1/planning/fit")


async def test_plan_from_the_measured_team(org: Org) -> None:
    found = expected_inputs()
    start, p = plan_inputs(found, found["failure_rate"])
    body = await org.get("/v1/planning/capacity", target_bookings=150_000, months=9)
    assert (body["start"], body["months"], body["target"]) == (f"{start:%Y-%m}", 9, "bookings")
    assert body["ramp"] == {
        "metric": "revenue_won",
        "months": 3,
        "shares": [0.1, 0.4, 0.7],
        "steady_state": 10_000.0,
        "reps": 14,
    }
    for name, value in found.items():
        assert body["inputs"][name]["value"] == pytest.approx(value), name
        assert body["inputs"][name]["source"] == "measured", name
    assert body["measured"] == ["failure_rate", "monthly_attrition", "quota", "median_attainment"]
    assert body["defaulted"] == body["from_settings"] == []
    assert body["active_reps"] == 10

    per_rep = QUOTA * found["median_attainment"]
    hires, equivalents = simulate(p)
    assert [m["hires"] for m in body["plan"]] == hires
    assert body["hires"] == sum(hires) > 0
    assert [m["ramped_rep_equivalents"] for m in body["plan"]] == pytest.approx(equivalents, abs=1e-3)
    assert [m["capacity"] for m in body["plan"]] == pytest.approx(
        [e * per_rep for e in equivalents], abs=0.01
    )
    assert [m["month"] for m in body["plan"]][:2] == [f"{start:%Y-%m}", f"{add_months(start, 1):%Y-%m}"]
    # Linear math: 150,000 / 10,000 = 15 reps, five more than today's ten, all hired at once.
    assert body["linear"] == {"reps": 15, "hires": 5}
    assert [m["linear_hires"] for m in body["plan"]] == [5] + [0] * 8
    assert all(m["linear_reps"] == 15 for m in body["plan"])


async def test_fit_of_the_measured_team(org: Org) -> None:
    """No billing yet: the market lights are unknown. Three of fourteen hires failed (0.21) and every
    hire cohort ramps in 3 months: scale is green. The team shrank by the leaver: not scaling."""
    body = await org.get("/v1/planning/fit")
    assert body["product_market"]["light"] == body["go_to_market"]["light"] == "unknown"
    assert body["scale"]["light"] == "green", body["scale"]
    assert body["scale"]["figures"]["failure_rate"] == pytest.approx(3 / 14)
    assert body["scale"]["figures"]["ramp_months_before"] == body["scale"]["figures"]["ramp_months_last"] == 3
    assert body["headcount"] == {"now": 10, "quarter_ago": 11, "growth": pytest.approx(10 / 11 - 1)}
    assert body["premature_scaling"] is False


async def test_failure_rate_setting_comes_first(org: Org) -> None:
    async with failure_rate_set(org, "0.5"):
        body, fit = await plan_and_fit(org)
    assert body["inputs"]["failure_rate"] == {
        "value": 0.5,
        "source": "settings",
        "basis": "set in the economics settings",
    }
    assert body["from_settings"] == ["failure_rate"]
    assert "failure_rate" not in body["measured"]
    _, p = plan_inputs(expected_inputs(), 0.5)
    assert [m["hires"] for m in body["plan"]] == simulate(p)[0]
    assert fit["scale"]["light"] == "red"
    assert fit["scale"]["figures"]["failure_rate_source"] == "settings"


async def test_a_rep_and_a_setting_written_show_at_once(org: Org) -> None:
    """The inputs measured from the reps are kept for a quarter hour, but a rep written and the
    failure rate set show in the very next answers."""
    before = await org.get("/v1/planning/capacity", target_bookings=150_000, months=9)
    assert before["active_reps"] == 10
    assert before["inputs"]["failure_rate"]["source"] == "measured"
    start, _ = REPS["v0"]
    await org.rep("v0", hired_at=str(start), quota_monthly=QUOTA, left_at=str(TODAY - timedelta(days=1)))
    try:
        async with failure_rate_set(org, "0.25"):
            body, fit = await plan_and_fit(org)
    finally:
        await org.rep("v0", hired_at=str(start), quota_monthly=QUOTA)
    assert body["active_reps"] == 9
    assert body["inputs"]["failure_rate"] == {
        "value": 0.25,
        "source": "settings",
        "basis": "set in the economics settings",
    }
    assert fit["headcount"]["now"] == 9
    assert fit["scale"]["figures"]["failure_rate"] == 0.25
    after = await org.get("/v1/planning/capacity", target_bookings=150_000, months=9)
    assert after["active_reps"] == 10
    assert after["inputs"]["failure_rate"] == before["inputs"]["failure_rate"]


async def test_a_new_mrr_target_converts_bookings_by_the_last_year(org: Org) -> None:
    r = await org.request("GET", "/v1/planning/capacity", params={"target_new_mrr": 5_000})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "target_new_mrr"  # no billing yet
    recent = datetime.combine(TODAY - timedelta(days=30), time(9), tzinfo=UTC)
    for account, mrr in (("acc-1", "1200"), ("acc-2", "800"), ("acc-3", "1000")):
        org.event("subscription.started", recent, account_id=account, mrr=mrr)
    org.event("subscription.started", recent - timedelta(days=400), account_id="acc-old", mrr="9000")
    await org.flush()
    body = await org.get("/v1/planning/capacity", target_new_mrr=5_000, months=6)
    since = TODAY - timedelta(days=365)
    bookings = sum(
        CURVE.get(k, 10_000)
        for start, left in REPS.values()
        for k, first in months_worked(start, left)
        if since <= first < TODAY
    )
    conversion = 3_000 / bookings
    assert body["inputs"]["new_mrr_per_booking"]["value"] == pytest.approx(conversion)
    assert body["target"] == "new_mrr"
    found = expected_inputs()
    assert body["ramped_rep_capacity"] == pytest.approx(
        QUOTA * found["median_attainment"] * conversion, abs=0.01
    )
    assert body["linear"]["reps"] == math.ceil(5_000 / (QUOTA * conversion))
