"""All SQL of the conversations domain: one call's analysis, and rep and team sums of
`conversation_rollups` over a window.

Each read is one statement on the read pool (services/api/kit/reads.py): the rows, the window's bounds
and the tenant's watermark in a single round trip. Rep and team reads never touch `call_analyses`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson

from services.api.kit.conversations import ROLLUP_COLUMNS, conversation_sums_sql
from services.api.kit.reads import ReadPool
from services.api.kit.snapshot import AS_OF_SQL
from services.api.kit.tenure import active_sql
from services.api.kit.windows import WindowSpec, window_args, window_sql
from services.core.models.conversations import CALL_METRICS

CALL = f"""
SELECT a.call_event_id, a.rep_id, a.contact_id, a.occurred_at, a.duration_s::float8 AS duration_s,
       a.transcript_event_id, a.words, a.moments::text AS moments, {AS_OF_SQL} AS as_of,
       {", ".join(f"a.{m}" for m in CALL_METRICS)}
FROM call_analyses AS a
WHERE a.tenant = $1 AND a.call_event_id = $2
"""

# $1 tenant, $2..$5 the window (kit.windows.window_args), $6 the rep.
REP_SUMS = f"""
SELECT r.team, w.start, w."end", {AS_OF_SQL} AS as_of,
       {conversation_sums_sql(ROLLUP_COLUMNS)}
FROM reps AS r
CROSS JOIN LATERAL ({window_sql("r.timezone")}) AS w
LEFT JOIN conversation_rollups AS c
  ON c.tenant = r.tenant AND c.rep_id = r.rep_id AND c.day BETWEEN w.start AND w."end"
WHERE r.tenant = $1 AND r.rep_id = $6
GROUP BY r.tenant, r.rep_id, r.team, w.start, w."end"
"""

# $1 tenant, $2..$5 the window in the tenant's timezone, $6 the team (null: every team). Each rep
# contributes its own rep-local days between the window's dates.
TEAM_SUMS = f"""
WITH w AS MATERIALIZED ({window_sql("(SELECT timezone FROM tenants WHERE slug = $1)")}),
sums AS (
  SELECT c.rep_id,
       {conversation_sums_sql(ROLLUP_COLUMNS)}
  FROM conversation_rollups AS c
  -- Scalar subqueries are evaluated once, so the day range is an index condition.
  WHERE c.tenant = $1 AND c.day BETWEEN (SELECT start FROM w) AND (SELECT "end" FROM w)
  GROUP BY c.rep_id
)
SELECT w.start, w."end", {AS_OF_SQL} AS as_of,
       ($6::text IS NULL OR EXISTS (SELECT 1 FROM reps WHERE tenant = $1 AND team = $6)) AS team_known,
       r.rep_id, r.team,
       {", ".join(f"coalesce(s.{c}, 0) AS {c}" for c in ROLLUP_COLUMNS)}
FROM w
LEFT JOIN (reps AS r LEFT JOIN sums AS s ON s.rep_id = r.rep_id)
  ON r.tenant = $1 AND ($6::text IS NULL OR r.team = $6)
     AND ({active_sql("r", "$2::timestamptz")} OR s.calls_analysed > 0)
ORDER BY r.rep_id
"""


@dataclass(frozen=True)
class Window:
    start: date
    end: date
    as_of: datetime | None


@dataclass(frozen=True)
class RepSums:
    rep_id: str
    team: str | None
    sums: dict[str, Any]


async def call_analysis(pool: ReadPool, tenant: str, event_id: str) -> dict[str, Any] | None:
    """The analysis of the call `event_id` with the tenant's watermark (`as_of`), its moments decoded;
    None when the tenant has no transcript of that call. Until the call itself is folded, its rep and
    facts are null."""
    row = await pool.fetchrow(CALL, tenant, event_id)
    if row is None:
        return None
    found = dict(row)
    found["moments"] = orjson.loads(found["moments"]) if found["moments"] is not None else []
    return found


async def rep_sums(
    pool: ReadPool, tenant: str, rep_id: str, spec: WindowSpec, now: datetime
) -> tuple[Window, RepSums] | None:
    """The rep's rollup sums over the rep-local days of the window; None if there is no such rep."""
    row = await pool.fetchrow(REP_SUMS, tenant, *window_args(spec, now), rep_id)
    if row is None:
        return None
    sums = {c: row[c] for c in ROLLUP_COLUMNS}
    return Window(row["start"], row["end"], row["as_of"]), RepSums(rep_id, row["team"], sums)


async def team_sums(
    pool: ReadPool, tenant: str, team: str | None, spec: WindowSpec, now: datetime
) -> tuple[Window, list[RepSums]] | None:
    """Every rep listed (module SQL) with its sums over the window, in the tenant's calendar, ordered
    by rep id; None when `team` is given and no rep of the tenant is in it."""
    rows = await pool.fetch(TEAM_SUMS, tenant, *window_args(spec, now), team)
    first = rows[0]
    if not first["team_known"]:
        return None
    reps = [
        RepSums(r["rep_id"], r["team"], {c: r[c] for c in ROLLUP_COLUMNS})
        for r in rows
        if r["rep_id"] is not None
    ]
    return Window(first["start"], first["end"], first["as_of"]), reps
