"""The measured ramp (SPEC 5.9, 5.10): how many months of tenure a new rep takes to produce like the
tenant's ramped reps.

    async def measured_ramp_months(
        reads: Reads, tenant: str, *, now: datetime, metric: str = RAMP_METRIC,
        snapshot: str | None = None,
    ) -> int

The first tenure month in which the tenant's median rep reaches 80 % of the steady state (the
median monthly value of `metric` over tenure months 6-24), or DEFAULT_RAMP_MONTHS (3) when that
cannot be measured. Months are 0-based (month k runs from hired_at + k months to hired_at + k+1
months, rep-local days), so a rep is ramping while its tenure month is below the answer.
`measured_ramp` gives the whole measurement (the curve, the steady state); `measure_ramp` is the
pure computation over per-rep monthly values.

What is measured: every rep with a hire date that is active or has left (a rep switched off
without a leaving day may have stopped long ago: its zeros are not ramp data), each over its
complete months of tenure (ended by today and, for a rep who left, by its `left_at`) whose numbers
are known: a month that began before the rep's data does (`data_from_sql`) is unknown, not zero.

Cost: one statement summing the columns the metric's formula reads from the daily rollups, one
primary-key range per rep over its complete known months (only reps within their first 25 months of
known data cost anything), cached in `reads.cache` per database snapshot, tenant, metric and quarter
hour (every timezone's day is constant within a quarter hour of UTC, so the reps' "today" is too). A
caller that already probed the snapshot passes it; otherwise a one-row probe finds it. 200 reps all
within their first two years read about 140,000 rollup rows in about 6,600 buffers (bench/README.md,
"Coaching: the measured ramp and the history"); a cached answer takes 2-3 ms.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from services.api.kit.reads import AnswerKey, ReadPool, Reads, rollup_read
from services.api.kit.snapshot import SNAPSHOT_SQL
from services.api.kit.sums import check_metric, metrics_from_sums, sums_sql
from services.api.kit.tenure import data_from_sql
from services.core.tenancy import known_zone_sql

RAMP_METRIC = "revenue_won"
RAMP_SHARE = 0.8  # of the steady state
STEADY_MONTHS = range(6, 25)  # tenure months 6..24
DEFAULT_RAMP_MONTHS = 3
_MEASURED_MONTHS = STEADY_MONTHS.stop


@dataclass(frozen=True)
class MeasuredRamp:
    """The tenant's median rep by tenure month, and where it reaches RAMP_SHARE of the steady state.

    `curve[k]` is the median of month k over the reps that have it (None: no rep has), `reps[k]`
    how many have it; `months` is None when the ramp cannot be measured (no steady-state month
    with data, a steady state of 0 or below, or no month reaching the share of it). `rep_count` is
    how many distinct reps have at least one month in the measurement; `by_rep` their monthly
    values by rep id, as read (empty from `measure_ramp`), so a caller can group them (by cohort).
    """

    metric: str
    curve: tuple[float | None, ...]
    reps: tuple[int, ...]
    steady_state: float | None
    months: int | None
    rep_count: int = 0
    by_rep: Mapping[str, Mapping[int, float | None]] = field(default_factory=dict)

    @property
    def ramp_months(self) -> int:
        return DEFAULT_RAMP_MONTHS if self.months is None else self.months


def measure_ramp(monthly: Iterable[Mapping[int, float | None]], *, metric: str = RAMP_METRIC) -> MeasuredRamp:
    """The ramp of reps given as tenure month -> value (None or absent: unknown), months 0..24.

    The steady state is the median of every value of tenure months 6-24 (each rep's month is one
    monthly value); the ramp length the first month whose median reaches RAMP_SHARE of it.
    """
    by_month: list[list[float]] = [[] for _ in range(_MEASURED_MONTHS)]
    rep_count = 0
    for rep in monthly:
        known = [(k, v) for k, v in rep.items() if v is not None and 0 <= k < _MEASURED_MONTHS]
        rep_count += bool(known)
        for k, value in known:
            by_month[k].append(float(value))
    curve = tuple(_median(values) for values in by_month)
    steady = _median([v for k in STEADY_MONTHS for v in by_month[k]])
    months = ramp_length(curve, steady)
    return MeasuredRamp(metric, curve, tuple(len(v) for v in by_month), steady, months, rep_count)


def ramp_length(curve: Iterable[float | None], steady_state: float | None) -> int | None:
    """The first month of `curve` reaching RAMP_SHARE of `steady_state`; None when none does or the
    steady state is unknown, 0 or below."""
    if steady_state is None or steady_state <= 0:
        return None
    reached = (k for k, m in enumerate(curve) if m is not None and m >= RAMP_SHARE * steady_state)
    return next(reached, None)


# The rollup columns each metric's formula reads (kit.sums.metrics_from_sums); a counter reads itself.
_INPUTS: dict[str, tuple[str, ...]] = {
    "connect_rate": ("connects", "dials"),
    "talk_ratio": ("rep_talk_s", "buyer_talk_s"),
    "reply_rate": ("email_replies", "emails_sent"),
    "open_rate": ("emails_opened", "emails_sent"),
    "click_rate": ("emails_clicked", "emails_sent"),
    "bounce_rate": ("emails_bounced", "emails_sent"),
    "meeting_rate": ("meetings_booked", "connects"),
    "show_rate": ("meetings_held", "meetings_booked"),
    "win_rate": ("deals_won", "deals_lost"),
    "avg_deal_size": ("revenue_won", "deals_won"),
    "quota_attainment": ("revenue_won",),
}


def inputs(metric: str) -> tuple[str, ...]:
    """The rollup columns `metric` is computed from."""
    return _INPUTS.get(metric, (metric,))


@functools.cache
def measured_sql(columns: tuple[str, ...]) -> str:
    """$1 tenant, $2 now. One row per complete, known tenure month 0..24 of every measured rep (the
    module's doc says which), with its length in days and `columns` summed over it; at least one
    row, for the snapshot.

    A rep's measured months are consecutive, so its rollups are read as one range of the primary
    key (one index descent per rep, not per month), and each row's tenure month is a binary search
    (`width_bucket`) among the rep's month starts."""
    until = "least(rp.today, coalesce(rp.left_at, rp.today))"
    start = "(rp.hired_at + make_interval(0, k.month))::date"
    return f"""
WITH rp AS MATERIALIZED (
  SELECT r.rep_id, r.hired_at, r.left_at, r.quota_monthly,
         timezone({known_zone_sql("r.timezone")}, $2::timestamptz)::date AS today,
         {data_from_sql("r")} AS data_from
  FROM reps AS r
  WHERE r.tenant = $1 AND r.hired_at IS NOT NULL AND (r.active OR r.left_at IS NOT NULL)
),
months AS MATERIALIZED (
  SELECT rp.rep_id, rp.quota_monthly, k.month,
         (rp.hired_at + make_interval(0, k.month))::date AS first,
         (rp.hired_at + make_interval(0, k.month + 1))::date AS next
  FROM rp CROSS JOIN generate_series(0, {_MEASURED_MONTHS - 1}) AS k(month)
  WHERE (rp.hired_at + make_interval(0, k.month))::date >= rp.data_from
    AND (rp.hired_at + make_interval(0, k.month + 1))::date <= {until}
),
spans AS MATERIALIZED (
  SELECT m.rep_id, min(m.first) AS first, max(m.next) AS next,
         (SELECT array_agg({start} ORDER BY k.month) FROM generate_series(0, {_MEASURED_MONTHS}) AS k(month))
           AS starts
  FROM months AS m JOIN rp ON rp.rep_id = m.rep_id
  GROUP BY m.rep_id, rp.hired_at
),
sums AS (
  SELECT sp.rep_id, s.*
  FROM spans AS sp CROSS JOIN LATERAL (
    SELECT width_bucket(d.day, sp.starts) - 1 AS month, {sums_sql(columns)}
    FROM rollup_rep_daily AS d
    WHERE d.tenant = $1 AND d.rep_id = sp.rep_id AND d.day >= sp.first AND d.day < sp.next
    GROUP BY 1
  ) AS s
)
SELECT {SNAPSHOT_SQL} AS snapshot, m.rep_id, m.month, m.next - m.first AS days, m.quota_monthly,
       {", ".join(f"coalesce(s.{c}, 0) AS {c}" for c in columns)}
FROM (SELECT 1) AS one
LEFT JOIN (
  months AS m LEFT JOIN sums AS s ON s.rep_id = m.rep_id AND s.month = m.month
) ON true
"""


_PROBE = f"SELECT {SNAPSHOT_SQL} AS snapshot"
_QUERY = "measured_ramp"


async def _read(pool: ReadPool, tenant: str, now: datetime, metric: str) -> tuple[str, MeasuredRamp]:
    columns = inputs(metric)
    with rollup_read(_QUERY):
        rows = await pool.fetch(measured_sql(columns), tenant, now)
    monthly: dict[str, dict[int, float | None]] = {}
    for row in rows:
        if row["rep_id"] is not None:
            sums = {c: row[c] for c in columns}
            value = metrics_from_sums(sums, quota_monthly=row["quota_monthly"], days=row["days"])[metric]
            monthly.setdefault(row["rep_id"], {})[row["month"]] = None if value is None else float(value)
    return rows[0]["snapshot"], replace(measure_ramp(monthly.values(), metric=metric), by_rep=monthly)


def _quarter_hour(now: datetime) -> datetime:
    now = now.astimezone(UTC)
    return now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)


async def measured_ramp(
    reads: Reads, tenant: str, *, now: datetime, metric: str = RAMP_METRIC, snapshot: str | None = None
) -> MeasuredRamp:
    """The tenant's measured ramp of `metric` at `now`, cached per snapshot (see the module's doc)."""
    check_metric("metric", metric)
    if snapshot is None:
        probe = await reads.pool.fetchrow(_PROBE)
        assert probe is not None
        snapshot = str(probe["snapshot"])
    parts = (_QUERY, tenant, metric, _quarter_hour(now))

    async def compute() -> tuple[AnswerKey, MeasuredRamp]:
        seen, found = await _read(reads.pool, tenant, now, metric)
        return AnswerKey(seen, parts), found

    return await reads.cache.get(_QUERY, AnswerKey(snapshot, parts), compute)


async def measured_ramp_months(
    reads: Reads, tenant: str, *, now: datetime, metric: str = RAMP_METRIC, snapshot: str | None = None
) -> int:
    """The default `ramp_months` of SPEC 5.9: the measured ramp length, 3 when it cannot be measured."""
    found = await measured_ramp(reads, tenant, now=now, metric=metric, snapshot=snapshot)
    return found.ramp_months


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None
