"""All SQL of the coaching domain: the window's counter sums of every rep in a peer group.

Each read is one statement: the group's reps, the window's bounds, the sums of `rollup_rep_daily`
per rep and the tenant's watermark come back in one round trip. Every rep contributes its own
rep-local days between the window's dates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Row, ScalarSelect, and_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.reps.queries import _as_of, _bounds, _sums
from services.api.reps.service import METRIC_COLUMNS
from services.api.windows import WindowSpec
from services.core.models import Rep, RepDaily, Tenant

# `talk_calls` (calls with both talk times) is the sample behind talk_ratio.
COACHING_COLUMNS: tuple[str, ...] = (*METRIC_COLUMNS, "talk_calls")


@dataclass(frozen=True)
class RepSums:
    rep_id: str
    team: str | None
    sums: dict[str, Any]


@dataclass(frozen=True)
class GroupSums:
    """The reps of a peer group (ordered by rep id) with their sums over the window."""

    start: date
    end: date
    as_of: datetime | None
    reps: list[RepSums]


def _group(rows: list[Row[Any]]) -> GroupSums | None:
    if not rows:
        return None
    first = rows[0]
    reps = [
        RepSums(r.rep_id, r.team, {c: getattr(r, c) for c in COACHING_COLUMNS})
        for r in rows
        if r.rep_id is not None
    ]
    return GroupSums(first.start, first.end, first.as_of, reps)


def _days(start: ColumnElement[date], end: ColumnElement[date]) -> ColumnElement[bool]:
    return and_(
        RepDaily.tenant == Rep.tenant, RepDaily.rep_id == Rep.rep_id, RepDaily.day.between(start, end)
    )


async def rep_and_peers(
    engine: AsyncEngine,
    tenant: str,
    rep_id: str,
    scope: Literal["tenant", "team"],
    spec: WindowSpec,
    now: datetime,
) -> GroupSums | None:
    """The rep and its candidate peers: the other active reps of the tenant (scope `team`: of the
    rep's team; none when the rep has no team). The window follows the rep's timezone. The rep
    itself is included even when inactive; the caller finds it missing if there is no such rep.
    None if there are no rows at all."""

    def of_target(column: Any) -> ScalarSelect[Any]:
        return select(column).where(Rep.tenant == tenant, Rep.rep_id == rep_id).scalar_subquery()

    # Scalar subqueries are evaluated once, so the day range is an index condition on the rollup.
    start, end = _bounds(spec, of_target(Rep.timezone), now)
    peer = Rep.active if scope == "tenant" else and_(Rep.active, Rep.team == of_target(Rep.team))
    stmt = (
        select(
            Rep.rep_id,
            Rep.team,
            start.label("start"),
            end.label("end"),
            _as_of(tenant).label("as_of"),
            *_sums(COACHING_COLUMNS),
        )
        .outerjoin(RepDaily, _days(start, end))
        .where(Rep.tenant == tenant, or_(Rep.rep_id == rep_id, peer))
        .group_by(Rep.tenant, Rep.rep_id)
        .order_by(Rep.rep_id)
    )
    async with engine.connect() as conn:
        rows = list((await conn.execute(stmt)).all())
    return _group(rows)


async def active_reps(
    engine: AsyncEngine, tenant: str, team: str | None, spec: WindowSpec, now: datetime
) -> GroupSums | None:
    """Every active rep of the tenant (or of `team`) with its sums, the window in the tenant's
    timezone. None only for an unknown tenant; a tenant without active reps has an empty list."""
    zone = select(Tenant.timezone).where(Tenant.slug == tenant).scalar_subquery()
    # A scalar subquery is evaluated once, so the day range is an index condition on the rollup.
    start, end = _bounds(spec, zone, now)
    members = and_(Rep.tenant == Tenant.slug, Rep.active, Rep.team == team if team is not None else true())
    stmt = (
        select(
            Rep.rep_id,
            Rep.team,
            start.label("start"),
            end.label("end"),
            _as_of(tenant).label("as_of"),
            *_sums(COACHING_COLUMNS),
        )
        .select_from(Tenant)
        .outerjoin(Rep, members)
        .outerjoin(RepDaily, _days(start, end))
        .where(Tenant.slug == tenant)
        .group_by(Tenant.slug, Rep.tenant, Rep.rep_id)
        .order_by(Rep.rep_id)
    )
    async with engine.connect() as conn:
        rows = list((await conn.execute(stmt)).all())
    return _group(rows)
