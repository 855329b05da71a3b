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

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    DateTime,
    Numeric,
    Row,
    ScalarSelect,
    SQLColumnExpression,
    and_,
    cast,
    delete,
    func,
    literal,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.reads import ReadPool
from services.api.windows import WindowSpec
from services.core.models import REP_COUNTERS, Rep, RepAlias, RepDaily, Tenant, TenantWatermark


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
    timezone: str | None
    quota_monthly: Decimal | None
    active: bool
    aliases: dict[str, str]


@dataclass(frozen=True)
class CounterSums:
    """Counter sums over a window, with what the metric formulas and the answer need besides."""

    start: date
    end: date
    as_of: datetime | None
    quota_monthly: Decimal | None
    sums: dict[str, Any]


_REP_COLUMNS = (
    Rep.rep_id,
    Rep.name,
    Rep.team,
    Rep.hired_at,
    Rep.timezone,
    Rep.quota_monthly,
    Rep.active,
    Rep.aliases,
    Rep.updated_at,
)


async def upsert_rep(engine: AsyncEngine, tenant: str, rep_id: str, rep: RepFields) -> tuple[Row[Any], bool]:
    """Create or replace the rep and its aliases atomically; returns (row, created).

    Raises `AliasConflict` (and writes nothing) when an alias belongs to another rep of the tenant.
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
        "timezone": timezone,
        "quota_monthly": rep.quota_monthly,
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
        row = (await conn.execute(stmt)).one()
        await conn.execute(delete(RepAlias).where(RepAlias.tenant == tenant, RepAlias.rep_id == rep_id))
        if rep.aliases:
            # The primary key (tenant, kind, value) makes a concurrent claim of the same alias wait
            # for the other transaction, so two reps can never both own it.
            inserted = (
                await conn.execute(
                    insert(RepAlias)
                    .values(
                        [
                            {"tenant": tenant, "kind": k, "value": v, "rep_id": rep_id}
                            for k, v in rep.aliases.items()
                        ]
                    )
                    .on_conflict_do_nothing()
                    .returning(RepAlias.kind)
                )
            ).scalars()
            taken = sorted(set(rep.aliases) - set(inserted))
            if taken:
                owners = await conn.execute(
                    select(RepAlias.kind, RepAlias.rep_id).where(
                        RepAlias.tenant == tenant,
                        tuple_(RepAlias.kind, RepAlias.value).in_([(k, rep.aliases[k]) for k in taken]),
                    )
                )
                owner = {row[0]: row[1] for row in owners}
                raise AliasConflict(taken[0], rep.aliases[taken[0]], owner.get(taken[0]))
    return row, bool(row.created)


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
        stmt = stmt.where(Rep.active == active)
    async with engine.connect() as conn:
        return list((await conn.execute(stmt)).all())


def _bounds(
    spec: WindowSpec, timezone: SQLColumnExpression[str], now: datetime
) -> tuple[ColumnElement[date], ColumnElement[date]]:
    """The window's first and last day as SQL, for a calendar in the `timezone` column.

    The same rule as `WindowSpec.resolve`, evaluated in the database so that the rep's own timezone
    need not be read in a round trip of its own.
    """
    if (fixed := spec.fixed) is not None:
        return literal(fixed.start, Date()), literal(fixed.end, Date())
    local_today = cast(func.timezone(timezone, literal(now, DateTime(timezone=True))), Date())
    end: ColumnElement[date] = local_today - 1
    return end - (spec.days - 1), end


def _as_of(tenant: str) -> ScalarSelect[datetime]:
    return select(TenantWatermark.as_of).where(TenantWatermark.tenant == tenant).scalar_subquery()


def _sums(columns: Sequence[str]) -> list[ColumnElement[Any]]:
    out: list[ColumnElement[Any]] = []
    for name in columns:
        column = RepDaily.__table__.c[name]
        total: ColumnElement[Any] = func.coalesce(func.sum(column), 0)
        # sum(bigint) is numeric in Postgres; counts come back as plain integers.
        out.append((cast(total, BigInteger) if isinstance(column.type, BigInteger) else total).label(name))
    return out


def _counter_sums(row: Row[Any], columns: Sequence[str]) -> CounterSums:
    return CounterSums(
        start=row.start,
        end=row.end,
        as_of=row.as_of,
        quota_monthly=row.quota_monthly,
        sums={c: getattr(row, c) for c in columns},
    )


def window_sql(zone: str) -> str:
    """A one-row SELECT of the window's `start` and `end` for a calendar in the timezone `zone` (an
    SQL expression), from the parameters $2..$5 that `window_args` gives: `_bounds` as plain SQL."""
    return (
        'SELECT coalesce($4::date, today - $3::int) AS start, coalesce($5::date, today - 1) AS "end" '
        f"FROM (SELECT timezone({zone}, $2::timestamptz)::date AS today) AS local_day"
    )


def window_args(spec: WindowSpec, now: datetime) -> tuple[datetime, int, date | None, date | None]:
    """$2 now, $3 the number of days, $4 and $5 the fixed first and last day (or nulls)."""
    fixed = spec.fixed
    return now, spec.days, fixed.start if fixed else None, fixed.end if fixed else None


def sums_sql(columns: Sequence[str], rollup: str = "d") -> str:
    """`columns` of `rollup_rep_daily` (aliased `rollup`) summed: counts as bigint, amounts as float8.

    Amounts are summed exactly as numeric and only then rounded to the nearest double, the value
    `float()` gives for the Decimal: the formulas compute in floats anyway.
    """
    out = []
    for name in columns:
        numeric = isinstance(RepDaily.__table__.c[name].type, Numeric)
        out.append(f"coalesce(sum({rollup}.{name}), 0)::{'float8' if numeric else 'bigint'} AS {name}")
    return ",\n       ".join(out)


# The tenant's watermark: the `as_of` of every answer.
AS_OF_SQL = "(SELECT as_of FROM tenant_watermarks WHERE tenant = $1)"
# What a statement saw: equal snapshots see the same rows (services/api/reads.py).
SNAPSHOT_SQL = "pg_current_snapshot()::text"

TENANT_PROBE = f"""
SELECT {SNAPSHOT_SQL} AS snapshot, w.start, w."end"
FROM tenants AS t CROSS JOIN LATERAL ({window_sql("t.timezone")}) AS w
WHERE t.slug = $1
"""


@dataclass(frozen=True)
class Probe:
    """What a cached answer must match: the snapshot a request sees and its window's days."""

    snapshot: str
    start: date
    end: date


