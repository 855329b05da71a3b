"""Ramp and certification numbers (SPEC 5.4): how fast new hires become productive, and whether
passing the training modules early goes with a faster ramp.

Month k of a rep's tenure is [hired_at + k months, hired_at + k+1 months), calendar months with the
day clamped to the month's end (hired 31 Jan: month 1 starts 28/29 Feb, month 2 on 31 Mar). Only
months that have started by `today` exist, the current one included. All dates are rep-local days.

A month that began before a rep's numbers are known (before the tenant's first event; for a rep
hired before that, before its own first event: kit.tenure.data_from_sql) is unknown, not zero: it
is left out of the medians, and the cohort says from which month on it has data.

The computations are pure; the reads at the end fetch monthly rollup sums and certification
attempts for them.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.kit.ramp import measured_ramp
from services.api.kit.reads import Reads, rollup_read
from services.api.kit.sums import check_metric, metrics_from_sums
from services.api.kit.tenure import add_months, first_known_month, month_index
from services.api.kit.windows import WindowSpec
from services.api.training import queries
from services.api.training.schemas import CertificationsOut, CohortKind, RampOut

CERTIFIED_BY_MONTH = 3
# Any SPEC 5.1 metric (kit.sums.METRICS) can be ramped.
DEFAULT_METRIC = "revenue_won"
DEFAULT_MONTHS = 12
MAX_MONTHS = 120


@dataclass(frozen=True)
class MonthRange:
    """Month `index` of a tenure: the days `start` <= day < `end`; `complete` when its last day is past."""

    index: int
    start: date
    end: date
    complete: bool


@dataclass(frozen=True)
class RampRep:
    """A rep's metric per month index.

    `monthly` maps month index -> the metric over that month; None (or a missing index, unless the
    caller gives a `missing` value) means no data, e.g. a rate whose denominator was 0.
    `first_win` is the first rep-local day on or after `hired_at` with a deal.won. `known_from` is
    the first month whose numbers are known (None: none are): earlier months count as no data
    whatever `monthly` or `missing` say.
    """

    rep_id: str
    hired_at: date | None
    monthly: Mapping[int, float | None]
    first_win: date | None = None
    known_from: int | None = 0


@dataclass(frozen=True)
class RampMonth:
    month: int
    reps: int
    median: float | None


@dataclass(frozen=True)
class RampCohort:
    cohort: str
    reps: int
    months: tuple[RampMonth, ...]
    days_to_first_win: dict[str, int | None]
    data_from_month: int | None = 0


@dataclass(frozen=True)
class Attempt:
    """One training.certification event; `occurred_at` is the rep-local day."""

    rep_id: str
    module: str
    passed: bool
    occurred_at: date
    score: float | None = None


@dataclass(frozen=True)
class ModuleStats:
    module: str
    attempts: int
    reps_attempted: int
    reps_passed: int
    pass_rate: float | None
    median_score: float | None
    median_days_to_pass: float | None


@dataclass(frozen=True)
class RampGroup:
    reps: int
    months: tuple[RampMonth, ...]


@dataclass(frozen=True)
class CertifiedRamp:
    """Reps who passed every module within `by_month` months of hire against all other hires."""

    by_month: int
    modules: tuple[str, ...]
    certified: RampGroup
    others: RampGroup


@dataclass(frozen=True)
class CertificationReport:
    modules: dict[str, ModuleStats]
    certified_ramp: CertifiedRamp


def month_ranges(hired_at: date, today: date, max_months: int | None = None) -> list[MonthRange]:
    """The tenure months that have started by `today` (0.., at most `max_months` of them).

    The SQL sums a rep's daily rollups over each [start, end) to get the monthly values of `RampRep`.
    """
    current = month_index(hired_at, today)
    if current is None:
        return []
    last = current if max_months is None else min(current, max_months - 1)
    out = []
    for k in range(last + 1):
        end = add_months(hired_at, k + 1)
        out.append(MonthRange(k, add_months(hired_at, k), end, complete=end <= today))
    return out


def cohort_key(hired_at: date, cohort: CohortKind) -> str:
    """ "2026-03" for cohort=month, "2026-Q1" for cohort=quarter."""
    if cohort == "month":
        return f"{hired_at.year:04d}-{hired_at.month:02d}"
    return f"{hired_at.year:04d}-Q{(hired_at.month - 1) // 3 + 1}"


def days_to_first_win(hired_at: date, first_win: date | None, known_from: int | None = 0) -> int | None:
    """Days from hire to the first won deal; a win dated before the hire is not part of the ramp.
    Unknown (None) when the rep's first months are (`known_from` not 0): an earlier win may be missing."""
    if first_win is None or first_win < hired_at or known_from != 0:
        return None
    return (first_win - hired_at).days


