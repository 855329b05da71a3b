"""The capacity plan's pure core: a worked example done by hand, and plans with attrition and
failures checked against a simulation of the team written here, cohort by cohort."""

from __future__ import annotations

import math

import pytest

from services.api.planning.capacity import PlanInputs, TooLittleHistory, plan, ramp_shares


def test_worked_example_by_hand() -> None:
    """Ramp 20 % then 60 % of a ramped rep, ramped from tenure month 2. A ramped rep makes 10,000
    (quota 12,500 at a median attainment of 0.8); a fifth of hires fail; nobody leaves. Four ramped
    reps and one hired this month; the target is 80,000 a month, 8 ramped reps.

    Months 0 and 1: no hire started within the plan is ramped in time. Today's team is
    4 + 0.2 = 4.2 then 4 + 0.6 = 4.6 ramped reps. Month 2: the team is 5, 3 short; 3 net hires
    started in month 0 (2 months ahead) cover it, 3 / (1 - 0.2) = 3.75, so 4 hires, worth
    4 x 0.8 = 3.2 ramped reps: 0.64 in month 0, 1.92 in month 1, 3.2 from month 2 on. Months 3
    and 4 have 8.2 reps: nothing more to hire. Linear math: 80,000 / 12,500 = 6.4, so 7 reps, 2
    hires on top of the 5."""
    p = PlanInputs(
        target=80_000,
        months=5,
        shares=(0.2, 0.6),
        per_rep=10_000,
        quota=12_500,
        failure_rate=0.2,
        attrition=0.0,
        team=(12, 12, 12, 12, 0),
    )
    made = plan(p)
    assert [m.hires for m in made.months] == [4, 0, 0, 0, 0]
    assert made.hires == 4
    assert [m.existing_equivalents for m in made.months] == pytest.approx([4.2, 4.6, 5, 5, 5])
    assert [m.equivalents for m in made.months] == pytest.approx([4.84, 6.52, 8.2, 8.2, 8.2])
    assert [m.capacity for m in made.months] == pytest.approx([48_400, 65_200, 82_000, 82_000, 82_000])
    assert [m.gap for m in made.months] == pytest.approx([31_600, 14_800, -2_000, -2_000, -2_000])
    assert [m.gap_without_hires for m in made.months] == pytest.approx(
        [38_000, 34_000, 30_000, 30_000, 30_000]
    )
    assert [m.linear_reps for m in made.months] == pytest.approx([6.4] * 5)
    assert (made.linear_reps, made.linear_hires) == (7, 2)
    assert [m.linear_hires for m in made.months] == [2, 0, 0, 0, 0]


def simulate(p: PlanInputs) -> tuple[list[int], list[float]]:
    """The plan as a team simulation: each rep (or each month's hires) is a cohort whose expected
    head count shrinks by the attrition every month and produces its ramp share; a month short of
    target asks for hires `len(shares)` months earlier, grossed up for failures."""
    ramp = len(p.shares)

    def produce(tenure: int | None) -> float:
        if tenure is None or tenure >= ramp:
            return 1.0
        return p.shares[tenure] if tenure >= 0 else 0.0

    hires = [0] * p.months
    for t in range(ramp, p.months):
        team = 0.0
        for k in p.team:
            alive = 1.0
            for _ in range(p.lead + t):
                alive *= 1 - p.attrition
            team += alive * produce(None if k is None else k + t)
        for h in range(t + 1):
            alive = hires[h] * (1 - p.failure_rate)
            for _ in range(t - h):
                alive *= 1 - p.attrition
            team += alive * produce(t - h)
        short = p.target / p.per_rep - team
        if short > 1e-9:
            worth = (1 - p.attrition) ** ramp
            hires[t - ramp] += math.ceil(short / worth / (1 - p.failure_rate) - 1e-9)
    equivalents = []
    for t in range(p.months):
        team = sum((1 - p.attrition) ** (p.lead + t) * produce(None if k is None else k + t) for k in p.team)
        team += sum(
            hires[h] * (1 - p.failure_rate) * (1 - p.attrition) ** (t - h) * produce(t - h)
            for h in range(t + 1)
        )
        equivalents.append(team)
    return hires, equivalents


@pytest.mark.parametrize(
    ("attrition", "failure_rate", "lead", "target"),
    [(0.03, 0.35, 1, 150_000), (0.0, 0.4, 0, 90_000), (0.08, 0.3, 3, 400_000), (0.02, 0.0, 0, 20_000)],
)
def test_plan_matches_a_simulated_team(
    attrition: float, failure_rate: float, lead: int, target: float
) -> None:
    p = PlanInputs(
        target=target,
        months=18,
        shares=(0.05, 0.3, 0.55, 0.75),
        per_rep=9_000,
        quota=11_000,
        failure_rate=failure_rate,
        attrition=attrition,
        team=(0, 1, 2, 3, 5, 8, 13, 21, 30, None, -1),
        lead=lead,
    )
    made = plan(p)
    hires, equivalents = simulate(p)
    assert [m.hires for m in made.months] == hires
    assert [m.equivalents for m in made.months] == pytest.approx(equivalents)
    assert [m.capacity for m in made.months] == pytest.approx([e * 9_000 for e in equivalents])
    # From the month hires started at the plan's start have ramped, every month makes the target.
    assert all(m.gap <= 1e-6 for m in made.months[4:])
    linear = math.ceil(target / 11_000)
    assert made.linear_hires == max(0, linear - len(p.team))


def test_attrition_makes_later_hires() -> None:
    """A team that makes the target today but loses 5 % a month needs hires later, never in linear math."""
    p = PlanInputs(
        target=100_000,
        months=12,
        shares=(0.5,),
        per_rep=10_000,
        quota=10_000,
        failure_rate=0.35,
        attrition=0.05,
        team=(20,) * 11,
    )
    made = plan(p)
    assert made.months[0].hires == 0
    assert made.hires > 0
    assert sum(m.hires for m in made.months[3:]) > 0
    assert made.linear_hires == 0
    assert all(m.gap <= 1e-6 for m in made.months[1:])


def test_ramp_shares_need_every_month_before_the_ramp() -> None:
    assert ramp_shares([100.0, 450.0, 900.0, 1200.0], 1000.0, 3) == pytest.approx((0.1, 0.45, 0.9))
    assert ramp_shares([-5.0, 2000.0], 1000.0, 2) == (0.0, 1.0)
    with pytest.raises(TooLittleHistory) as err:
        ramp_shares([100.0, None, 900.0], 1000.0, 3)
    assert err.value.field == "ramp"
    assert err.value.code == "insufficient_history"
    assert "tenure month 1" in err.value.reason
