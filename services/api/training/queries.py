"""All SQL of the training domain: per-rep sums of `rollup_rep_daily` per month of tenure, first wins,
and certification attempts.

Month k of a tenure is [hired_at + k months, hired_at + k+1 months) with the day clamped to the
month's end (services/api/kit/tenure.py states the rule in SQL and in Python). Each rep comes with
the day its numbers are known from: months that began before it are unknown, not zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.kit.snapshot import AS_OF_SQL
from services.api.kit.sums import METRIC_COLUMNS, sums_sql
from services.api.kit.tenure import active_sql, data_from_sql, tenure_month_sql
from services.api.kit.windows import WindowSpec, window_args, window_sql
from services.core.tenancy import known_zone_sql


@dataclass(frozen=True)
class RepTenure:
    """A rep with its sums per month index (months absent: no rollup rows), first won day and the
    first rep-local day its numbers are known (None: none are)."""

    rep_id: str
    hired_at: date | None
    quota_monthly: Decimal | None
    first_win: date | None
    months: dict[int, dict[str, Any]]
    data_from: date | None = None


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


# $1 tenant, $2..$5 the window of hire dates (kit.windows.window_args) in the tenant's timezone,
# $6 whether to filter by it (false: every active rep), $7 how many tenure months to report.
_CONSIDERED = f"""
w AS MATERIALIZED ({window_sql("(SELECT timezone FROM tenants WHERE slug = $1)")}),
considered AS (
  SELECT r.rep_id, r.hired_at, r.quota_monthly, r.timezone, {data_from_sql("r")} AS data_from
  FROM reps AS r
  WHERE r.tenant = $1 AND {active_sql("r", "$2::timestamptz")}
    AND (NOT $6::bool OR r.hired_at BETWEEN (SELECT start FROM w) AND (SELECT "end" FROM w))
)"""

TODAY = f"""
SELECT w.today, {AS_OF_SQL} AS as_of
FROM ({window_sql("(SELECT timezone FROM tenants WHERE slug = $1)")}) AS w
"""

TENURES = f"""
WITH {_CONSIDERED},
monthly AS (
  SELECT d.rep_id, {tenure_month_sql("d.day", "c.hired_at")} AS month,
         {sums_sql(METRIC_COLUMNS)},
         min(d.day) FILTER (WHERE d.deals_won > 0) AS first_win
  FROM rollup_rep_daily AS d
  JOIN considered AS c ON c.rep_id = d.rep_id AND d.day >= c.hired_at
  WHERE d.tenant = $1
  GROUP BY 1, 2
),
first AS (SELECT rep_id, min(first_win) AS first_win FROM monthly GROUP BY rep_id)
SELECT c.rep_id, c.hired_at, c.quota_monthly, f.first_win, c.data_from, m.month,
       {", ".join(f"m.{c}" for c in METRIC_COLUMNS)}
FROM considered AS c
LEFT JOIN first AS f ON f.rep_id = c.rep_id
LEFT JOIN monthly AS m ON m.rep_id = c.rep_id AND m.month < $7
ORDER BY c.rep_id, m.month
"""

ATTEMPTS = f"""
WITH {_CONSIDERED}
SELECT a.rep_id, a.module, a.passed, a.score,
       timezone({known_zone_sql("c.timezone")}, a.occurred_at)::date AS day
FROM certification_attempts AS a
JOIN considered AS c ON c.rep_id = a.rep_id
WHERE a.tenant = $1
ORDER BY a.occurred_at, a.event_id
"""


async def training_data(
    engine: AsyncEngine,
    tenant: str,
    *,
    hires: WindowSpec | None,
    max_months: int,
    now: datetime,
    attempts: bool = False,
) -> TrainingData:
    """The active reps (hired in `hires`, if given) with their monthly sums (months
    0..max_months-1), first wins (any month) and, with `attempts`, their certification attempts;
    plus the tenant's today and watermark."""
    window = (tenant, *window_args(hires or WindowSpec(), now))
    considered = (*window, hires is not None)
    async with engine.connect() as conn:
        head = (await conn.exec_driver_sql(TODAY, window)).one()
        rows = list((await conn.exec_driver_sql(TENURES, (*considered, max_months))).all())
        found = await conn.exec_driver_sql(ATTEMPTS, considered) if attempts else None
        attempt_rows = [] if found is None else [_attempt(r) for r in found]
    return TrainingData(head.today, head.as_of, _tenures(rows), attempt_rows)


def _tenures(rows: list[Row[Any]]) -> list[RepTenure]:
    out: dict[str, RepTenure] = {}
    for r in rows:
        rep = out.get(r.rep_id)
        if rep is None:
            rep = out[r.rep_id] = RepTenure(
                r.rep_id, r.hired_at, r.quota_monthly, r.first_win, {}, r.data_from
            )
        if r.month is not None:
            rep.months[r.month] = {c: r._mapping[c] for c in METRIC_COLUMNS}
    return list(out.values())


def _attempt(r: Row[Any]) -> AttemptRow:
    return AttemptRow(r.rep_id, r.module, r.passed, r.day, None if r.score is None else float(r.score))
