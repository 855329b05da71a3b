"""Pipeline read latency (SPEC 5.8) over a year of deal history, before and after the history grows
tenfold.

Seeds one tenant directly in Postgres (this measures reads, not folding): 200 reps in 10 teams, 20,000
deals created over the last 365 days, each through a six-stage pipeline (some skip a stage, some go
back one), won, lost or still open, with owner changes, close dates that move and forecast
categories; their `pipeline_deals`, `deal_stage_stays`, `deal_changes` and the contacts' latest
activity, as the pipeline fold writes them. No stage order is set: the default order (first entered)
is looked up by every read. Then measures p50/p99 of five reads at concurrency 8 against a running
api, each over requests that differ (filters, windows, periods): stage statistics, velocity per rep
and team, the forecast, stale and slipped deals.

Then adds nine older years of history (180,000 more deals, created and closed one to ten years ago,
with their stays and changes) and measures again: every read is bounded by an index range that
older history does not enter, so its latency must stay flat. One-client service times (median of
one request at a time) as served and with a commit before each request (every cached answer stale:
the cost of computing each answer afresh), and the concurrency-8 run again while another connection
commits every 100 ms.

    python -m bench.pipeline_reads --api-url http://127.0.0.1:8002 --database-url postgresql://...

creates the tenant `bench-pipeline` (and a key) when no `--api-key` is given; its data is replaced.
`bench/run.py --phases pipeline` calls `run()` with its own stack.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from bench import loadgen, reads
from bench.reads import WRITES_EVERY_S
from services.api.kit.windows import WindowSpec, window_args
from services.api.pipeline import deal_queries, queries
from services.api.pipeline.periods import current_month
from services.core.db import asyncpg_dsn

REPS = 200
TEAMS = 10
DEALS = 20_000
DAYS = 365
GROWTH = 9  # older years added: the history grows tenfold
STAGES = ("prospect", "qualify", "demo", "proposal", "negotiation", "contract")
CATEGORIES = ("pipeline", "best_case", "commit", "omitted")
SEEDED_TABLES = ("pipeline_deals", "deal_stage_stays", "deal_changes", "contact_activity", "pipeline_stages")
DAY = timedelta(days=1)


def rep_id(i: int) -> str:
    return f"rep-{i:03d}"


@dataclass
class Rows:
    deals: list[tuple[Any, ...]] = field(default_factory=list)
    stays: list[tuple[Any, ...]] = field(default_factory=list)
    changes: list[tuple[Any, ...]] = field(default_factory=list)
    activity: list[tuple[Any, ...]] = field(default_factory=list)


def deal_history(
    tenant: str, n: int, created: datetime, now: datetime, rnd: random.Random, rows: Rows, settle: bool
) -> None:
    """One deal's rows: stays through the stages until won or lost, or open at `now` (lost then if
    `settle`)."""
    deal, contact = f"deal-{n}", f"c-{n}"
    owner = rep_id(rnd.randrange(REPS))
    amount = Decimal(rnd.randint(2, 120) * 500)
    close = (created + timedelta(days=rnd.randint(20, 120))).date()
    changes: list[tuple[datetime, str, str | None, str | None]] = [
        (created, "created", None, owner), (created, "owner", owner, owner),
        (created, "amount", str(amount), owner), (created, "close_date", close.isoformat(), owner),
    ]  # fmt: skip
    stays: list[list[Any]] = []
    at, index = created, 0
    end: tuple[str, datetime] | None = None
    while True:
        stays.append([STAGES[index], at, owner])
        changes.append((at, "stage", STAGES[index], owner))
        at += timedelta(days=rnd.expovariate(1 / (2 + 2 * index)))
        if at >= now:
            if settle:
                end = ("lost", now)
                changes.append((now, "lost", None, owner))
            break
        if rnd.random() < 0.05:  # a new owner takes the deal over
            owner = rep_id(rnd.randrange(REPS))
            changes.append((at, "owner", owner, owner))
        if rnd.random() < 0.3:  # the close date moves
            close = close + timedelta(days=rnd.randint(-10, 45))
            changes.append((at, "close_date", close.isoformat(), owner))
        fate = rnd.random()
        if fate < 0.12 + 0.05 * index:
            end = ("won" if rnd.random() < 0.45 else "lost", at)
            changes.append((at, end[0], None, owner))
            break
        step = -1 if index > 1 and rnd.random() < 0.05 else 2 if rnd.random() < 0.1 else 1
        index = min(max(index + step, 0), len(STAGES) - 1)
        if index == len(STAGES) - 1 and stays[-1][0] == STAGES[-1]:
            end = ("won", at)
            changes.append((at, "won", None, owner))
            break
    category = rnd.choice(CATEGORIES)
    changes.append((created, "forecast_category", category, owner))
    for i, (stage, entered, rep) in enumerate(stays):
        left = stays[i + 1][1] if i + 1 < len(stays) else (end[1] if end else None)
        nxt = stays[i + 1][0] if i + 1 < len(stays) else (end[0] if end else None)
        later = list(dict.fromkeys(s[0] for s in stays[i + 1 :]))
        won = end is not None and end[0] == "won"
        rows.stays.append((tenant, deal, entered, stage, left, nxt, rep, created, later, won))
    last = stays[-1]
    status, closed = (end[0], end[1]) if end else ("open", None)
    updated = max(c[0] for c in changes)
    rows.deals.append((
        tenant, deal, owner, changes[1][2], contact, created, status, closed, last[0], last[1], amount,
        close, category, updated,
    ))  # fmt: skip
    for k, (when, kind, value, rep) in enumerate(changes):
        rows.changes.append((tenant, deal, f"e:{n}:{k}", when, kind, value, rep))
    if status == "open" and rnd.random() < 0.7:
        rows.activity.append((tenant, contact, now - timedelta(days=rnd.uniform(0, 30))))


def history(
    tenant: str,
    first: int,
    count: int,
    start: datetime,
    span_days: float,
    now: datetime,
    settle: bool = False,
) -> Rows:
    rnd = random.Random(first)
    rows = Rows()
    for n in range(first, first + count):
        created = start + timedelta(days=rnd.uniform(0, span_days))
        deal_history(tenant, n, created, now, rnd, rows, settle)
    return rows


async def load(conn: asyncpg.Connection, rows: Rows) -> None:
    await conn.copy_records_to_table(
        "pipeline_deals",
        records=rows.deals,
        columns=[
            "tenant", "deal_id", "rep_id", "created_rep_id", "contact_id", "created_at", "status",
            "closed_at", "stage", "stage_entered_at", "amount", "close_date", "forecast_category",
            "updated_at",
        ],
    )  # fmt: skip
    await conn.copy_records_to_table(
        "deal_stage_stays",
        records=rows.stays,
        columns=[
            "tenant", "deal_id", "entered_at", "stage", "left_at", "next", "rep_id", "deal_created_at",
            "reached_later", "won_after",
        ],
    )  # fmt: skip
    await conn.copy_records_to_table(
        "deal_changes",
        records=rows.changes,
        columns=["tenant", "deal_id", "change_id", "at", "kind", "value", "rep_id"],
    )
    await conn.copy_records_to_table(
        "contact_activity", records=rows.activity, columns=["tenant", "contact_id", "last_activity_at"]
    )


async def seed(dsn: str, tenant: str, now: datetime) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        for table in (*SEEDED_TABLES, "reps", "tenant_watermarks"):
            await conn.execute(f"DELETE FROM {table} WHERE tenant = $1", tenant)
        await conn.executemany(
            "INSERT INTO reps (tenant, rep_id, team, timezone, quota_monthly, active) "
            "VALUES ($1, $2, $3, 'UTC', $4, true)",
            [(tenant, rep_id(i), f"team-{i % TEAMS}", Decimal(50_000)) for i in range(REPS)],
        )
        rows = history(tenant, 0, DEALS, now - DAYS * DAY, DAYS, now)
        await load(conn, rows)
        await conn.execute(
            "INSERT INTO tenant_watermarks (tenant, as_of, events_folded) VALUES ($1, $2, 0)", tenant, now
        )
        await conn.execute(f"VACUUM ANALYZE {', '.join(SEEDED_TABLES)}")
    finally:
        await conn.close()
    return {"deals": len(rows.deals), "stays": len(rows.stays), "changes": len(rows.changes)}


async def grow(dsn: str, tenant: str, now: datetime) -> dict[str, int]:
    """Nine older years: deals created one to ten years ago, closed long before the last year."""
    conn = await asyncpg.connect(dsn)
    sizes = {"deals": 0, "stays": 0, "changes": 0}
    try:
        for year in range(1, GROWTH + 1):
            start = now - (year + 1) * DAYS * DAY
            # Every one closed (lost if nothing else) two days before the year ends, which is before
            # the last 365 days of the reads begin.
            end = start + (DAYS - 2) * DAY
            rows = history(tenant, year * DEALS, DEALS, start, DAYS - 130, end, settle=True)
            rows.activity.clear()
            await load(conn, rows)
            for name in sizes:
                sizes[name] += len(getattr(rows, name))
        await conn.execute(f"VACUUM ANALYZE {', '.join(SEEDED_TABLES)}")
    finally:
        await conn.close()
    return sizes


def requests(host: str, api_key: str, today: date) -> dict[str, list[bytes]]:
    headers = {"Authorization": f"Bearer {api_key}"}

    def get(path: str) -> bytes:
        return loadgen.build_request(host, f"/v1/pipeline/{path}", headers, method="GET")

    month = f"{today.year:04d}-{today.month:02d}"
    previous = (today.replace(day=1) - DAY).strftime("%Y-%m")
    quarter = f"{today.year:04d}-Q{(today.month - 1) // 3 + 1}"
    teams = [f"team-{i}" for i in range(TEAMS)]
    return {
        "stages": [get("stages"), get("stages?window=90d")] + [get(f"stages?team={t}") for t in teams],
        "velocity": [get("velocity"), get("velocity?group=team"), get("velocity?window=90d")],
        "forecast": [get("forecast"), get(f"forecast?period={quarter}"), get(f"forecast?period={previous}")],
        "deals_stale": [get("deals?status=stale")] + [get(f"deals?status=stale&team={t}") for t in teams],
        "deals_slipped": [get(f"deals?status=slipped&period={p}") for p in (month, previous, quarter)],
    }  # fmt: skip


def service_times(api_url: str, reqs: dict[str, list[bytes]], dsn: str, count: int = 100) -> dict[str, Any]:
    """Per read: median latency of one client, as served and with every cached answer stale."""
    host, port = reads.address(api_url)
    out: dict[str, dict[str, float]] = {}
    for name, batch in reqs.items():
        row: dict[str, float] = {}
        for kind, commit_dsn in (("cached", None), ("fresh", dsn)):
            asyncio.run(reads.sequential(host, port, batch, 5, commit_dsn))  # warm up
            latencies = reads.one_client(name, host, port, batch, count, commit_dsn)
            row[f"{kind}_p50_ms"] = round(statistics.median(latencies), 2)
            row[f"{kind}_p99_ms"] = round(sorted(latencies)[int(0.99 * (len(latencies) - 1))], 2)
        out[name] = row
    return out


async def blocks(dsn: str, tenant: str, now: datetime) -> dict[str, dict[str, float]]:
    """Per read, the database blocks its statement touches and its execution time (EXPLAIN ANALYZE):
    what the history's growth would change, whatever else the machine runs."""
    today = now.date()
    current, previous = current_month(today), current_month(today.replace(day=1) - DAY)
    year, month = WindowSpec(days=DAYS), WindowSpec()
    conn = await asyncpg.connect(dsn)
    try:
        found = await conn.fetchrow(queries.STAGE_HISTORY, tenant, *window_args(year, now))
        stages = [queries.StageHistoryRow(*r) for r in found["stages"]]
        names, entered, won = [h.stage for h in stages], [h.entered for h in stages], [h.won for h in stages]
        p90 = [h.p90_days for h in stages]
        statements = {
            "stage_record": (queries.STAGE_HISTORY, (*window_args(year, now),)),
            "stages": (queries.STAGES, (*window_args(month, now), None, None)),
            "velocity": (queries.VELOCITY, (*window_args(month, now), "rep")),
            "forecast": (queries.FORECAST, (*window_args(current.spec, now), names, entered, won)),
            "deals_stale": (deal_queries.STALE, (*window_args(year, now), None, None, 14, 100, names, p90)),
            "deals_slipped": (deal_queries.SLIPPED, (*window_args(previous.spec, now), None, None)),
        }
        out = {}
        for name, (sql, args) in statements.items():
            plan = json.loads(
                await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, tenant, *args)
            )
            top = plan[0]["Plan"]
            touched = top["Shared Hit Blocks"] + top["Shared Read Blocks"]
            out[name] = {"blocks": touched, "ms": round(plan[0]["Execution Time"], 2)}
        return out
    finally:
        await conn.close()


