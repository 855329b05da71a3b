"""All SQL of the hiring domain: scorecards, and the window's counter sums of every scored rep."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, func, literal, literal_column, select
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.reps.queries import _as_of, _bounds, _sums
from services.api.reps.service import METRIC_COLUMNS
from services.api.windows import WindowSpec
from services.core.models import Rep, RepDaily, Scorecard, Tenant


@dataclass(frozen=True)
class ScoredRep:
    rep_id: str
    traits: dict[str, int]
    quota_monthly: Decimal | None
    sums: dict[str, Any]


@dataclass(frozen=True)
class ScoredSums:
    start: date
    end: date
    as_of: datetime | None
    reps: list[ScoredRep]


_CARD = (Scorecard.rep_id, Scorecard.traits, Scorecard.updated_at)


async def put_scorecard(
    engine: AsyncEngine, tenant: str, rep_id: str, traits: dict[str, int]
) -> tuple[Row[Any], bool] | None:
    """Create or replace the rep's scorecard; returns (row, created), or None if there is no such rep.

    One statement: the insert selects from `reps`, so a scorecard never exists without its rep.
    """
    source = select(Rep.tenant, Rep.rep_id, literal(traits, JSONB), func.now()).where(
        Rep.tenant == tenant, Rep.rep_id == rep_id
    )
    rows_in = insert(Scorecard).from_select(["tenant", "rep_id", "traits", "updated_at"], source)
    # xmax is 0 on a freshly inserted row version and set on one an ON CONFLICT update wrote.
    created: ColumnElement[bool] = literal_column("xmax = 0").label("created")
    stmt = rows_in.on_conflict_do_update(
        index_elements=[Scorecard.tenant, Scorecard.rep_id],
        set_={"traits": rows_in.excluded.traits, "updated_at": func.now()},
    ).returning(*_CARD, created)
    async with engine.begin() as conn:
        row = (await conn.execute(stmt)).first()
    return None if row is None else (row, bool(row.created))


async def get_scorecard(engine: AsyncEngine, tenant: str, rep_id: str) -> Row[Any] | None:
    async with engine.connect() as conn:
        result = await conn.execute(
            select(*_CARD).where(Scorecard.tenant == tenant, Scorecard.rep_id == rep_id)
        )
        return result.first()


async def scored_rep_sums(engine: AsyncEngine, tenant: str, spec: WindowSpec, now: datetime) -> ScoredSums:
    """Every active rep with a scorecard, with its traits, quota and counter sums over the window
    (tenant's calendar; each rep counts its own local days between the window's dates)."""
    zone = select(Tenant.timezone).where(Tenant.slug == tenant).scalar_subquery()
    # A scalar subquery is evaluated once, so the day range is an index condition on the rollup.
    start, end = _bounds(spec, zone, now)
    scored = Scorecard.__table__.join(
        Rep.__table__, and_(Rep.tenant == Scorecard.tenant, Rep.rep_id == Scorecard.rep_id, Rep.active)
    )
    stmt = (
        select(
            Scorecard.rep_id,
            Scorecard.traits,
            Rep.quota_monthly,
            start.label("start"),
            end.label("end"),
            _as_of(tenant).label("as_of"),
            *_sums(METRIC_COLUMNS),
        )
        .select_from(Tenant)
        .outerjoin(scored, Scorecard.tenant == Tenant.slug)
        .outerjoin(
            RepDaily,
            and_(
                RepDaily.tenant == Scorecard.tenant,
                RepDaily.rep_id == Scorecard.rep_id,
                RepDaily.day.between(start, end),
            ),
        )
        .where(Tenant.slug == tenant)
        .group_by(Tenant.slug, Scorecard.tenant, Scorecard.rep_id, Rep.tenant, Rep.rep_id)
        .order_by(Scorecard.rep_id)
    )
    async with engine.connect() as conn:
        rows = list((await conn.execute(stmt)).all())
    first = rows[0]  # the tenant's row is always there, scorecards or not
    reps = [
        ScoredRep(r.rep_id, dict(r.traits), r.quota_monthly, {c: getattr(r, c) for c in METRIC_COLUMNS})
        for r in rows
        if r.rep_id is not None
    ]
    return ScoredSums(first.start, first.end, first.as_of, reps)
