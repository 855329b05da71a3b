"""All SQL of the planning domain: what a plan reads besides the measured ramp (kit.ramp) and the
reps' tenures (kit.attrition).

Everything runs on the read pool (services/api/kit/reads.py), one statement per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from services.api.kit.reads import ReadPool
from services.api.kit.snapshot import AS_OF_SQL, SNAPSHOT_SQL
from services.core.tenancy import known_zone_sql


@dataclass(frozen=True)
class PlanContext:
    """The tenant's `today` (its timezone), freshness, the snapshot read at, its failure rate
    setting (None: not set) and its reps' version (it changes whenever a rep is added or written)."""

    today: date
    as_of: datetime | None
    snapshot: str
    failure_rate: float | None
    reps_version: str = ""


# Changes with every rep added or written (PUT /v1/reps sets updated_at): an index range of the reps.
REPS_VERSION = (
    "(SELECT count(*) || ':' || coalesce(max(r.updated_at)::text, '') FROM reps AS r WHERE r.tenant = $1)"
)

# $1 tenant, $2 now.
CONTEXT = f"""
SELECT timezone({known_zone_sql("t.timezone")}, $2::timestamptz)::date AS today,
       {AS_OF_SQL} AS as_of, {SNAPSHOT_SQL} AS snapshot,
       (SELECT s.failure_rate FROM economics_settings AS s WHERE s.tenant = $1) AS failure_rate,
       {REPS_VERSION} AS reps_version
FROM tenants AS t
WHERE t.slug = $1
"""


async def plan_context(pool: ReadPool, tenant: str, now: datetime) -> PlanContext | None:
    """None for an unknown tenant."""
    row = await pool.fetchrow(CONTEXT, tenant, now)
    if row is None:
        return None
    rate = row["failure_rate"]
    rate = None if rate is None else float(rate)
    return PlanContext(row["today"], row["as_of"], row["snapshot"], rate, row["reps_version"])


@dataclass(frozen=True)
class NewMrrPerBooking:
    """New MRR (accounts paying for the first time) and bookings (won deals' amounts) over the same
    days."""

    new_mrr: float
    bookings: float


# $1 tenant, $2 and $3 the instants the days run between. Both sums are index ranges
# (mrr_movements and deal_facts by tenant and time).
NEW_MRR_PER_BOOKING = """
SELECT (SELECT coalesce(sum(m.mrr_after - m.mrr_before), 0) FROM mrr_movements AS m
        WHERE m.tenant = $1 AND m.at >= $2 AND m.at < $3 AND m.movement = 'new') AS new_mrr,
       (SELECT coalesce(sum(f.amount), 0) FROM deal_facts AS f
        WHERE f.tenant = $1 AND f.occurred_at >= $2 AND f.occurred_at < $3 AND f.type = 'deal.won')
         AS bookings
"""


async def new_mrr_per_booking(
    pool: ReadPool, tenant: str, since: datetime, until: datetime
) -> NewMrrPerBooking:
    row = await pool.fetchrow(NEW_MRR_PER_BOOKING, tenant, since, until)
    assert row is not None
    return NewMrrPerBooking(float(row["new_mrr"]), float(row["bookings"]))
