"""All SQL of the reps domain: the rep registry, its aliases, and rep/team sums of `rollup_rep_daily`.

Metric reads are one statement each: the rep (or team), its window's bounds, the counter sums and
the tenant's watermark come back in a single round trip. They never touch the `events` archive.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Row, delete, func, literal_column, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.api.kit.reads import ReadPool
from services.api.kit.snapshot import AS_OF_SQL
from services.api.kit.sums import CounterSums, sums_sql
from services.api.kit.tenure import active_sql
from services.api.kit.windows import WindowSpec, window_args, window_sql
from services.core.models import REP_COUNTERS, Rep, RepAlias, Tenant
from services.core.tenancy import zone_is_known


class UnknownTimezone(Exception):
    """The database does not know the rep's timezone (its timezone database may be older than Python's)."""


class AliasConflict(Exception):
    def __init__(self, kind: str, value: str, rep_id: str | None) -> None:
        super().__init__(f"{kind} {value!r} belongs to rep {rep_id!r}")
        self.kind = kind
        self.value = value
        self.rep_id = rep_id


@dataclass(frozen=True)
class RepFields:
    """A rep as written by `PUT`; `timezone=None` means the tenant's."""

    name: str | None
    team: str | None
    hired_at: date | None
    left_at: date | None
    timezone: str | None
    quota_monthly: Decimal | None
    monthly_cost: Decimal | None
    active: bool
    aliases: dict[str, str]


# Set active and not yet gone (kit.tenure): what every read means by an active rep.
_ACTIVE: ColumnElement[bool] = literal_column(active_sql(Rep.__tablename__), Boolean)

_REP_COLUMNS = (
    Rep.rep_id,
    Rep.name,
    Rep.team,
    Rep.hired_at,
    Rep.left_at,
    Rep.timezone,
    Rep.quota_monthly,
    Rep.monthly_cost,
    _ACTIVE.label("active"),
    Rep.aliases,
    Rep.updated_at,
)


async def upsert_rep(engine: AsyncEngine, tenant: str, rep_id: str, rep: RepFields) -> tuple[Row[Any], bool]:
    """Create or replace the rep and its aliases atomically; returns (row, created).

    Raises `AliasConflict` (and writes nothing) when an alias belongs to another rep of the tenant,
    `UnknownTimezone` when the database does not know the rep's timezone.
    """
    timezone: Any = (
        rep.timezone
        if rep.timezone is not None
        else select(Tenant.timezone).where(Tenant.slug == tenant).scalar_subquery()
    )
    values = {
        "name": rep.name,
        "team": rep.team,
        "hired_at": rep.hired_at,
        "left_at": rep.left_at,
        "timezone": timezone,
        "quota_monthly": rep.quota_monthly,
        "monthly_cost": rep.monthly_cost,
        "active": rep.active,
        "aliases": rep.aliases,
        "updated_at": func.now(),
    }
    insert_rep = insert(Rep).values(tenant=tenant, rep_id=rep_id, **values)
    # xmax is 0 on a freshly inserted row version and set on one an ON CONFLICT update wrote.
    created: ColumnElement[bool] = literal_column("xmax = 0").label("created")
    stmt = insert_rep.on_conflict_do_update(
        index_elements=[Rep.tenant, Rep.rep_id],
        set_={k: getattr(insert_rep.excluded, k) for k in values},
    ).returning(*_REP_COLUMNS, created)
    # `reps.aliases` mirrors the rep's rows of `rep_aliases` (which the aggregator resolves through);
    # both change in this one transaction.
    async with engine.begin() as conn:
        if rep.timezone is not None and not await zone_is_known(conn, rep.timezone):
            raise UnknownTimezone(rep.timezone)
        row = (await conn.execute(stmt)).one()
        await conn.execute(delete(RepAlias).where(RepAlias.tenant == tenant, RepAlias.rep_id == rep_id))
        if rep.aliases:
            await _claim_aliases(conn, tenant, rep_id, rep.aliases)
    return row, bool(row.created)


