"""What coaching's two expensive statements cost: the measured ramp and the coaching history's weeks.

Seeds (replacing their data) the api phase's tenant `bench-api` (200 reps, a year of daily and
conversation rollups: bench/api_reads.py, bench/conversations.py) and `ramp-2y` (200 reps hired 25
months ago, two years of daily rollups: every rep within its first 25 months, the measured ramp's
worst case), then prints for each statement the shared buffers it touches (EXPLAIN (ANALYZE,
BUFFERS): they do not move with the machine's load) and the Postgres backend's CPU milliseconds
per execution (from /proc, after the first six executions, so with the plan the api keeps):

- the measured ramp (services/api/kit/ramp.py `measured_sql`, metric revenue_won), per tenant;
- a rep's 12 computed history weeks: one group statement per week (queries.GROUP_SUMS, as the
  history read them before) against the weeks statement (history_queries.WEEKS_SUMS).

    .venv/bin/python -m bench.coaching_costs --database-url postgresql://... [--no-seed]

Postgres must be local (the backend's CPU is read from /proc) and migrated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from bench import api_reads, conversations
from services.api.coaching import history_queries, queries
from services.api.coaching.history import WINDOW_DAYS, ended_weeks, window_of
from services.api.kit.ramp import inputs, measured_sql
from services.core.db import asyncpg_dsn
from services.core.models import REP_COUNTERS

RAMP_TENANT = "ramp-2y"
RUNS = 10


async def seed(dsn: str, database_url: str) -> None:
    await api_reads.ensure_tenant(database_url, "bench-api")
    await api_reads.ensure_tenant(database_url, RAMP_TENANT)
    await api_reads.seed(dsn, "bench-api", 20_000)
    await conversations.seed_rollups(dsn, "bench-api")
    rnd = random.Random(7)
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=d) for d in range(730, 0, -1)]
    conn = await asyncpg.connect(dsn)
    try:
        for table in ("reps", "rollup_rep_daily", "events", "tenant_watermarks"):
            await conn.execute(f"DELETE FROM {table} WHERE tenant = $1", RAMP_TENANT)
        await conn.executemany(
            "INSERT INTO reps (tenant, rep_id, team, hired_at, timezone, quota_monthly, active) "
            "VALUES ($1, $2, $3, $4, $5, $6, true)",
            [(RAMP_TENANT, api_reads.rep_id(i), f"team-{i % 10}", today - timedelta(days=rnd.randint(731, 760)),  # noqa: E501
              api_reads.TIMEZONES[i % 4], Decimal(50_000)) for i in range(api_reads.REPS)],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "rollup_rep_daily",
            records=api_reads.rollup_rows(RAMP_TENANT, days, rnd),
            columns=["tenant", "rep_id", "day", *REP_COUNTERS],
        )
        await api_reads.grow_archive(conn, RAMP_TENANT, 0, 1, [days[0]])  # the tenant's first event
        await conn.execute(
            "INSERT INTO tenant_watermarks (tenant, as_of, events_folded) VALUES ($1, now(), 0)", RAMP_TENANT
        )
        await conn.execute("VACUUM ANALYZE reps, rollup_rep_daily, events")
    finally:
        await conn.close()


def _cpu_ms(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


Run = Callable[[str], Awaitable[Any]]


def runner(conn: asyncpg.Connection, *args: Any) -> Run:
    """Runs a statement with `args`: an EXPLAIN's one value, or the rows."""
    return lambda sql: conn.fetchval(sql, *args) if sql.startswith("EXPLAIN") else conn.fetch(sql, *args)


async def _cost(conn: asyncpg.Connection, run: Run, sqls: list[str]) -> dict[str, float]:
    """Buffers (summed over `sqls`) and backend CPU ms per run of all of them."""
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    blocks = 0
    for sql in sqls:
        plan = json.loads(await run("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql))[0]["Plan"]
        blocks += plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)
    for _ in range(6):
        for sql in sqls:
            await run(sql)
    start = _cpu_ms(pid)
    for _ in range(RUNS):
        for sql in sqls:
            await run(sql)
    return {"buffers": blocks, "postgres_cpu_ms": round((_cpu_ms(pid) - start) / RUNS, 1)}


async def measure(dsn: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    conn = await asyncpg.connect(dsn)
    out: dict[str, Any] = {}
    try:
        await conn.execute("SET jit = off")
        ramp = measured_sql(inputs("revenue_won"))
        for tenant in ("bench-api", RAMP_TENANT):
            out[f"measured_ramp {tenant}"] = await _cost(conn, runner(conn, tenant, now), [ramp])
        mondays = ended_weeks(now.date(), 12)
        rep = api_reads.rep_id(7)

        per_week = [
            await _cost(
                conn,
                runner(conn, "bench-api", now, WINDOW_DAYS, *window_of(m), rep, rep),
                [queries.GROUP_SUMS],
            )
            for m in mondays
        ]
        out["history 12 weeks, a group statement each"] = {
            k: round(sum(w[k] for w in per_week), 1) for k in ("buffers", "postgres_cpu_ms")
        }
        weeks = runner(conn, "bench-api", now, window_of(mondays[0])[0], 12, WINDOW_DAYS // 7, rep)
        out["history 12 weeks, one weeks statement"] = await _cost(conn, weeks, [history_queries.WEEKS_SUMS])
    finally:
        await conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--no-seed", action="store_true", help="measure the tenants already seeded")
    args = parser.parse_args()
    dsn = asyncpg_dsn(args.database_url)
    if not args.no_seed:
        asyncio.run(seed(dsn, args.database_url))
    for name, cost in asyncio.run(measure(dsn)).items():
        print(f"{name}: {cost}")


if __name__ == "__main__":
    main()
