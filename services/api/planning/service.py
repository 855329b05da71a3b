"""Planning answers (SPEC 5.10): the capacity plan (planning/capacity.py, with its inputs from
planning/inputs.py) and the stage of fit (planning/fit.py).

The capacity plan reads the tenant's context (today, freshness, settings, the reps' version), its
reps' tenures (kit.attrition) and the measured ramp of bookings and of quota attainment (kit.ramp),
kept per tenant by planning/memo.py (measured again in the background each quarter hour, at once
when a rep is written), and, for a new-MRR target, the new MRR a booking brought over the last 365
days. Each request does only the arithmetic on them, and the answer is cached per database snapshot
and quarter hour.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.api.demand.schemas import month_key, parse_month
from services.api.kit.attrition import headcount, measure_attrition
from services.api.kit.economics_reads import economics_read
from services.api.kit.errors import InvalidInput, NotFound
from services.api.kit.ramp import RAMP_METRIC
from services.api.kit.reads import AnswerKey, Reads, model_json, rollup_read
from services.api.kit.tenure import add_months, month_index
from services.api.kit.windows import WindowSpec
from services.api.planning import fit as fit_rules
from services.api.planning import inputs, memo, queries
from services.api.planning.capacity import PlanInputs, TooLittleHistory, plan
from services.api.planning.schemas import CapacityOut, FitOut, InputOut, LinearOut, PlanMonthOut, PlanRampOut

DEFAULT_MONTHS = 12
MAX_MONTHS = 36
MAX_MONTHS_AHEAD = 24  # how far ahead a plan may start
CONVERSION_DAYS = 365
CAPACITY = "planning_capacity"
FIT = "planning_fit"


@dataclass(frozen=True)
class CapacityQuery:
    target_new_mrr: float | None = None
    target_bookings: float | None = None
    months: int = DEFAULT_MONTHS
    start: str | None = None


def target_of(q: CapacityQuery) -> tuple[str, float]:
    """("bookings" | "new_mrr", the monthly target): exactly one must be given."""
    if (q.target_new_mrr is None) == (q.target_bookings is None):
        field = "target_bookings" if q.target_new_mrr is None else "target_new_mrr"
        raise InvalidInput(field, "give exactly one of target_new_mrr and target_bookings")
    if q.target_bookings is not None:
        return "bookings", q.target_bookings
    assert q.target_new_mrr is not None
    return "new_mrr", q.target_new_mrr


def start_of(text: str | None, today: date) -> date:
    """The plan's first month: `text` as YYYY-MM, from this month to MAX_MONTHS_AHEAD ahead;
    default the next month."""
    this_month = today.replace(day=1)
    if text is None:
        return add_months(this_month, 1)
    try:
        start = parse_month(text)
    except ValueError as exc:
        raise InvalidInput("start", "must be a month as YYYY-MM") from exc
    if start < this_month:
        raise InvalidInput("start", f"must not be before the current month ({month_key(this_month)})")
    if start > add_months(this_month, MAX_MONTHS_AHEAD):
        raise InvalidInput("start", f"must be within {MAX_MONTHS_AHEAD} months of the current month")
    return start


def tenure_at(hired_at: date | None, start: date) -> int | None:
    """A rep's tenure month on the plan's first day; negative for a hire still to come."""
    if hired_at is None:
        return None
    k = month_index(hired_at, start)
    if k is not None:
        return k
    return -((hired_at.year - start.year) * 12 + hired_at.month - start.month) - 1


def months_between(first: date, later: date) -> int:
    return (later.year - first.year) * 12 + later.month - first.month


async def _new_mrr_per_booking(reads: Reads, tenant: str, today: date) -> InputOut:
    """What a booked unit brings in new MRR, over the last CONVERSION_DAYS days (UTC days)."""
    until = datetime.combine(today, time(), ZoneInfo("UTC"))
    found = await queries.new_mrr_per_booking(
        reads.pool, tenant, until - timedelta(days=CONVERSION_DAYS), until
    )
    if found.new_mrr <= 0 or found.bookings <= 0:
        raise TooLittleHistory(
            "target_new_mrr",
            f"needs won deals and new MRR in the last {CONVERSION_DAYS} days to turn a rep's bookings into "
            "new MRR; give target_bookings instead",
        )
    return InputOut(
        value=found.new_mrr / found.bookings,
        source="measured",
        basis=f"new MRR {found.new_mrr:.2f} per bookings {found.bookings:.2f} "
        f"over the last {CONVERSION_DAYS} days",
    )


async def _context(reads: Reads, tenant: str, now: datetime) -> queries.PlanContext:
    with rollup_read("planning_context"):
        ctx = await queries.plan_context(reads.pool, tenant, now)
    if ctx is None:
        raise NotFound("no such tenant")
    return ctx


async def _slow(reads: Reads, tenant: str, ctx: queries.PlanContext, now: datetime) -> memo.Slow:
    return await memo.SLOW_INPUTS.get(
        reads, tenant, reps_version=ctx.reps_version, now=now, snapshot=ctx.snapshot
    )


async def capacity(reads: Reads, *, tenant: str, query: CapacityQuery, now: datetime) -> bytes:
    """The JSON of the capacity plan of SPEC 5.10 (planning/capacity.py says the model), cached
    while the database snapshot and the quarter hour are the same."""
    kind, target = target_of(query)
    if not 1 <= query.months <= MAX_MONTHS:
        raise InvalidInput("months", f"must be between 1 and {MAX_MONTHS}")
    ctx = await _context(reads, tenant, now)
    start = start_of(query.start, ctx.today)
    # Computed after the probe: at least as fresh as any request probing the same snapshot needs.
    parts = (CAPACITY, tenant, kind, target, query.months, start, memo.quarter_hour(now))
    key = AnswerKey(ctx.snapshot, parts)

    async def compute() -> tuple[AnswerKey, bytes]:
        return key, model_json(await _plan(reads, tenant, ctx, kind, target, query.months, start, now))

    return await reads.cache.get(CAPACITY, key, compute)


async def _plan(
    reads: Reads,
    tenant: str,
    ctx: queries.PlanContext,
    kind: str,
    target: float,
    months: int,
    start: date,
    now: datetime,
) -> CapacityOut:
    slow = await _slow(reads, tenant, ctx, now)
    tenures, attainment = slow.tenures, slow.attainment
    ramp = inputs.checked_ramp(slow.ramp)
    attrition = measure_attrition(tenures, today=ctx.today)
    found = {
        "failure_rate": inputs.failure_rate(ctx.failure_rate, attrition),
        "monthly_attrition": inputs.monthly_attrition(attrition),
        "quota": inputs.quota(tenures, ramp),
    }
    found["median_attainment"] = inputs.median_attainment(attainment, found["quota"])
    per_unit = 1.0
    if kind == "new_mrr":
        found["new_mrr_per_booking"] = await _new_mrr_per_booking(reads, tenant, ctx.today)
        per_unit = found["new_mrr_per_booking"].value
    if found["failure_rate"].value >= 1:
        raise InvalidInput("failure_rate", "is 1: no hire would ever ramp, so no plan can reach a target")
    team = tuple(tenure_at(r.hired_at, start) for r in tenures if r.active)
    p = PlanInputs(
        target=target,
        months=months,
        shares=ramp.shares,
        per_rep=found["quota"].value * found["median_attainment"].value * per_unit,
        quota=found["quota"].value * per_unit,
        failure_rate=found["failure_rate"].value,
        attrition=found["monthly_attrition"].value,
        team=team,
        lead=months_between(ctx.today, start),
    )
    if p.per_rep <= 0:
        raise TooLittleHistory(
            "median_attainment", "is 0: a ramped rep makes nothing, so no plan can reach a target"
        )
    return _answer(kind, p, start, ctx.as_of, ramp, found)


def _answer(
    kind: str,
    p: PlanInputs,
    start: date,
    as_of: datetime | None,
    ramp: inputs.Ramp,
    found: dict[str, InputOut],
) -> CapacityOut:
    made = plan(p)
    rows = [
        PlanMonthOut(
            month=month_key(add_months(start, m.index)),
            target=p.target,
            existing_rep_equivalents=round(m.existing_equivalents, 3),
            ramped_rep_equivalents=round(m.equivalents, 3),
            capacity=round(m.capacity, 2),
            gap=round(m.gap, 2),
            gap_without_hires=round(m.gap_without_hires, 2),
            hires=m.hires,
            linear_reps=round(m.linear_reps, 3),
            linear_hires=m.linear_hires,
        )
        for m in made.months
    ]
    return CapacityOut.model_validate(
        {
            "target": kind,
            "target_monthly": p.target,
            "start": month_key(start),
            "months": p.months,
            "as_of": as_of,
            "ramp": PlanRampOut(
                metric=RAMP_METRIC,
                months=ramp.months,
                shares=[round(s, 4) for s in ramp.shares],
                steady_state=ramp.steady_state,
                reps=ramp.reps,
            ),
            "inputs": found,
            "measured": [name for name, i in found.items() if i.source == "measured"],
            "from_settings": [name for name, i in found.items() if i.source == "settings"],
            "defaulted": [name for name, i in found.items() if i.source == "default"],
            "ramped_rep_capacity": round(p.per_rep, 2),
            "active_reps": len(p.team),
            "hires": made.hires,
            "linear": LinearOut(reps=made.linear_reps, hires=made.linear_hires),
            "plan": rows,
        }
    )


async def fit(reads: Reads, *, tenant: str, spec: WindowSpec, now: datetime) -> bytes:
    """The JSON of the stage of fit of SPEC 5.10 (planning/fit.py says the rules), cached as the
    capacity plan is."""
    ctx = await _context(reads, tenant, now)
    key = AnswerKey(ctx.snapshot, (FIT, tenant, spec, memo.quarter_hour(now)))

    async def compute() -> tuple[AnswerKey, bytes]:
        return key, model_json(await _fit(reads, tenant, ctx, spec, now))

    return await reads.cache.get(FIT, key, compute)


async def _fit(
    reads: Reads, tenant: str, ctx: queries.PlanContext, spec: WindowSpec, now: datetime
) -> FitOut:
    read = await economics_read(reads, tenant, spec=spec, now=now)
    if read is None:
        raise NotFound("no such tenant")
    slow = await _slow(reads, tenant, ctx, now)
    tenures, cohorts = slow.tenures, list(slow.cohorts)
    attrition = measure_attrition(tenures, today=ctx.today)
    failure = ctx.failure_rate if ctx.failure_rate is not None else attrition.failure_rate
    source = "settings" if ctx.failure_rate is not None else "measured"
    days = (read.end - read.start).days + 1
    pm = fit_rules.product_market(read.summary.overall, days=days)
    gtm = fit_rules.go_to_market(read.summary.overall)
    now_count = headcount(tenures, ctx.today)
    ago_count = headcount(tenures, add_months(ctx.today, -3))
    growth = fit_rules.headcount_growth(now_count, ago_count)
    return FitOut.model_validate(
        {
            "from_": read.start,
            "to": read.end,
            "as_of": read.as_of,
            "product_market": dataclasses.asdict(pm),
            "go_to_market": dataclasses.asdict(gtm),
            "scale": dataclasses.asdict(fit_rules.scale(failure, source, cohorts)),
            "premature_scaling": fit_rules.premature_scaling(growth, pm, gtm),
            "headcount": {"now": now_count, "quarter_ago": ago_count, "growth": growth},
        }
    )