async def _claim_aliases(conn: AsyncConnection, tenant: str, rep_id: str, aliases: dict[str, str]) -> None:
    """Give the rep its aliases; `AliasConflict` names the first one another rep of the tenant holds.

    The primary key (tenant, kind, value) makes a concurrent claim of the same alias wait for the
    other transaction, so two reps can never both own it.
    """
    rows = [{"tenant": tenant, "kind": k, "value": v, "rep_id": rep_id} for k, v in aliases.items()]
    inserted = (
        await conn.execute(insert(RepAlias).values(rows).on_conflict_do_nothing().returning(RepAlias.kind))
    ).scalars()
    taken = sorted(set(aliases) - set(inserted))
    if taken:
        owners = await conn.execute(
            select(RepAlias.kind, RepAlias.rep_id).where(
                RepAlias.tenant == tenant,
                tuple_(RepAlias.kind, RepAlias.value).in_([(k, aliases[k]) for k in taken]),
            )
        )
        owner = {row[0]: row[1] for row in owners}
        raise AliasConflict(taken[0], aliases[taken[0]], owner.get(taken[0]))


async def get_rep(engine: AsyncEngine, tenant: str, rep_id: str) -> Row[Any] | None:
    async with engine.connect() as conn:
        result = await conn.execute(select(*_REP_COLUMNS).where(Rep.tenant == tenant, Rep.rep_id == rep_id))
        return result.first()


async def list_reps(
    engine: AsyncEngine, tenant: str, team: str | None, active: bool | None
) -> list[Row[Any]]:
    stmt = select(*_REP_COLUMNS).where(Rep.tenant == tenant).order_by(Rep.rep_id)
    if team is not None:
        stmt = stmt.where(Rep.team == team)
    if active is not None:
        stmt = stmt.where(_ACTIVE if active else ~_ACTIVE)
    async with engine.connect() as conn:
        return list((await conn.execute(stmt)).all())


@functools.cache
def _rep_sums_sql(columns: tuple[str, ...]) -> str:
    return f"""
SELECT r.quota_monthly, w.start, w."end", {AS_OF_SQL} AS as_of,
       {sums_sql(columns)}
FROM reps AS r
CROSS JOIN LATERAL ({window_sql("r.timezone")}) AS w
LEFT JOIN rollup_rep_daily AS d
  ON d.tenant = r.tenant AND d.rep_id = r.rep_id AND d.day BETWEEN w.start AND w."end"
WHERE r.tenant = $1 AND r.rep_id = $6
GROUP BY r.tenant, r.rep_id, w.start, w."end"
"""


async def rep_counter_sums(
    pool: ReadPool,
    tenant: str,
    rep_id: str,
    *,
    spec: WindowSpec,
    now: datetime,
    columns: Sequence[str] = REP_COUNTERS,
) -> CounterSums | None:
    """The rep's `columns` summed over the rep-local days of the window (amounts as floats); None if
    there is no such rep. One statement, on the read pool."""
    row = await pool.fetchrow(_rep_sums_sql(tuple(columns)), tenant, *window_args(spec, now), rep_id)
    if row is None:
        return None
    return CounterSums(
        row["start"], row["end"], row["as_of"], row["quota_monthly"], {c: row[c] for c in columns}
    )


@functools.cache
def _team_sums_sql(columns: tuple[str, ...]) -> str:
    # Each rep contributes its own rep-local rollup days between the window's dates.
    return f"""
WITH members AS (SELECT rep_id, quota_monthly FROM reps WHERE tenant = $1 AND team = $6)
SELECT (SELECT array_agg(m.rep_id ORDER BY m.rep_id) FROM members AS m) AS reps,
       (SELECT sum(m.quota_monthly) FROM members AS m) AS quota_monthly,
       w.start, w."end", {AS_OF_SQL} AS as_of,
       {sums_sql(columns)}
FROM tenants AS t
CROSS JOIN LATERAL ({window_sql("t.timezone")}) AS w
LEFT JOIN rollup_rep_daily AS d
  ON d.tenant = t.slug AND d.rep_id IN (SELECT rep_id FROM members) AND d.day BETWEEN w.start AND w."end"
WHERE t.slug = $1
GROUP BY t.slug, w.start, w."end"
"""


async def team_counter_sums(
    engine: AsyncEngine,
    tenant: str,
    team: str,
    *,
    spec: WindowSpec,
    now: datetime,
    columns: Sequence[str] = REP_COUNTERS,
) -> tuple[list[str], CounterSums] | None:
    """The team's reps and their `columns` summed over the window in the tenant's calendar. None if
    no rep of the tenant is in the team."""
    args = (tenant, *window_args(spec, now), team)
    async with engine.connect() as conn:
        row = (await conn.exec_driver_sql(_team_sums_sql(tuple(columns)), args)).first()
    if row is None or not row.reps:
        return None
    found = row._mapping
    sums = {c: found[c] for c in columns}
    return list(row.reps), CounterSums(row.start, row.end, row.as_of, row.quota_monthly, sums)
