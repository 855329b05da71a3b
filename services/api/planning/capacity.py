"""The capacity plan (SPEC 5.10), pure: how many reps to start hiring each month so the team makes a
monthly target, given how long the tenant's reps take to ramp, how many leave and how many hires
fail, beside what linear math (target / quota) would say.

The model, month by month (month t = 0 is the plan's first month):

- A rep in tenure month k produces `share(k)` of a ramped rep: the median rep's month k as a share
  of the steady state while it ramps (k below the measured ramp length M), 1 from month M on.
- Every rep stays on the team with probability 1 - attrition per month. A rep on the team today
  at tenure month k0 (at the plan's start) counts `share(k0 + t) * (1 - attrition)^(lead + t)` in
  month t, `lead` being the whole months between today's month and the plan's start; a rep
  without a hire date counts as ramped.
- A hire started in month h counts `(1 - failure_rate) * share(t - h) * (1 - attrition)^(t - h)`
  in month t: a failed hire never counts.
- A ramped rep makes `per_rep` a month (quota x median attainment). Month t needs
  `target / per_rep` ramped rep equivalents. Its shortfall, if any, is closed by hires started M
  months before it (so they are ramped in time): net hires = shortfall / (1 - attrition)^M (each
  is worth that much once ramped), started hires = net hires / (1 - failure_rate), rounded up. The
  months are planned in order, each counting the hires planned for earlier ones. A shortfall in
  the first M months stays: no hire started within the plan ramps in time for it.
- Linear math: target / quota reps, all hired in the first month, productive at once, none
  failing or leaving.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from services.api.kit.errors import InvalidInput

# Rounding slack: a need of 3.0000000001 reps computed in floating point is 3 reps.
EPS = 1e-9


class TooLittleHistory(InvalidInput):
    """The tenant's history cannot measure what the plan needs; `reason` says what is missing."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.code = "insufficient_history"


@dataclass(frozen=True)
class PlanInputs:
    """Everything a plan is computed from, in the target's unit (bookings or new MRR) per month."""

    target: float
    months: int
    shares: tuple[float, ...]  # share(k) for k < M; len(shares) is M
    per_rep: float  # a ramped rep's monthly capacity: quota x median attainment
    quota: float
    failure_rate: float
    attrition: float  # monthly
    team: tuple[int | None, ...]  # each active rep's tenure month at the plan's start
    lead: int = 0  # whole months from today's month to the plan's start


@dataclass(frozen=True)
class PlanMonth:
    index: int
    target: float
    existing_equivalents: float  # today's team, after attrition
    equivalents: float  # today's team and the plan's hires
    capacity: float
    gap: float  # target - capacity: positive short of the target, negative ahead of it
    gap_without_hires: float
    hires: int  # to start this month
    linear_reps: float
    linear_hires: int


@dataclass(frozen=True)
class CapacityPlan:
    months: tuple[PlanMonth, ...]
    hires: int
    linear_reps: int  # whole reps linear math wants on the team
    linear_hires: int


def ramp_shares(curve: Sequence[float | None], steady_state: float, months: int) -> tuple[float, ...]:
    """share(k) for the ramp's months k < `months`: the median of month k over the steady state,
    within 0..1. `TooLittleHistory` when a month of the ramp has no rep measured in it."""
    shares = []
    for k in range(months):
        value = curve[k] if k < len(curve) else None
        if value is None:
            raise TooLittleHistory("ramp", f"has no measured rep in tenure month {k}, so no complete ramp")
        shares.append(min(1.0, max(0.0, value / steady_state)))
    return tuple(shares)


def share(shares: Sequence[float], k: int | None) -> float:
    """What a rep in tenure month `k` produces, as a share of a ramped rep (None: tenure unknown)."""
    if k is None or k >= len(shares):
        return 1.0
    return 0.0 if k < 0 else shares[k]


def plan(p: PlanInputs) -> CapacityPlan:
    """The month-by-month plan of `p` (module doc)."""
    stay = 1.0 - p.attrition
    ramp = len(p.shares)
    needed = p.target / p.per_rep
    existing = [
        sum(share(p.shares, None if k is None else k + t) for k in p.team) * stay ** (p.lead + t)
        for t in range(p.months)
    ]
    hires = [0] * p.months

    def hired(t: int) -> float:
        kept = (1.0 - p.failure_rate) * sum(
            n * share(p.shares, t - h) * stay ** (t - h) for h, n in enumerate(hires[: t + 1])
        )
        return kept

    for t in range(ramp, p.months):
        short = needed - existing[t] - hired(t)
        if short > EPS:
            net = short / stay**ramp
            hires[t - ramp] += math.ceil(net / (1.0 - p.failure_rate) - EPS)
    linear_reps = math.ceil(p.target / p.quota - EPS)
    linear_hires = max(0, linear_reps - len(p.team))
    rows = []
    for t in range(p.months):
        equivalents = existing[t] + hired(t)
        rows.append(
            PlanMonth(
                index=t,
                target=p.target,
                existing_equivalents=existing[t],
                equivalents=equivalents,
                capacity=equivalents * p.per_rep,
                gap=p.target - equivalents * p.per_rep,
                gap_without_hires=p.target - existing[t] * p.per_rep,
                hires=hires[t],
                linear_reps=p.target / p.quota,
                linear_hires=linear_hires if t == 0 else 0,
            )
        )
    return CapacityPlan(tuple(rows), sum(hires), linear_reps, linear_hires)
