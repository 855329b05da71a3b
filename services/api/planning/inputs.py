"""The inputs of a capacity plan, pure: each measured from the tenant's data when it can be, else a
stated default, and the refusals when the ramp itself cannot be measured honestly.

- failure rate: the tenant's setting, else measured (kit.attrition), else 0.35 (SPEC 5.10);
- monthly attrition: measured (kit.attrition), else 0: no leaving is assumed, and said;
- quota: the median `quota_monthly` of the active reps with one above 0, else the ramp's steady state
  (the median ramped rep's month) with a median attainment of 1;
- median attainment: the steady state of `quota_attainment` (the median monthly attainment over
  tenure months 6-24, as the ramp measures it), else 1 (linear math's assumption);
- the ramp: measured from at least ten reps (SPEC 5.3's threshold for a pattern), with a steady
  state above 0 and every tenure month before it reaches 80 % of that measured; otherwise no plan.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from services.api.kit.attrition import FAILURE_MONTHS, MIN_REPS, Attrition, RepTenure
from services.api.kit.ramp import RAMP_SHARE, MeasuredRamp
from services.api.planning.capacity import TooLittleHistory, ramp_shares
from services.api.planning.schemas import InputOut

DEFAULT_FAILURE_RATE = 0.35


@dataclass(frozen=True)
class Ramp:
    months: int
    steady_state: float
    shares: tuple[float, ...]
    reps: int


def checked_ramp(ramp: MeasuredRamp) -> Ramp:
    """The ramp a plan can stand on; `TooLittleHistory` says why there is none."""
    if ramp.rep_count < MIN_REPS:
        raise TooLittleHistory(
            "ramp",
            f"is measured from {ramp.rep_count} reps with complete months of known numbers; "
            f"a plan needs at least {MIN_REPS}",
        )
    steady = ramp.steady_state
    if steady is None:
        raise TooLittleHistory("ramp", "has no rep in tenure months 6-24 yet, so no steady state to ramp to")
    if steady <= 0:
        raise TooLittleHistory(
            "ramp", f"has a steady state of {steady:g} {ramp.metric}: ramped reps book nothing"
        )
    if ramp.months is None:
        raise TooLittleHistory(
            "ramp",
            f"never reaches {RAMP_SHARE:.0%} of the steady state in a tenure month's median, "
            "so no complete ramp",
        )
    return Ramp(ramp.months, steady, ramp_shares(ramp.curve, steady, ramp.months), ramp.rep_count)


def failure_rate(setting: float | None, measured: Attrition) -> InputOut:
    if setting is not None:
        return InputOut(value=setting, source="settings", basis="set in the economics settings")
    if measured.failure_rate is not None:
        return InputOut(
            value=measured.failure_rate,
            source="measured",
            basis=f"{measured.failed} of {measured.hires} reps hired at least {FAILURE_MONTHS} months ago "
            f"left within their first {FAILURE_MONTHS} months",
        )
    return InputOut(
        value=DEFAULT_FAILURE_RATE,
        source="default",
        basis=f"{measured.hires} reps were hired at least {FAILURE_MONTHS} months ago; "
        f"measuring needs {MIN_REPS}",
    )


def monthly_attrition(measured: Attrition) -> InputOut:
    if measured.monthly_rate is not None:
        return InputOut(
            value=measured.monthly_rate,
            source="measured",
            basis=f"{measured.leavers} of {measured.reps_exposed} reps past their first year left over "
            f"{measured.rep_months:.1f} rep-months in the last 12 months",
        )
    return InputOut(
        value=0.0,
        source="default",
        basis=f"{measured.reps_exposed} reps were past their first year in the last 12 months; "
        f"measuring needs {MIN_REPS}: no leaving assumed",
    )


def quota(reps: Iterable[RepTenure], ramp: Ramp) -> InputOut:
    quotas = [r.quota_monthly for r in reps if r.active and r.quota_monthly]  # a quota of 0 is none
    if quotas:
        return InputOut(
            value=float(statistics.median(quotas)),
            source="measured",
            basis=f"the median monthly quota of {len(quotas)} active reps",
        )
    return InputOut(
        value=ramp.steady_state,
        source="default",
        basis="no active rep has a quota: the median ramped rep's monthly bookings (the ramp's steady state)",
    )


def median_attainment(attainment: MeasuredRamp, quota_input: InputOut) -> InputOut:
    steady = attainment.steady_state
    if quota_input.source == "measured" and steady is not None and steady > 0:
        return InputOut(
            value=steady,
            source="measured",
            basis="the median monthly quota attainment of reps in tenure months 6-24",
        )
    why = (
        "no active rep has a quota"
        if quota_input.source != "measured"
        else "no rep with a quota has a month of tenure 6-24 with bookings to measure"
    )
    return InputOut(value=1.0, source="default", basis=f"{why}: linear math's full attainment assumed")
