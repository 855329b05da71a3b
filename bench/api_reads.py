"""API read latency over a year of rollups, before and after the raw event archive grows tenfold.

Seeds one tenant directly in Postgres (this measures reads, not folding): 200 reps x 365 days of
`rollup_rep_daily`, a year of leads, deal facts and monthly spend, and an event archive of N events.
Then measures p50/p99 of four reads at concurrency 8 against a running api: the coaching team view,
one rep's coaching, the demand channel report and one rep's metrics (default windows: the last 30
days). Then adds 9 N events to the archive (the rollups stay the same size) and measures again: the
answers come from rollups and feedback state, so their latency must not follow the archive.

Wall-clock percentiles at concurrency 8 move with whatever else the machine runs, so each read's
service time is measured too: one client, one request at a time, median latency (and, with
`--api-pid`, the api's CPU milliseconds per request). Once as the load runs (answers the api may
serve from its snapshot-keyed cache), once with a commit before every request, which makes every
cached answer stale: the cost of computing each answer afresh. Finally the concurrency-8 run again
while another connection commits every 100 ms, as a busy aggregator does.

    python -m bench.api_reads --api-url http://127.0.0.1:8002 --database-url postgresql://...

creates the tenant `bench-api` (and a key) when no `--api-key` is given. The tenant's data is replaced.
`bench/run.py` calls `run()` with its own stack.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import psutil

from bench import loadgen, reads, workload
from bench.reads import WRITES_EVERY_S
from services.aggregator import archive_partitions
from services.aggregator.folds.subscriptions import SubscriptionEvent, derive_all
from services.aggregator.folds.subscriptions_sql import INSERT_EVENTS, SAVE_ACCOUNTS, SAVE_MOVEMENTS
from services.aggregator.store import insert_rows
from services.core.db import asyncpg_dsn
from services.core.events import Channel
from services.core.models import REP_COUNTERS

REPS = 200
DAYS = 365
TEAMS = 10
TIMEZONES = ("UTC", "America/New_York", "Europe/Berlin", "Asia/Tokyo")
LEADS_PER_DAY = 60
DEALS_PER_DAY = 12
CHANNELS = [c.value for c in Channel]
SCOPES = ("metrics:read", "coaching:read", "demand:read", "economics:read")
# The feedback tables of the tenant, emptied before seeding so that reruns measure the same data.
SEEDED_TABLES = (
    "reps",
    "rollup_rep_daily",
    "leads",
    "deal_facts",
    "channel_spend",
    "events",
    "tenant_watermarks",
    "mrr_movements",
    "subscription_accounts",
)
# The billing history: accounts started over two years, each a contact of the leads (its channel).
ACCOUNTS = 3000
BILLING_DAYS = 730
# Reps who left during the year (the capacity plan's attrition); not active, so no rollups.
DEPARTED = 20


def rep_id(i: int) -> str:
    return f"rep-{i:03d}"


def rollup_rows(tenant: str, days: list[date], rnd: random.Random) -> Iterator[tuple[Any, ...]]:
    """A plausible day of work per rep: dials, connects, talk, emails, meetings, deals."""
    for i in range(REPS):
        skill = rnd.uniform(0.6, 1.4)
        for day in days:
            dials = rnd.randint(10, 60)
            connects = int(dials * rnd.uniform(0.1, 0.35) * skill)
            talk_calls = connects
            rep_talk, buyer_talk = talk_calls * rnd.randint(60, 240), talk_calls * rnd.randint(60, 300)
            emails = rnd.randint(5, 50)
            booked = rnd.randint(0, max(1, connects // 3))
            won = rnd.random() < 0.08 * skill
            values = {
                "events": dials + emails + booked * 2 + 3,
                "calls": dials,
                "dials": dials,
                "connects": connects,
                "talk_time_s": Decimal(talk_calls * rnd.randint(120, 600)),
                "talk_calls": talk_calls,
                "rep_talk_s": Decimal(rep_talk),
                "buyer_talk_s": Decimal(buyer_talk),
                "emails_sent": emails,
                "email_replies": int(emails * rnd.uniform(0.02, 0.15)),
                "meetings_booked": booked,
                "meetings_held": rnd.randint(0, booked),
                "deals_created": int(rnd.random() < 0.2),
                "deals_won": int(won),
                "deals_lost": int(rnd.random() < 0.1),
                "revenue_won": Decimal(rnd.randint(5, 80) * 1000 if won else 0),
            }
            counters = [
                values.get(c, Decimal(0) if c.endswith("_s") or c == "revenue_won" else 0)
                for c in REP_COUNTERS
            ]
            yield (tenant, rep_id(i), day, *counters)


def lead_rows(tenant: str, days: list[date], rnd: random.Random) -> Iterator[tuple[Any, ...]]:
    n = 0
    for day in days:
        for _ in range(LEADS_PER_DAY):
            created = datetime.combine(day, datetime.min.time(), UTC) + timedelta(
                seconds=rnd.randint(0, 86399)
            )
            speed = rnd.randint(30, 86400) if rnd.random() < 0.8 else None
            touched = created + timedelta(seconds=speed) if speed is not None else None
            mql = created + timedelta(days=rnd.randint(1, 10)) if rnd.random() < 0.3 else None
            sql_at = (
                mql + timedelta(days=rnd.randint(1, 10)) if mql is not None and rnd.random() < 0.4 else None
            )
            yield (
                tenant,
                f"c{n}",
                created,
                f"lead-{n}",
                rnd.choice(CHANNELS),
                touched,
                None if speed is None else Decimal(speed),
                mql,
                sql_at,
            )
            n += 1


def deal_rows(tenant: str, days: list[date], rnd: random.Random, leads: int) -> Iterator[tuple[Any, ...]]:
    n = 0
    for day in days:
        for _ in range(DEALS_PER_DAY):
            at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(seconds=rnd.randint(0, 86399))
            kind = rnd.choices(("deal.created", "deal.won", "deal.lost"), (6, 3, 3))[0]
            # Half the deals name no channel: their contact's lead attributes them at read time.
            channel = rnd.choice(CHANNELS) if rnd.random() < 0.5 else None
            amount = Decimal(rnd.randint(5, 80) * 1000) if kind == "deal.won" else None
            contact = f"c{rnd.randrange(leads)}"
            yield (
                tenant,
                f"deal-{n}",
                kind,
                f"d{n}",
                contact,
                rep_id(rnd.randrange(REPS)),
                channel,
                amount,
                at,
            )
            n += 1


def event_rows(tenant: str, start: int, count: int, days: list[date]) -> Iterator[tuple[Any, ...]]:
    """Archive rows: the rollups never change, only the archive grows."""
    rnd = random.Random(start)
    first = datetime.combine(days[0], datetime.min.time(), UTC)
    span = len(days) * 86400
    received = datetime.now(UTC)
    for n in range(start, start + count):
        at = first + timedelta(seconds=rnd.randrange(span))
        rep, contact = rep_id(rnd.randrange(REPS)), f"c{rnd.randrange(20_000)}"
        payload = orjson.dumps(
            {
                "event_id": f"ev-{n}",
                "type": "call.completed",
                "occurred_at": at.isoformat(),
                "rep_id": rep,
                "contact_id": contact,
                "direction": "outbound",
                "outcome": "no_answer",
            }
        ).decode()
        yield (tenant, f"ev-{n}", "call.completed", at, received, "api", rep, contact, payload)


async def seed_billing(conn: asyncpg.Connection, tenant: str, today: date, contacts: int) -> int:
    """The workload's subscription events folded by the subscriptions fold's own derivation and
    statements (one batch), as the aggregator would leave `mrr_movements` and `subscription_accounts`."""
    end = datetime.combine(today, datetime.min.time(), UTC)
    rows = [
        SubscriptionEvent(tenant, e["account_id"], e["event_id"], datetime.fromisoformat(e["occurred_at"]),
                          e["type"], "", Decimal(e["mrr"]), e["contact_id"], None)
        for e in workload.subscriptions(
            ACCOUNTS, start=end - timedelta(days=BILLING_DAYS), end=end, contacts=contacts
        )
    ]  # fmt: skip
    accounts, moves = derive_all(rows)
    async with conn.transaction():
        await insert_rows(conn, INSERT_EVENTS, rows)
        await insert_rows(conn, SAVE_MOVEMENTS, moves)
        await insert_rows(conn, SAVE_ACCOUNTS, accounts)
    return len(rows)


def rep_rows(tenant: str, today: date, rnd: random.Random) -> list[tuple[Any, ...]]:
    """The 200 active reps, each with a monthly cost, and `DEPARTED` reps who left this year."""
    rows: list[tuple[Any, ...]] = [
        (tenant, rep_id(i), f"team-{i % TEAMS}", today - timedelta(days=rnd.randint(30, 1000)),
         TIMEZONES[i % len(TIMEZONES)], Decimal(50_000), True, None, Decimal(rnd.randint(6, 12) * 1000))
        for i in range(REPS)
    ]  # fmt: skip
    for i in range(REPS, REPS + DEPARTED):
        left = today - timedelta(days=rnd.randint(10, DAYS))
        rows.append((tenant, rep_id(i), f"team-{i % TEAMS}", left - timedelta(days=rnd.randint(60, 700)),
                     "UTC", Decimal(50_000), False, left, Decimal(8000)))  # fmt: skip
    return rows


async def seed(dsn: str, tenant: str, events: int) -> dict[str, int]:
    rnd = random.Random(2026)
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=d) for d in range(DAYS, 0, -1)]
    conn = await asyncpg.connect(dsn)
    try:
        for table in SEEDED_TABLES:
            await conn.execute(f"DELETE FROM {table} WHERE tenant = $1", tenant)
        await conn.executemany(
            "INSERT INTO reps (tenant, rep_id, team, hired_at, timezone, quota_monthly, active, left_at, "
            "monthly_cost) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            rep_rows(tenant, today, rnd),
        )
        await conn.copy_records_to_table(
            "rollup_rep_daily",
            records=rollup_rows(tenant, days, rnd),
            columns=["tenant", "rep_id", "day", *REP_COUNTERS],
        )
        await conn.copy_records_to_table(
            "leads",
            records=lead_rows(tenant, days, rnd),
            columns=[
                "tenant", "contact_id", "created_at", "created_event_id", "channel", "first_touch_at",
                "speed_s", "mql_at", "sql_at",
            ],
        )  # fmt: skip
        leads = LEADS_PER_DAY * DAYS
        await conn.copy_records_to_table(
            "deal_facts",
            records=deal_rows(tenant, days, rnd, leads),
            columns=[
                "tenant",
                "event_id",
                "type",
                "deal_id",
                "contact_id",
                "rep_id",
                "channel",
                "amount",
                "occurred_at",
            ],
        )
        billing = await seed_billing(conn, tenant, today, leads)
        months = sorted({d.replace(day=1) for d in days})
        await conn.executemany(
            "INSERT INTO channel_spend (tenant, channel, month, amount) VALUES ($1, $2, $3, $4)",
            [(tenant, c, m, Decimal(rnd.randint(1, 30) * 1000)) for c in CHANNELS for m in months],
        )
        await conn.execute(
            "INSERT INTO tenant_watermarks (tenant, as_of, events_folded) VALUES ($1, $2, 0)",
            tenant,
            datetime.now(UTC),
        )
        await grow_archive(conn, tenant, 0, events, days)
        await conn.execute(f"VACUUM ANALYZE {', '.join(SEEDED_TABLES)}")
    finally:
        await conn.close()
    return {
        "rollup_rows": REPS * DAYS,
        "leads": leads,
        "deal_facts": DEALS_PER_DAY * DAYS,
        "subscription_events": billing,
    }


async def grow_archive(
    conn: asyncpg.Connection, tenant: str, start: int, count: int, days: list[date]
) -> None:
    chunk = 200_000
    # The archive is partitioned by month: the aggregator makes a month's partition before its first
    # event, so the seed does too.
    months = {archive_partitions.month_of(datetime.combine(d, datetime.min.time(), UTC)) for d in days}
    async with conn.transaction():
        await archive_partitions.ensure(conn, months)
    for offset in range(start, start + count, chunk):
        await conn.copy_records_to_table(
            "events",
            records=event_rows(tenant, offset, min(chunk, start + count - offset), days),
            columns=[
                "tenant",
                "event_id",
                "type",
                "occurred_at",
                "received_at",
                "source",
                "rep_id",
                "contact_id",
                "payload",
            ],
        )
    await conn.execute(
        "UPDATE tenant_watermarks SET events_folded = $2 WHERE tenant = $1", tenant, start + count
    )


async def grow(dsn: str, tenant: str, start: int, count: int) -> None:
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=d) for d in range(DAYS, 0, -1)]
    conn = await asyncpg.connect(dsn)
    try:
        await grow_archive(conn, tenant, start, count, days)
        await conn.execute("VACUUM ANALYZE events")
    finally:
        await conn.close()


def requests(host: str, api_key: str) -> dict[str, list[bytes]]:
    headers = {"Authorization": f"Bearer {api_key}"}

    def get(path: str) -> bytes:
        return loadgen.build_request(host, path, headers, method="GET")

    reps = [rep_id(i) for i in range(REPS)]
    return {
        "coaching_team": [get("/v1/coaching/team"), get("/v1/coaching/team?scope=team")],
        "coaching_rep": [get(f"/v1/coaching/reps/{r}") for r in reps],
        "demand_channels": [get("/v1/demand/channels"), get("/v1/demand/channels?window=90d")],
        "rep_metrics": [get(f"/v1/reps/{r}/metrics") for r in reps],
        "economics_summary": [get("/v1/economics/summary"), get("/v1/economics/summary?window=90d")],
        "planning_fit": [get("/v1/planning/fit"), get("/v1/planning/fit?window=180d")],
        "planning_capacity": [
            get("/v1/planning/capacity?target_new_mrr=50000"),
            get("/v1/planning/capacity?target_bookings=300000&months=12"),
        ],
    }


def service_times(
    api_url: str, api_key: str, dsn: str, api_pid: int | None = None, count: int = 200
) -> dict[str, dict[str, float]]:
    """Per read: median and mean latency of one client, as served (`cached`) and with every cached
    answer stale (`fresh`); with `api_pid`, the api's CPU ms per request as well."""
    host, port = reads.address(api_url)
    api = psutil.Process(api_pid) if api_pid else None
    out: dict[str, dict[str, float]] = {}
    for name, batch in requests(f"{host}:{port}", api_key).items():
        row: dict[str, float] = {}
        for kind, commit_dsn in (("cached", None), ("fresh", dsn)):
            asyncio.run(reads.sequential(host, port, batch, 10, commit_dsn))  # warm up
            cpu = sum(api.cpu_times()[:2]) if api else 0.0
            latencies = reads.one_client(name, host, port, batch, count, commit_dsn)
            row[f"{kind}_p50_ms"] = round(statistics.median(latencies), 2)
            row[f"{kind}_mean_ms"] = round(statistics.fmean(latencies), 2)
            if api:
                row[f"{kind}_api_cpu_ms"] = round(1000 * (sum(api.cpu_times()[:2]) - cpu) / count, 2)
        out[name] = row
    return out