async def tenant_probe(pool: ReadPool, tenant: str, spec: WindowSpec, now: datetime) -> Probe | None:
    """The snapshot and the window in the tenant's timezone; None for an unknown tenant."""
    row = await pool.fetchrow(TENANT_PROBE, tenant, *window_args(spec, now))
    return None if row is None else Probe(row["snapshot"], row["start"], row["end"])


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


async def team_counter_sums(
    engine: AsyncEngine,
    tenant: str,
    team: str,
    spec: WindowSpec,
    now: datetime,
    columns: Sequence[str] = REP_COUNTERS,
) -> tuple[list[str], CounterSums] | None:
    """The team's reps and their `columns` summed over the window in the tenant's calendar.

    Each rep contributes its own rep-local days between the window's dates. None if no rep of the
    tenant is in the team.
    """
    members = (
        select(Rep.rep_id, Rep.quota_monthly).where(Rep.tenant == tenant, Rep.team == team).cte("members")
    )
    start, end = _bounds(spec, Tenant.timezone, now)
    rep_ids = select(func.array_agg(aggregate_order_by(members.c.rep_id, members.c.rep_id))).scalar_subquery()
    quota = select(func.sum(members.c.quota_monthly)).scalar_subquery()
    stmt = (
        select(
            rep_ids.label("reps"),
            quota.label("quota_monthly"),
            start.label("start"),
            end.label("end"),
            _as_of(tenant).label("as_of"),
            *_sums(columns),
        )
        .select_from(Tenant)
        .outerjoin(
            RepDaily,
            and_(
                RepDaily.tenant == Tenant.slug,
                RepDaily.rep_id.in_(select(members.c.rep_id)),
                RepDaily.day.between(start, end),
            ),
        )
        .where(Tenant.slug == tenant)
        .group_by(Tenant.slug)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(stmt)).first()
    if row is None or not row.reps:
        return None
    return list(row.reps), _counter_sums(row, columns)
