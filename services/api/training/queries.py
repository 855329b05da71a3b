"""All SQL of the training domain: per-rep sums of `rollup_rep_daily` per month of tenure, first wins,
and certification attempts.

Month k of a tenure is [hired_at + k months, hired_at + k+1 months) with the day clamped to the
month's end, which is what Postgres' `date + interval 'k months'` does; the service's `month_index`
is the same rule in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Date,
    DateTime,
    Integer,
    Row,
    SQLColumnExpression,
    and_,
    case,
    cast,
    extract,
    func,
    literal,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.reps.queries import _as_of, _bounds, _sums
from services.api.reps.service import METRIC_COLUMNS
from services.api.windows import WindowSpec
from services.core.models import CertificationAttempt, Rep, RepDaily, Tenant


@dataclass(frozen=True)
class RepTenure:
    """A rep with its sums per month index (months absent: no rollup rows) and first won day."""

    rep_id: str
    hired_at: date | None
    quota_monthly: Decimal | None
    first_win: date | None
    months: dict[int, dict[str, Any]]


@dataclass(frozen=True)
class AttemptRow:
    rep_id: str
    module: str
    passed: bool
    day: date  # rep-local
    score: float | None


@dataclass(frozen=True)
class TrainingData:
    today: date  # the tenant's
    as_of: datetime | None
    reps: list[RepTenure]
    attempts: list[AttemptRow]


def _month_index(day: SQLColumnExpression[date], hired: SQLColumnExpression[date]) -> ColumnElement[int]:
    years = extract("year", day) - extract("year", hired)
    months = cast(years * 12 + extract("month", day) - extract("month", hired), Integer)
    # The calendar difference overshoots by one while the day of month has not come round yet.
    shifted = hired + func.make_interval(0, months)
    return months - case((shifted > day, 1), else_=0)


def _reps(tenant: str, hires: WindowSpec | None, now: datetime) -> CTE:
    """The active reps considered: all of them, or those hired between the window's dates."""
    hired_in_window: ColumnElement[bool] = true()
    if hires is not None:
        start, end = _bounds(hires, Tenant.timezone, now)
        hired_in_window = Rep.hired_at.between(start, end)
    return (
        select(Rep.rep_id, Rep.hired_at, Rep.quota_monthly, Rep.timezone)
        .join(Tenant, Tenant.slug == Rep.tenant)
        .where(Rep.tenant == tenant, Rep.active, hired_in_window)
        .cte("considered")
    )


async def training_data(
    engine: AsyncEngine,
    tenant: str,
    *,
    hires: WindowSpec | None,
    max_months: int,
    now: datetime,
    attempts: bool = False,
) -> TrainingData:
    """The considered reps' monthly sums (months 0..max_months-1), first wins (any month) and, with
    `attempts`, their certification attempts; plus the tenant's today and watermark."""
    reps = _reps(tenant, hires, now)
    month = _month_index(RepDaily.day, reps.c.hired_at).label("month")
    monthly = (
        select(
            RepDaily.rep_id,
            month,
            *_sums(METRIC_COLUMNS),
            func.min(RepDaily.day).filter(RepDaily.deals_won > 0).label("first_win"),
        )
        .join(reps, and_(RepDaily.rep_id == reps.c.rep_id, RepDaily.day >= reps.c.hired_at))
        .where(RepDaily.tenant == tenant)
        .group_by(RepDaily.rep_id, month)
        .cte("monthly")
    )
    first = (
        select(monthly.c.rep_id, func.min(monthly.c.first_win).label("first_win"))
        .group_by(monthly.c.rep_id)
        .cte("first")
    )
    stmt = (
        select(
            reps.c.rep_id,
            reps.c.hired_at,
            reps.c.quota_monthly,
            first.c.first_win,
            monthly.c.month,
            *(monthly.c[c] for c in METRIC_COLUMNS),
        )
        .select_from(reps)
        .outerjoin(first, first.c.rep_id == reps.c.rep_id)
        .outerjoin(monthly, and_(monthly.c.rep_id == reps.c.rep_id, monthly.c.month < max_months))
        .order_by(reps.c.rep_id, monthly.c.month)
    )
    tenant_now = select(
        cast(func.timezone(Tenant.timezone, literal(now, DateTime(timezone=True))), Date()).label("today"),
        _as_of(tenant).label("as_of"),
    ).where(Tenant.slug == tenant)
    async with engine.connect() as conn:
        head = (await conn.execute(tenant_now)).one()
        rows = list((await conn.execute(stmt)).all())
        found = await conn.execute(_attempts(tenant, hires, now)) if attempts else None
        attempt_rows = [] if found is None else [_attempt(r) for r in found]
    return TrainingData(head.today, head.as_of, _tenures(rows), attempt_rows)


def _tenures(rows: list[Row[Any]]) -> list[RepTenure]:
    out: dict[str, RepTenure] = {}
    for r in rows:
        rep = out.get(r.rep_id)
        if rep is None:
            rep = out[r.rep_id] = RepTenure(r.rep_id, r.hired_at, r.quota_monthly, r.first_win, {})
        if r.month is not None:
            rep.months[r.month] = {c: getattr(r, c) for c in METRIC_COLUMNS}
    return list(out.values())


def _attempts(tenant: str, hires: WindowSpec | None, now: datetime) -> Any:
    reps = _reps(tenant, hires, now)
    a = CertificationAttempt
    return (
        select(
            a.rep_id,
            a.module,
            a.passed,
            cast(func.timezone(reps.c.timezone, a.occurred_at), Date()).label("day"),
            a.score,
        )
        .join(reps, reps.c.rep_id == a.rep_id)
        .where(a.tenant == tenant)
        .order_by(a.occurred_at, a.event_id)
    )


def _attempt(r: Row[Any]) -> AttemptRow:
    return AttemptRow(r.rep_id, r.module, r.passed, r.day, None if r.score is None else float(r.score))