def ramp_months(
    reps: Iterable[RampRep], *, today: date, missing: float | None = None, max_months: int | None = None
) -> tuple[RampMonth, ...]:
    """Per month index: how many reps have a value for it, and their median.

    Runs to the longest tenure among `reps` (capped by `max_months`); a rep only contributes to
    months that have started by `today`. `missing` stands in for a started month absent from
    `RampRep.monthly`: 0.0 for counts and sums (no events is a real zero), None for rates. Months
    before a rep's `known_from` are no data.
    """
    by_month: dict[int, list[float]] = {}
    longest = -1
    for rep in reps:
        if rep.hired_at is None or (current := month_index(rep.hired_at, today)) is None:
            continue
        if max_months is not None:
            current = min(current, max_months - 1)
        longest = max(longest, current)
        if rep.known_from is None:
            continue
        for k in range(rep.known_from, current + 1):
            value = rep.monthly.get(k, missing)
            if value is not None:
                by_month.setdefault(k, []).append(float(value))
    return tuple(
        RampMonth(k, len(by_month.get(k, ())), _median(by_month.get(k, ()))) for k in range(longest + 1)
    )


def ramp(
    reps: Iterable[RampRep],
    *,
    cohort: CohortKind,
    today: date,
    missing: float | None = None,
    max_months: int | None = None,
) -> list[RampCohort]:
    """The ramp of every hire cohort (reps without `hired_at` are left out), oldest cohort first."""
    cohorts: dict[str, list[RampRep]] = {}
    for rep in reps:
        if rep.hired_at is not None:
            cohorts.setdefault(cohort_key(rep.hired_at, cohort), []).append(rep)
    return [
        RampCohort(
            key,
            len(members),
            ramp_months(members, today=today, missing=missing, max_months=max_months),
            {
                r.rep_id: days_to_first_win(r.hired_at, r.first_win, r.known_from)
                for r in members
                if r.hired_at
            },
            min((r.known_from for r in members if r.known_from is not None), default=None),
        )
        for key, members in sorted(cohorts.items())
    ]


def first_passes(attempts: Iterable[Attempt]) -> dict[tuple[str, str], date]:
    """(rep_id, module) -> the day of the rep's first passed attempt of the module."""
    out: dict[tuple[str, str], date] = {}
    for a in attempts:
        key = (a.rep_id, a.module)
        if a.passed and (key not in out or a.occurred_at < out[key]):
            out[key] = a.occurred_at
    return out


def module_stats(attempts: Sequence[Attempt], hired_at: Mapping[str, date | None]) -> dict[str, ModuleStats]:
    """Per module: attempts, reps who attempted and passed, pass rate, median score and days to pass.

    Days to pass run from hire to the first pass, for reps with a known hire date; a pass before
    the hire date (pre-boarding) counts as day 0.
    """
    passes = first_passes(attempts)
    grouped: dict[str, list[Attempt]] = {}
    for a in attempts:
        grouped.setdefault(a.module, []).append(a)
    out = {}
    for module in sorted(grouped):
        tries = grouped[module]
        attempted = {a.rep_id for a in tries}
        passed = {a.rep_id for a in tries if a.passed}
        days = [
            max(0, (passes[(rep_id, module)] - hired).days)
            for rep_id in passed
            if (hired := hired_at.get(rep_id)) is not None
        ]
        out[module] = ModuleStats(
            module,
            attempts=len(tries),
            reps_attempted=len(attempted),
            reps_passed=len(passed),
            pass_rate=len(passed) / len(attempted),
            median_score=_median([a.score for a in tries if a.score is not None]),
            median_days_to_pass=_median(days),
        )
    return out


def certified_reps(
    attempts: Sequence[Attempt], hired_at: Mapping[str, date | None], by_month: int = CERTIFIED_BY_MONTH
) -> set[str]:
    """Reps (with a hire date) who passed every module seen in `attempts` before hire + `by_month` months.

    With no module at all nobody is certified: an empty programme certifies nothing.
    """
    modules = {a.module for a in attempts}
    if not modules:
        return set()
    passes = first_passes(attempts)
    out = set()
    for rep_id, hired in hired_at.items():
        if hired is None:
            continue
        deadline = add_months(hired, by_month)
        if all((day := passes.get((rep_id, m))) is not None and day < deadline for m in modules):
            out.add(rep_id)
    return out


