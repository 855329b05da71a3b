"""All SQL of the coaching domain: a peer group's window sums, and the probe that tells whether a
cached answer still holds.

Reads are single statements on the read pool (services/api/kit/reads.py). The group read returns the
active reps of the tenant (plus, for one rep's own view, that rep whatever its state), the
window's bounds, the sums of `rollup_rep_daily` and of `conversation_rollups` per rep, the watermark
and the database snapshot it saw. Every rep contributes its own rep-local days between the window's
dates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from services.api.kit.conversations import (
    CALLS,
    conversation_sums_sql,
    count_column,
    moments_column,
    sum_column,
)
from services.api.kit.reads import ReadPool
from services.api.kit.snapshot import AS_OF_SQL, SNAPSHOT_SQL
from services.api.kit.sums import sums_sql
from services.api.kit.tenure import active_sql, data_from_sql
from services.api.kit.windows import WindowSpec, window_args, window_sql

# The sums of `rollup_rep_daily` a coaching table is built from; `talk_calls` (calls with both talk
# times) is the sample behind talk_ratio.
COUNTER_COLUMNS: tuple[str, ...] = (
    "dials",
    "connects",
    "rep_talk_s",
    "buyer_talk_s",
    "talk_calls",
    "emails_sent",
    "email_replies",
    "meetings_booked",
    "meetings_held",
    "deals_created",
    "deals_won",
    "deals_lost",
    "revenue_won",
)
# The sums of `conversation_rollups` behind the conversation metrics (SPEC 5.7).
TALK_COLUMNS: tuple[str, ...] = (
    CALLS,
    sum_column("rep_talk_share"),
    count_column("rep_talk_share"),
    sum_column("longest_monologue_s"),
    count_column("longest_monologue_s"),
    sum_column("rep_questions"),
    moments_column("label"),
    moments_column("calibrated_question"),
)
# Every sum of a group's row.
GROUP_COLUMNS: tuple[str, ...] = COUNTER_COLUMNS + TALK_COLUMNS


def employed_days_sql(first: str, last: str, rep: str = "r") -> str:
    """SQL: how many of the days `first`..`last` (date expressions) the rep aliased `rep` was
    employed: from its `hired_at` to the day before its `left_at` (either null: no bound)."""
    return (
        f"greatest(0, least({last}, coalesce({rep}.left_at - 1, {last}))"
        f" - greatest({first}, coalesce({rep}.hired_at, {first})) + 1)"
    )


# $1 tenant, $2..$5 the window (kit.windows.window_args), $6 the rep whose timezone the window
# follows (null: the tenant's), $7 a rep included whether active or not (null: none).
_ZONE = (
    "(CASE WHEN $6::text IS NULL THEN (SELECT timezone FROM tenants WHERE slug = $1) "
    "ELSE (SELECT timezone FROM reps WHERE tenant = $1 AND rep_id = $6) END)"
)
# Changes with every rep added or written (PUT /v1/reps sets updated_at).
REPS_VERSION = "(SELECT count(*) || ':' || coalesce(max(updated_at)::text, '') FROM reps WHERE tenant = $1)"
GROUP_SUMS = f"""
WITH w AS MATERIALIZED ({window_sql(_ZONE)}),
sums AS (
  SELECT d.rep_id,
       {sums_sql(COUNTER_COLUMNS)}
  FROM rollup_rep_daily AS d
  -- Scalar subqueries are evaluated once, so the day range is an index condition.
  WHERE d.tenant = $1 AND d.day BETWEEN (SELECT start FROM w) AND (SELECT "end" FROM w)
  GROUP BY d.rep_id
),
talk AS (
  SELECT c.rep_id,
       {conversation_sums_sql(TALK_COLUMNS)}
  FROM conversation_rollups AS c
  WHERE c.tenant = $1 AND c.day BETWEEN (SELECT start FROM w) AND (SELECT "end" FROM w)
  GROUP BY c.rep_id
)
SELECT w.start, w."end", {SNAPSHOT_SQL} AS snapshot, {AS_OF_SQL} AS as_of, {REPS_VERSION} AS reps_version,
       r.rep_id, r.team, r.hired_at,
       {employed_days_sql("w.start", 'w."end"')} AS employed_days,
       {", ".join(f"coalesce(s.{c}, 0) AS {c}" for c in COUNTER_COLUMNS)},
       {", ".join(f"coalesce(t.{c}, 0) AS {c}" for c in TALK_COLUMNS)}
FROM w
LEFT JOIN (reps AS r LEFT JOIN sums AS s ON s.rep_id = r.rep_id LEFT JOIN talk AS t ON t.rep_id = r.rep_id)
  ON r.tenant = $1 AND ({active_sql("r", "$2::timestamptz")} OR r.rep_id = $7::text)
