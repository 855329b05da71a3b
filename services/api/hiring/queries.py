"""All SQL of the hiring domain: scorecards, and the window's counter sums of every scored rep."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, func, literal, literal_column, select
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.kit.snapshot import AS_OF_SQL
from services.api.kit.sums import METRIC_COLUMNS, CounterSums, sums_sql
from services.api.kit.tenure import active_sql
from services.api.kit.windows import WindowSpec, window_args, window_sql
from services.core.models import Rep, Scorecard


@dataclass(frozen=True)
class ScoredRep:
    rep_id: str
    traits: dict[str, int]
    found: CounterSums


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


SCORED_SUMS = f"""
SELECT s.rep_id, s.traits, r.quota_monthly, w.start, w."end", {AS_OF_SQL} AS as_of,
       {sums_sql(METRIC_COLUMNS)}
FROM tenants AS t
CROSS JOIN LATERAL ({window_sql("t.timezone")}) AS w
LEFT JOIN (scorecards AS s JOIN reps AS r
           ON r.tenant = s.tenant AND r.rep_id = s.rep_id AND {active_sql("r", "$2::timestamptz")})
  ON s.tenant = t.slug
LEFT JOIN rollup_rep_daily AS d
  ON d.tenant = s.tenant AND d.rep_id = s.rep_id AND d.day BETWEEN w.start AND w."end"
WHERE t.slug = $1
GROUP BY t.slug, w.start, w."end", s.tenant, s.rep_id, r.tenant, r.rep_id
ORDER BY s.rep_id
"""


async def scored_rep_sums(engine: AsyncEngine, tenant: str, *, spec: WindowSpec, now: datetime) -> ScoredSums:
    """Every active rep with a scorecard, with its traits, quota and counter sums over the window
    (tenant's calendar; each rep counts its own local days between the window's dates)."""
    async with engine.connect() as conn:
        rows = list((await conn.exec_driver_sql(SCORED_SUMS, (tenant, *window_args(spec, now)))).all())
    first = rows[0]  # the tenant's row is always there, scorecards or not
    reps = [
        ScoredRep(
            r.rep_id,
            dict(r.traits),
            CounterSums(r.start, r.end, r.as_of, r.quota_monthly, {c: r._mapping[c] for c in METRIC_COLUMNS}),
        )
        for r in rows
        if r.rep_id is not None
    ]
    return ScoredSums(first.start, first.end, first.as_of, reps)
