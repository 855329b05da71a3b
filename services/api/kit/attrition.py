"""Rep attrition and failure rate (SPEC 5.10), measured from reps' `hired_at` and `left_at`.

Two numbers, kept apart: a hire who does not make it through its first year is a failure, not
attrition:

- the **failure rate**: of the reps hired at least FAILURE_MONTHS (12) before today, the share who
  left within their first FAILURE_MONTHS months of tenure (Skok's 30-40 % of hires who never make
  it). Measured when at least MIN_REPS (10, the pattern threshold of SPEC 5.3) such hires exist.
- the **monthly attrition**: the share of the team expected to leave in a month, 1 - e^-x where x
  is the reps past their first year who left over the last 12 months per rep-month those reps
  were on the team then (a month is 365.25/12 days): a leaving rate turned into a probability, so
  it stays below 1 however short the exposure. Measured when at least MIN_REPS reps past their
  first year were on the team in that year.

A rep's `left_at` is its first day away (SPEC 4). A rep switched off without a leaving day is left
out: it may have stopped long ago, and when is unknown. `headcount` counts the reps on the team on
a day, for the growth of a team; a rep without a hire date counts on every day it is active.

`rep_tenures` is the one read: every rep of a tenant with its hire and leaving days.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from services.api.kit.reads import ReadPool
from services.api.kit.tenure import active_sql, add_months
from services.api.kit.windows import DAYS_PER_MONTH

FAILURE_MONTHS = 12
MIN_REPS = 10
WINDOW_MONTHS = 12


@dataclass(frozen=True)
class RepTenure:
    """A rep's time on the team: `active` is whether it counts as active today (kit.tenure)."""

    rep_id: str
    hired_at: date | None
    left_at: date | None
    active: bool
    quota_monthly: float | None = None


@dataclass(frozen=True)
class Attrition:
    """What the tenure data says; a rate is None when too few reps measure it (module doc)."""

    failure_rate: float | None
    failed: int  # hires with a complete first year who left within it
    hires: int  # hires with a complete first year
    monthly_rate: float | None
    leavers: int  # reps past their first year who left in the last 12 months
    rep_months: float  # months those reps were on the team in the last 12 months
    reps_exposed: int


def _counted(rep: RepTenure) -> bool:
    return rep.hired_at is not None and (rep.active or rep.left_at is not None)


def measure_attrition(reps: Iterable[RepTenure], *, today: date) -> Attrition:
    """The failure rate and monthly attrition of `reps` as of `today` (module doc)."""
    failed = hires = leavers = exposed = 0
    rep_days = 0
    since = add_months(today, -WINDOW_MONTHS)
    for rep in filter(_counted, reps):
        assert rep.hired_at is not None
        first_year_end = add_months(rep.hired_at, FAILURE_MONTHS)
        if first_year_end <= today:
            hires += 1
            failed += rep.left_at is not None and rep.left_at < first_year_end
        # Days past the first year, within the window, before the leaving day.
        lo = max(since, first_year_end)
        hi = min(today, rep.left_at or today)
        if hi > lo:
            exposed += 1
            rep_days += (hi - lo).days
        leavers += rep.left_at is not None and lo <= rep.left_at < today
    rep_months = rep_days / DAYS_PER_MONTH
    return Attrition(
        failure_rate=failed / hires if hires >= MIN_REPS else None,
        failed=failed,
        hires=hires,
        monthly_rate=-math.expm1(-leavers / rep_months) if exposed >= MIN_REPS and rep_months > 0 else None,
        leavers=leavers,
        rep_months=rep_months,
        reps_exposed=exposed,
    )


def headcount(reps: Iterable[RepTenure], day: date) -> int:
    """How many reps were on the team on `day`: hired by then and not yet left (module doc)."""
    count = 0
    for rep in reps:
        if rep.hired_at is None:
            count += rep.active
        elif _counted(rep) and rep.hired_at <= day and (rep.left_at is None or rep.left_at > day):
            count += 1
    return count


# $1 tenant, $2 now. Every rep of the tenant, `active` as kit.tenure says it at $2.
TENURES_SQL = f"""
SELECT r.rep_id, r.hired_at, r.left_at, r.quota_monthly, {active_sql("r", "$2::timestamptz")} AS active
FROM reps AS r
WHERE r.tenant = $1
ORDER BY r.rep_id
"""


async def rep_tenures(pool: ReadPool, tenant: str, now: datetime) -> list[RepTenure]:
    """Every rep of `tenant` with its hire and leaving days and whether it is active at `now`."""
    rows = await pool.fetch(TENURES_SQL, tenant, now)
    return [
        RepTenure(
            r["rep_id"],
            r["hired_at"],
            r["left_at"],
            bool(r["active"]),
            None if r["quota_monthly"] is None else float(r["quota_monthly"]),
        )
        for r in rows
    ]