ORDER BY r.rep_id
"""

# $1 tenant, $2 and $3 the window's first and last day, $4 the tenure months wanted, $5 now. Every
# active rep hired at least N + 1 months before the window's end, for each N, with its sums over
# its own month N: as many days as the window from N months after its hire (SPEC 5.9). A month N
# that began before the rep's numbers are known (kit.tenure.data_from_sql: before the tenant's
# first event, say) has no data rather than zeros: that rep is no peer for it.
TENURE_SUMS = f"""
WITH eligible AS MATERIALIZED (
  SELECT r.rep_id, r.team, r.hired_at, r.left_at, {data_from_sql("r")} AS data_from
  FROM reps AS r
  WHERE r.tenant = $1 AND {active_sql("r", "$5::timestamptz")} AND r.hired_at IS NOT NULL
    AND r.hired_at + make_interval(0, (SELECT min(n) FROM unnest($4::int[]) AS m(n)) + 1) <= $3::date
),
spans AS MATERIALIZED (
  SELECT n.n, r.rep_id, r.team, s.first, s.first + ($3::date - $2::date) AS last,
         {employed_days_sql("s.first", "s.first + ($3::date - $2::date)")} AS employed_days
  FROM eligible AS r
  CROSS JOIN unnest($4::int[]) AS n(n)
  CROSS JOIN LATERAL (SELECT (r.hired_at + make_interval(0, n.n))::date AS first) AS s
  WHERE r.hired_at + make_interval(0, n.n + 1) <= $3::date AND s.first >= r.data_from
)
SELECT sp.n, sp.rep_id, sp.team, sp.employed_days,
       {", ".join(f"d.{c}" for c in COUNTER_COLUMNS)}, {", ".join(f"t.{c}" for c in TALK_COLUMNS)}
FROM spans AS sp
CROSS JOIN LATERAL (
  SELECT {sums_sql(COUNTER_COLUMNS)}
  FROM rollup_rep_daily AS d
  WHERE d.tenant = $1 AND d.rep_id = sp.rep_id AND d.day BETWEEN sp.first AND sp.last
) AS d
CROSS JOIN LATERAL (
  SELECT {conversation_sums_sql(TALK_COLUMNS)}
  FROM conversation_rollups AS c
  WHERE c.tenant = $1 AND c.rep_id = sp.rep_id AND c.day BETWEEN sp.first AND sp.last
) AS t
ORDER BY sp.n, sp.rep_id
"""

REP_PROBE = f"""
SELECT {SNAPSHOT_SQL} AS snapshot, w.start, w."end", {active_sql("r", "$2::timestamptz")} AS active
FROM reps AS r CROSS JOIN LATERAL ({window_sql("r.timezone")}) AS w
WHERE r.tenant = $1 AND r.rep_id = $6
"""


@dataclass(frozen=True)
class RepProbe:
    """The snapshot a rep's read sees, its window's days in the rep's timezone, its state."""

    snapshot: str
    start: date
    end: date
    active: bool


@dataclass(frozen=True)
class GroupSums:
    """The reps of a group, ordered by rep id, with their sums (GROUP_COLUMNS) over the window."""

    snapshot: str
    start: date
    end: date
    as_of: datetime | None
    rows: list[Any]
    reps_version: str = ""  # changes whenever a rep of the tenant is added or written

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


async def rep_probe(
    pool: ReadPool, tenant: str, rep_id: str, spec: WindowSpec, now: datetime
) -> RepProbe | None:
    """The snapshot, the window in the rep's timezone and whether the rep is active; None if there
    is no such rep."""
    row = await pool.fetchrow(REP_PROBE, tenant, *window_args(spec, now), rep_id)
    if row is None:
        return None
    return RepProbe(row["snapshot"], row["start"], row["end"], row["active"])


async def group_sums(
    pool: ReadPool,
    tenant: str,
    spec: WindowSpec,
    now: datetime,
    *,
    zone_of: str | None = None,
    including: str | None = None,
) -> GroupSums | None:
    """The active reps of the tenant and `including` (active or not) with their sums over the
    window, in the timezone of rep `zone_of` (None: the tenant's). None if that rep (or the tenant)
    does not exist."""
    rows = await pool.fetch(GROUP_SUMS, tenant, *window_args(spec, now), zone_of, including)
    if not rows or rows[0]["start"] is None:
        return None
    first = rows[0]
    reps = [r for r in rows if r["rep_id"] is not None]
    return GroupSums(
        first["snapshot"], first["start"], first["end"], first["as_of"], reps, first["reps_version"]
    )


async def tenure_sums(
    pool: ReadPool, tenant: str, start: date, end: date, months: Sequence[int], now: datetime
) -> dict[int, list[Any]]:
    """Per tenure month N of `months`, the rows of TENURE_SUMS (rep_id, team, employed_days and
    GROUP_COLUMNS) of the reps that have lived through month N by `end`."""
    rows = await pool.fetch(TENURE_SUMS, tenant, start, end, list(months), now)
    out: dict[int, list[Any]] = {n: [] for n in months}
    for row in rows:
        out[row["n"]].append(row)
    return out