def certifications(
    attempts: Sequence[Attempt],
    reps: Sequence[RampRep],
    *,
    today: date,
    missing: float | None = None,
    by_month: int = CERTIFIED_BY_MONTH,
    max_months: int | None = None,
) -> CertificationReport:
    """Module statistics plus the ramp of reps certified by month `by_month` against the others.

    `attempts` should be every attempt on record (not just the window): certification by month 3
    depends on the whole history. The ramp groups are drawn from `reps` with a hire date.
    """
    hired_at = {r.rep_id: r.hired_at for r in reps}
    certified = certified_reps(attempts, hired_at, by_month)
    hires = [r for r in reps if r.hired_at is not None]
    yes = [r for r in hires if r.rep_id in certified]
    no = [r for r in hires if r.rep_id not in certified]

    def group(members: list[RampRep]) -> RampGroup:
        months = ramp_months(members, today=today, missing=missing, max_months=max_months)
        return RampGroup(len(members), months)

    return CertificationReport(
        module_stats(attempts, hired_at),
        CertifiedRamp(by_month, tuple(sorted({a.module for a in attempts})), group(yes), group(no)),
    )


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


# --- reads ----------------------------------------------------------------------------------------


def tenure_ramp(tenure: queries.RepTenure, *, metric: str, today: date, max_months: int) -> RampRep:
    """A rep's metric for every started month of its tenure whose numbers are known: months without
    rollup rows are computed from zero counts, so sums read 0 and rates null. Quota attainment
    takes each month's own length."""
    if tenure.hired_at is None:
        return RampRep(tenure.rep_id, None, {}, None)
    known_from = None if tenure.data_from is None else first_known_month(tenure.hired_at, tenure.data_from)
    monthly = {
        m.index: metrics_from_sums(
            tenure.months.get(m.index, {}), quota_monthly=tenure.quota_monthly, days=(m.end - m.start).days
        )[metric]
        for m in month_ranges(tenure.hired_at, today, max_months)
        if known_from is not None and m.index >= known_from
    }
    return RampRep(tenure.rep_id, tenure.hired_at, monthly, tenure.first_win, known_from)


async def ramp_report(
    engine: AsyncEngine,
    reads: Reads,
    *,
    tenant: str,
    metric: str,
    cohort: CohortKind,
    months: int,
    hires: WindowSpec | None,
    now: datetime,
) -> RampOut:
    """The ramp of the active reps (hired in `hires`, if given), and the tenant's measured ramp
    length in `metric` (over all of its reps, whatever `hires` selects)."""
    check_metric("metric", metric)
    with rollup_read("training_ramp"):
        data = await queries.training_data(engine, tenant, hires=hires, max_months=months, now=now)
    reps = [tenure_ramp(t, metric=metric, today=data.today, max_months=months) for t in data.reps]
    cohorts = ramp(reps, cohort=cohort, today=data.today, max_months=months)
    measured = await measured_ramp(reads, tenant, now=now, metric=metric)
    return RampOut.model_validate(
        {
            "metric": metric,
            "cohort": cohort,
            "as_of": data.as_of,
            "cohorts": cohorts,
            "ramp_months": measured.ramp_months,
            "ramp_measured": measured.months is not None,
            "steady_state": measured.steady_state,
        }
    )


async def certification_report(
    engine: AsyncEngine,
    *,
    tenant: str,
    metric: str,
    months: int,
    hires: WindowSpec | None,
    now: datetime,
) -> CertificationsOut:
    """Every module's statistics, and the ramp of the reps certified in time against the others."""
    check_metric("metric", metric)
    with rollup_read("training_certifications"):
        data = await queries.training_data(
            engine, tenant, hires=hires, max_months=months, now=now, attempts=True
        )
    reps = [tenure_ramp(t, metric=metric, today=data.today, max_months=months) for t in data.reps]
    attempts = [Attempt(a.rep_id, a.module, a.passed, a.day, a.score) for a in data.attempts]
    report = certifications(attempts, reps, today=data.today, max_months=months)
    return CertificationsOut(
        metric=metric, as_of=data.as_of, modules=report.modules, certified_ramp=report.certified_ramp
    )
