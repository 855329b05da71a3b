"""Roberge's stage of fit (SPEC 5.10), pure: three lights and the premature-scaling flag.

A light is `green` when every figure it needs is known and passes, `red` when a known figure fails,
and `unknown` otherwise: too little history is never read as a pass or a fail.

- product_market: logo retention >= 0.90 and net revenue retention >= 1.00, both annualised
  (x^(365 / window days)); judged only with at least MIN_CUSTOMERS customers at the window's start.
- go_to_market: LTV:CAC >= 3 and CAC payback <= 12 months (kit.economics); churn is measured over
  the customers at the start, so the same MIN_CUSTOMERS applies. No churn at all with a known CAC
  and margin makes the lifetime unbounded: LTV:CAC passes.
- scale: failure rate <= 0.40 (the tenant's setting, else measured from hire and leaving days, as
  the capacity plan takes it, but never the 0.35 default) and
  the ramp stable across the last two hire cohorts (quarters of `hired_at`) whose ramp is measured:
  each cohort's median rep reaching 80 % of the tenant's steady state (kit.ramp), with at least
  MIN_COHORT_REPS reps; stable when the later cohort takes at most one month longer.
- premature_scaling: active headcount grew more than 25 % over the last quarter while
  product_market or go_to_market is red; false when it did not grow that much or both are green;
  null when the growth is unknown (nobody on the team a quarter ago) or the lights that matter are
  not red but not both green either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from services.api.kit.economics import Figures
from services.api.kit.ramp import measure_ramp, ramp_length

MIN_CUSTOMERS = 10
MIN_COHORT_REPS = 3
DAYS_PER_YEAR = 365
LOGO_RETENTION = 0.90
NET_REVENUE_RETENTION = 1.00
LTV_TO_CAC = 3.0
PAYBACK_MONTHS = 12.0
FAILURE_RATE = 0.40
RAMP_DRIFT_MONTHS = 1
HEADCOUNT_GROWTH = 0.25

Figure = float | int | str | None


@dataclass(frozen=True)
class Light:
    light: str  # green | red | unknown
    reason: str
    figures: dict[str, Figure] = field(default_factory=dict)


def _judge(checks: list[tuple[bool | None, str]], figures: dict[str, Figure]) -> Light:
    """Red if a known check fails, green if all are known and pass, unknown otherwise; the reason
    lists the failing (or unknown) checks, else all of them."""
    failed = [why for ok, why in checks if ok is False]
    if failed:
        return Light("red", "; ".join(failed), figures)
    unknown = [why for ok, why in checks if ok is None]
    if unknown:
        return Light("unknown", "; ".join(unknown), figures)
    return Light("green", "; ".join(why for _, why in checks), figures)


def _annual(value: float | None, days: int) -> float | None:
    if value is None:
        return None
    try:
        return float(value ** (DAYS_PER_YEAR / days))
    except OverflowError:  # a few days' growth compounded over a year
        return math.inf


def _few_customers(f: Figures) -> str:
    return f"{f.customers_start} customers at the window's start; judging needs {MIN_CUSTOMERS}"


def product_market(f: Figures, *, days: int) -> Light:
    logo, nrr = _annual(f.logo_retention, days), _annual(f.net_revenue_retention, days)
    figures: dict[str, Figure] = {
        "logo_retention": logo,
        "net_revenue_retention": nrr,
        "customers_start": f.customers_start,
    }
    if f.customers_start < MIN_CUSTOMERS or logo is None or nrr is None:
        return Light("unknown", _few_customers(f), figures)
    return _judge(
        [
            (logo >= LOGO_RETENTION, f"logo retention {logo:.2f} a year {_vs(logo >= LOGO_RETENTION)} 0.90"),
            (nrr >= NET_REVENUE_RETENTION, f"net revenue retention {nrr:.2f} a year {_vs(nrr >= 1)} 1.00"),
        ],
        figures,
    )


def go_to_market(f: Figures) -> Light:
    figures: dict[str, Figure] = {
        "ltv_to_cac": f.ltv_to_cac,
        "cac_payback_months": f.cac_payback_months,
        "ltv": f.ltv,
        "cac": f.cac,
    }
    if f.customers_start < MIN_CUSTOMERS:
        return Light("unknown", _few_customers(f), figures)
    payback = f.cac_payback_months
    ratio: tuple[bool | None, str]
    if f.ltv_to_cac is not None:
        ok = f.ltv_to_cac >= LTV_TO_CAC
        ratio = (ok, f"LTV:CAC {f.ltv_to_cac:.2f} {_vs(ok)} 3")
    elif f.monthly_churn == 0 and payback is not None:
        ratio = (True, "no churn in the window: LTV unbounded, LTV:CAC >= 3")
    else:
        ratio = (None, "no LTV:CAC (gross margin, churn, costs or new customers missing)")
    if payback is None:
        paid: tuple[bool | None, str] = (None, "no CAC payback (gross margin, costs or new customers)")
    else:
        paid = (payback <= PAYBACK_MONTHS, f"CAC payback {payback:.1f} months {_vs(payback <= 12, '<=')} 12")
    return _judge([ratio, paid], figures)


@dataclass(frozen=True)
class CohortRamp:
    cohort: str
    reps: int
    ramp_months: int


def cohort_key(hired_at: date) -> str:
    return f"{hired_at.year}-Q{(hired_at.month - 1) // 3 + 1}"


def cohort_ramps(
    by_rep: Mapping[str, Mapping[int, float | None]], hired: Mapping[str, date], steady_state: float | None
) -> list[CohortRamp]:
    """Each hire cohort's ramp length against the tenant's steady state, oldest first: cohorts with
    at least MIN_COHORT_REPS measured reps whose median reaches it."""
    members: dict[str, list[Mapping[int, float | None]]] = {}
    for rep, monthly in by_rep.items():
        if rep in hired:
            members.setdefault(cohort_key(hired[rep]), []).append(monthly)
    out = []
    for key in sorted(members):
        measured = measure_ramp(members[key])
        months = ramp_length(measured.curve, steady_state)
        if measured.rep_count >= MIN_COHORT_REPS and months is not None:
            out.append(CohortRamp(key, measured.rep_count, months))
    return out


def scale(failure_rate: float | None, failure_source: str, cohorts: list[CohortRamp]) -> Light:
    figures: dict[str, Figure] = {"failure_rate": failure_rate, "failure_rate_source": failure_source}
    checks: list[tuple[bool | None, str]] = []
    if failure_rate is None:
        checks.append((None, "no failure rate set, and fewer than 10 reps hired at least 12 months ago"))
    else:
        ok = failure_rate <= FAILURE_RATE
        checks.append((ok, f"failure rate {failure_rate:.2f} {_vs(ok, '<=')} 0.40"))
    if len(cohorts) < 2:
        checks.append((None, f"fewer than two hire cohorts of {MIN_COHORT_REPS}+ reps with a measured ramp"))
    else:
        before, last = cohorts[-2], cohorts[-1]
        figures.update(
            {
                "ramp_cohort_before": before.cohort,
                "ramp_months_before": before.ramp_months,
                "ramp_cohort_last": last.cohort,
                "ramp_months_last": last.ramp_months,
            }
        )
        ok = last.ramp_months - before.ramp_months <= RAMP_DRIFT_MONTHS
        said = f"ramp {before.ramp_months} months ({before.cohort}) then {last.ramp_months} ({last.cohort})"
        checks.append((ok, f"{said}: {'stable' if ok else 'longer'}"))
    return _judge(checks, figures)


def headcount_growth(now: int, quarter_ago: int) -> float | None:
    return None if quarter_ago == 0 else now / quarter_ago - 1


def premature_scaling(growth: float | None, product_market: Light, go_to_market: Light) -> bool | None:
    """Module doc: true, false, or null when it cannot be told."""
    if growth is not None and growth <= HEADCOUNT_GROWTH:
        return False
    lights = (product_market.light, go_to_market.light)
    if lights == ("green", "green"):
        return False
    if growth is not None and "red" in lights:
        return True
    return None


def _vs(ok: bool, passing: str = ">=") -> str:
    failing = {">=": "<", "<=": ">"}[passing]
    return passing if ok else failing