def run(
    api_url: str,
    api_key: str,
    dsn: str,
    tenant: str,
    *,
    events: int = 100_000,
    concurrency: int = 8,
    seconds: float = 10.0,
    log: Callable[[str], None] = reads.stderr,
    api_pid: int | None = None,
) -> dict[str, Any]:
    """Seed `tenant` (its data is replaced), measure, grow the archive tenfold, measure again."""
    t0 = time.monotonic()
    sizes = asyncio.run(seed(dsn, tenant, events))
    log(f"api reads: seeded {sizes} and {events:,} archived events in {time.monotonic() - t0:.0f} s")
    load = [round(x, 2) for x in os.getloadavg()]
    host, port = reads.address(api_url)
    reqs = requests(f"{host}:{port}", api_key)
    before = reads.measure(api_url, reqs, concurrency, seconds)
    service = service_times(api_url, api_key, dsn, api_pid)
    for name, row in service.items():
        log(f"  {name}: one client, p50 {row['cached_p50_ms']} ms as served, "
            f"{row['fresh_p50_ms']} ms computed afresh")  # fmt: skip
    t0 = time.monotonic()
    asyncio.run(grow(dsn, tenant, events, 9 * events))
    log(f"api reads: archive grown to {10 * events:,} events in {time.monotonic() - t0:.0f} s")
    after = reads.measure(api_url, reqs, concurrency, seconds)
    for name in before:
        log(f"  {name}: p50 {before[name]['p50_ms']} -> {after[name]['p50_ms']} ms, "
            f"p99 {before[name]['p99_ms']} -> {after[name]['p99_ms']} ms")  # fmt: skip
    with reads.Committer(dsn, WRITES_EVERY_S) as writes:
        during_writes = reads.measure(api_url, reqs, concurrency, seconds)
    for name, row in during_writes.items():
        log(f"  {name}: p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms with a commit every "
            f"{WRITES_EVERY_S * 1000:.0f} ms ({writes.commits} commits)")  # fmt: skip
    return {
        "reps": REPS,
        "days": DAYS,
        **sizes,
        "concurrency": concurrency,
        "events_before": events,
        "events_after": 10 * events,
        "load_average": load,
        "before": before,
        "after": after,
        "service_ms": service,
        "during_writes": {"commit_every_ms": round(WRITES_EVERY_S * 1000), **during_writes},
        "api_p99_ms_during_writes": {name: row["p99_ms"] for name, row in during_writes.items()},
        "api_p99_ms": {name: after[name]["p99_ms"] for name in after},
        "p99_growth": {
            name: round(after[name]["p99_ms"] / max(before[name]["p99_ms"], 0.01), 2) for name in after
        },
    }


async def ensure_tenant(database_url: str, tenant: str) -> str:
    """A key with every read scope for `tenant`, created (tenant included) when missing."""
    return await reads.ensure_tenant(database_url, tenant, SCOPES)


def main() -> None:
    parser = reads.arguments(
        __doc__,
        "bench-api",
        key_help="a key of --tenant with metrics, coaching and demand read scopes",
        seconds_help="per endpoint and phase",
    )
    parser.add_argument(
        "--events", type=int, default=100_000, help="archived events before the tenfold growth"
    )
    parser.add_argument("--api-pid", type=int, help="the api's process id: report its CPU per request")
    args = parser.parse_args()
    key = args.api_key or asyncio.run(ensure_tenant(args.database_url, args.tenant))
    results = run(
        args.api_url,
        key,
        asyncpg_dsn(args.database_url),
        args.tenant,
        events=args.events,
        concurrency=args.concurrency,
        seconds=args.seconds,
        api_pid=args.api_pid,
    )
    reads.emit(results, args.out)


if __name__ == "__main__":
    main()