def run(
    api_url: str, api_key: str, dsn: str, tenant: str, *, concurrency: int = 8, seconds: float = 10.0,
    log: Callable[[str], None] = reads.stderr,
) -> dict[str, Any]:  # fmt: skip
    """Seed `tenant` (its pipeline data is replaced), measure, grow the history tenfold, measure again."""
    now = datetime.now(UTC)
    t0 = time.monotonic()
    sizes = asyncio.run(seed(dsn, tenant, now))
    log(f"pipeline reads: seeded {sizes} in {time.monotonic() - t0:.0f} s")
    host, port = reads.address(api_url)
    reqs = requests(f"{host}:{port}", api_key, now.date())
    load_average = [round(x, 2) for x in os.getloadavg()]
    before = reads.measure(api_url, reqs, concurrency, seconds)
    fresh_before = service_times(api_url, reqs, dsn)
    blocks_before = asyncio.run(blocks(dsn, tenant, now))
    t0 = time.monotonic()
    grown = asyncio.run(grow(dsn, tenant, now))
    log(f"pipeline reads: history grown by {grown} in {time.monotonic() - t0:.0f} s")
    after = reads.measure(api_url, reqs, concurrency, seconds)
    fresh_after = service_times(api_url, reqs, dsn)
    blocks_after = asyncio.run(blocks(dsn, tenant, now))
    for name, seen in blocks_before.items():
        log(f"  {name}: {seen['blocks']} -> {blocks_after[name]['blocks']} blocks, "
            f"{seen['ms']} -> {blocks_after[name]['ms']} ms in Postgres")  # fmt: skip
    with reads.Committer(dsn, WRITES_EVERY_S) as writes:
        during_writes = reads.measure(api_url, reqs, concurrency, seconds)
    for name in before:
        log(f"  {name}: p99 {before[name]['p99_ms']} -> {after[name]['p99_ms']} ms "
            f"({during_writes[name]['p99_ms']} ms with commits); one client afresh "
            f"{fresh_before[name]['fresh_p50_ms']} -> {fresh_after[name]['fresh_p50_ms']} ms")  # fmt: skip
    return {
        "reps": REPS, "deals_before": sizes["deals"], "deals_after": sizes["deals"] + grown["deals"],
        "rows_before": sizes, "rows_added": grown, "concurrency": concurrency, "load_average": load_average,
        "before": before, "after": after, "service_ms_before": fresh_before, "service_ms_after": fresh_after,
        "during_writes": {"commit_every_ms": round(WRITES_EVERY_S * 1000), "commits": writes.commits,
                          **during_writes},
        "statement_blocks_before": blocks_before, "statement_blocks_after": blocks_after,
        "pipeline_p99_ms": {name: after[name]["p99_ms"] for name in after},
        "p99_growth": {n: round(after[n]["p99_ms"] / max(before[n]["p99_ms"], 0.01), 2) for n in after},
    }  # fmt: skip


def main() -> None:
    parser = reads.arguments(
        __doc__,
        "bench-pipeline",
        key_help="a key of --tenant with pipeline:read",
        seconds_help="per read and phase",
    )
    args = parser.parse_args()
    key = args.api_key or asyncio.run(reads.ensure_tenant(args.database_url, args.tenant, ["pipeline:read"]))
    results = run(
        args.api_url, key, asyncpg_dsn(args.database_url), args.tenant, concurrency=args.concurrency,
        seconds=args.seconds,
    )  # fmt: skip
    reads.emit(results, args.out)


if __name__ == "__main__":
    main()
