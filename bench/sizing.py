"""Bytes per stored row, measured: the figures the sizing model in bench/README.md projects from.

Events go through the aggregator's own batch transaction (`commit_batch`: dedupe keys, archive,
every fold, rollups) into a migrated database, in three phases whose growth is measured apart,

1. activity: the benchmark workload's calls, emails, meetings and leads, no transcript;
2. transcribed calls: each `call.completed` carries a 30-minute transcript of the demo's dialogue
   (devstack/demo/transcripts.py, calls written one after the other until 30 minutes are spoken);
3. deals: each created, moved through three or four stages, then won or lost;

then the transcripts' text is erased as transcript retention erases it (`pg_column_size` of the
payloads before and after: what an erased call keeps). After each phase the tables are vacuumed and
measured with `pg_total_relation_size` over every partition (heap, TOAST and indexes); bytes per row
is the growth of a table over the rows it gained.
Folded tables are measured over all phases (total bytes over rows: rollup rows are updated in place
and keep their dead space until reused). `project` turns the figures, the assumptions below and the
rates of the latest `make bench` (bench/results.json) into the deployment of 10,000 tenants x 200 reps.

    .venv/bin/python -m bench.sizing --events 20000
    SALESLOOP_DATABASE_URL=postgresql://... .venv/bin/python -m bench.sizing   # an existing database

Without SALESLOOP_DATABASE_URL an embedded PostgreSQL runs in a temporary directory, removed after.
With it, use a database nothing else writes to meanwhile (growth is measured per table); the tenant
`sizing-<time>` stays there: `salesloop tenants delete sizing-<time> --yes` removes it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from pydantic import SecretStr

from bench import workload
from devstack.demo.transcripts import NORMAL, write
from devstack.embedded import EmbeddedPostgres
from services.aggregator.commit import commit_batch
from services.aggregator.conversation import analyse
from services.aggregator.erasure import analysis_json
from services.aggregator.store import Store, prepare_connection
from services.core.db import asyncpg_dsn, create_engine
from services.core.events import SCHEMA_HEADER
from services.core.migrate import upgrade_head
from services.core.privacy_sql import erase_transcripts, take_batch_lock
from services.core.settings import Settings
from services.core.tenancy import create_tenant
from services.core.wire import Event, decode

TABLES = (
    "events",
    "event_keys",
    "rollup_rep_daily",
    "rollup_channel_daily",
    "conversation_rollups",
    "call_analyses",
    "deal_changes",
    "deal_stage_stays",
    "pipeline_deals",
    "contact_activity",
    "crm_entities",
    "leads",
)
CALL_S = 1800.0
STAGES = ("discovery", "qualification", "proposal", "negotiation")
BATCH = 500
START = datetime(2026, 9, 1, tzinfo=UTC)

SIZES = """
SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::bigint AS total,
       coalesce(sum(pg_indexes_size(relid)), 0)::bigint AS indexes
FROM (SELECT relid FROM pg_partition_tree($1::regclass) UNION SELECT $1::regclass) AS parts
"""

# The archived transcripts: segments, words, JSON text and the stored (compressed) payload, per call.
TRANSCRIPT_STATS = """
SELECT avg(jsonb_array_length(payload->'transcript')) AS segments,
       avg((SELECT sum(array_length(regexp_split_to_array(s->>'text', '\\s+'), 1))
            FROM jsonb_array_elements(payload->'transcript') AS s)) AS words,
       avg(octet_length(payload::text)) AS json_bytes, avg(pg_column_size(payload)) AS stored_bytes
FROM events WHERE tenant = $1 AND payload ? 'transcript'
"""
# Stored payload bytes of the activity events, and of the transcribed calls once retention erased their
# text (the segments keep speaker and times): the difference is what an erased call keeps beyond a plain
# event. The rows are rewritten, so their growth would count the old versions too.
PAYLOADS = """
SELECT avg(pg_column_size(payload)) FILTER (WHERE event_id LIKE 'ev-%') AS plain_stored_bytes,
       avg(pg_column_size(payload)) FILTER (WHERE event_id LIKE 'call-%') AS erased_stored_bytes
FROM events WHERE tenant = $1
"""


async def erase(pool: asyncpg.Pool, tenant: str) -> int:
    """What SALESLOOP_TRANSCRIPT_RETENTION_DAYS does to the tenant's transcripts (retention.py's pass,
    for this tenant only: an existing database's other tenants are left alone)."""
    async with pool.acquire() as conn, conn.transaction():
        await take_batch_lock(conn, exclusive=False)
        ids = [
            r[0]
            for r in await conn.fetch(
                "SELECT event_id FROM events WHERE tenant = $1 AND payload ? 'transcript'", tenant
            )
        ]
        return await erase_transcripts(
            conn, tenant, ids, datetime.now(UTC), lambda t: analysis_json(analyse(t))
        )


def transcript(rng: random.Random) -> list[dict[str, Any]]:
    """A 30-minute call as the demo writes calls: its calls' dialogue, one call's lines after another
    (each about seven minutes), until 30 minutes are spoken; about 4,300 words in 400 segments."""
    out: list[dict[str, Any]] = []
    offset = 0.0
    while offset < CALL_S:
        segments = write(NORMAL, rng, rep="Ana Lee", buyer="Ben Cole", target_s=600, meeting=False)
        for s in segments:
            if offset + s.end_s > CALL_S:
                return out
            w = s.wire()
            out.append(w | {"start_s": round(offset + s.start_s, 2), "end_s": round(offset + s.end_s, 2)})
        offset += segments[-1].end_s + 1.0
    return out


def activity(n: int, reps: int) -> Iterator[dict[str, Any]]:
    """The benchmark workload without its deal events (the deals phase has those, with deal ids)."""
    for e in workload.events(n, reps=reps, days=30, seed=11):
        if not e["type"].startswith("deal."):
            yield e


def transcribed_calls(n: int, reps: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(12)
    for i in range(n):
        at = START + timedelta(seconds=30 * 86400 * i / max(n, 1))
        yield {
            "event_id": f"call-{i}",
            "type": "call.completed",
            "occurred_at": at.isoformat(timespec="milliseconds"),
            "rep_id": f"rep-{rng.randrange(reps):04d}",
            "contact_id": f"c-{rng.randrange(50_000)}",
            "channel": rng.choice(workload.CHANNELS),
            "direction": "outbound",
            "outcome": "connected",
            "duration_s": int(CALL_S),
            "transcript": transcript(rng),
        }


def deals(n: int, reps: int) -> Iterator[dict[str, Any]]:
    """Each deal: created with an amount, through 3 or 4 stages a few days apart, won or lost."""
    rng = random.Random(13)
    for i in range(n):
        at = START + timedelta(seconds=30 * 86400 * i / max(n, 1))
        base = {"deal_id": f"d-{i}", "rep_id": f"rep-{rng.randrange(reps):04d}", "contact_id": f"c-{i}"}
        yield base | {
            "event_id": f"deal-{i}-created",
            "type": "deal.created",
            "occurred_at": at.isoformat(timespec="milliseconds"),
            "channel": rng.choice(workload.CHANNELS),
            "amount": f"{rng.randrange(1000, 90000)}.00",
        }
        for j, stage in enumerate(STAGES[: rng.choice((3, 4))]):
            at += timedelta(days=rng.uniform(1, 6))
            t = at.isoformat(timespec="milliseconds")
            yield base | {
                "event_id": f"deal-{i}-s{j}",
                "type": "deal.stage_changed",
                "occurred_at": t,
                "stage": stage,
            }
        at += timedelta(days=rng.uniform(1, 6))
        kind = rng.choice(("deal.won", "deal.lost"))
        yield base | {
            "event_id": f"deal-{i}-close",
            "type": kind,
            "occurred_at": at.isoformat(timespec="milliseconds"),
        }


def decoded(tenant: str, items: Iterator[dict[str, Any]]) -> Iterator[Event]:
    received = datetime.now(UTC).isoformat()
    for e in items:
        value = orjson.dumps({**e, "tenant": tenant, "source": "api", "received_at": received})
        event = decode(value, [SCHEMA_HEADER])
        if not isinstance(event, Event):
            raise ValueError(f"{e['event_id']}: {event}")
        yield event


async def fold(pool: asyncpg.Pool, events: Iterator[Event]) -> int:
    """Through the aggregator's batch transaction, `BATCH` events at a time; returns how many."""
    store, batch, count = Store(pool, "sizing", "sizing"), [], 0
    for e in events:
        batch.append(e)
        if len(batch) == BATCH:
            count += len((await commit_batch(store, batch, {})).folded)
            batch = []
    if batch:
        count += len((await commit_batch(store, batch, {})).folded)
    return count


async def measure(pool: asyncpg.Pool) -> dict[str, dict[str, int]]:
    """Rows, total bytes and index bytes of each table (every partition), after a VACUUM."""
    out: dict[str, dict[str, int]] = {}
    async with pool.acquire() as conn:
        for table in TABLES:
            await conn.execute(f"VACUUM (ANALYZE) {table}")
            sizes = await conn.fetchrow(SIZES, table)
            rows = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
            out[table] = {"rows": rows, "bytes": int(sizes["total"]), "index_bytes": int(sizes["indexes"])}
    return out


def growth(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
) -> dict[str, dict[str, float]]:
    """Per table the rows gained and the bytes per gained row (total and indexes)."""
    out: dict[str, dict[str, float]] = {}
    for table, a in after.items():
        b = before[table]
        rows = a["rows"] - b["rows"]
        if rows > 0:
            out[table] = {
                "rows": rows,
                "bytes_per_row": round((a["bytes"] - b["bytes"]) / rows, 1),
                "index_bytes_per_row": round((a["index_bytes"] - b["index_bytes"]) / rows, 1),
            }
    return out


def prepare(database_url: str) -> str:
    """Migrates the database and creates a tenant of its own (UTC); returns its slug."""
    settings = Settings(env="test", database_url=SecretStr(database_url))
    upgrade_head(settings)
    tenant = f"sizing-{int(time.time())}"

    async def create() -> None:
        engine = create_engine(settings, "salesloop-sizing", pool_size=1)
        try:
            await create_tenant(engine, tenant, "USD", "UTC")
        finally:
            await engine.dispose()

    asyncio.run(create())
    return tenant


async def run_phases(
    database_url: str, tenant: str, n: int, calls: int, deal_count: int, reps: int
) -> dict[str, Any]:
    pool = await asyncpg.create_pool(
        asyncpg_dsn(database_url), min_size=1, max_size=2, init=prepare_connection
    )
    phases: dict[str, Any] = {}
    try:
        before = await measure(pool)
        for name, items in (
            ("activity", activity(n, reps)),
            ("transcribed_calls", transcribed_calls(calls, reps)),
            ("deals", deals(deal_count, reps)),
        ):
            started = time.perf_counter()
            folded = await fold(pool, decoded(tenant, items))
            after = await measure(pool)
            phases[name] = {"events": folded, "seconds": round(time.perf_counter() - started, 1)}
            phases[name]["tables"] = growth(before, after)
            before = after
        stats = dict(await pool.fetchrow(TRANSCRIPT_STATS, tenant))
        stats["erased"] = await erase(pool, tenant)
        stats |= dict(await pool.fetchrow(PAYLOADS, tenant))
    finally:
        await pool.close()
    transcripts = {k: round(float(v or 0)) for k, v in stats.items()}
    return {"tenant": tenant, "phases": phases, "totals": before, "transcripts": transcripts}


# The deployment the projection is for, and what it assumes (bench/README.md, "Sizing model").
TENANTS, REPS, CHANNELS = 10_000, 200, 8
EVENTS_PER_S = 23_000  # on average over the day
PEAK = 3.0  # busiest hour / average: the working hours of a few time zones
HEADROOM = 0.7  # processes run at most at this share of the rate `make bench` measured
TRANSCRIPT_SHARE = 0.005  # 30-minute transcribed calls: about 5 per rep and day
DEAL_SHARE = 0.004  # deal events: about 0.7 new deals per rep and day, 5.5 events each
RETENTION_MONTHS = 25  # SALESLOOP_ARCHIVE_RETENTION_DAYS=730: 24 whole months and the current one
TRANSCRIPT_MONTHS = 13  # SALESLOOP_TRANSCRIPT_RETENTION_DAYS=365 erases the text after that
PRIMARY_TB = 10.0  # what one primary holds comfortably (and restores in hours)
MONTH_S = 86_400 * 30.44
RESULTS = Path(__file__).resolve().parent / "results.json"
DEAL_TABLES = ("deal_changes", "deal_stage_stays", "pipeline_deals")


def per_row(measured: dict[str, Any]) -> dict[str, float]:
    """Bytes per archived event of each kind (phase growth), per row of each folded table (totals),
    and the deal history's rows per deal event."""
    phases = measured["phases"]
    out = {f"archive_{k}": phases[p]["tables"]["events"]["bytes_per_row"] for k, p in PHASE_KINDS.items()}
    out |= {t: round(v["bytes"] / v["rows"], 1) for t, v in measured["totals"].items() if v["rows"]}
    del out["events"]  # the phases' mix: the three kinds above are what the projection weighs
    kept = measured["transcripts"]["erased_stored_bytes"] - measured["transcripts"]["plain_stored_bytes"]
    out["archive_transcript_erased"] = out["archive_plain"] + kept
    deals = phases["deals"]
    out |= {
        f"{t}_per_deal_event": round(deals["tables"][t]["rows"] / deals["events"], 3) for t in DEAL_TABLES
    }
    return out


PHASE_KINDS = {"plain": "activity", "transcript": "transcribed_calls", "deal": "deals"}


def rates(results: Path = RESULTS) -> dict[str, float]:
    """Events/s per process from the latest `make bench` run, and Postgres CPU per folded event."""
    r = json.loads(results.read_text())
    agg = r["aggregator"][0]
    return {
        "aggregator": float(r["aggregator_events_per_s"]),
        "postgres_cpu_s_per_1k": 1000 * agg["cpu_seconds"]["postgres"] / agg["distinct"],
        "ingest_single": float(r["ingest_single_req_per_s"]),
        "ingest_batch": float(r["ingest_batch_events_per_s"]),
    }


def project(f: dict[str, float], r: dict[str, float]) -> dict[str, float]:
    """The 10,000-tenant deployment: processes, partitions, terabytes per month and at retention."""
    shares = {"plain": 1 - TRANSCRIPT_SHARE - DEAL_SHARE, "transcript": TRANSCRIPT_SHARE, "deal": DEAL_SHARE}
    per_event = sum(share * f[f"archive_{k}"] for k, share in shares.items()) + f["event_keys"]
    events = EVENTS_PER_S * MONTH_S
    archive = per_event * events
    erased = TRANSCRIPT_SHARE * events * (f["archive_transcript"] - f["archive_transcript_erased"])
    rollup_day = (
        REPS * (f["rollup_rep_daily"] + f["conversation_rollups"]) + CHANNELS * f["rollup_channel_daily"]
    )
    folded = {
        "rollups": TENANTS * rollup_day * MONTH_S / 86_400,
        "call_analyses": TRANSCRIPT_SHARE * events * f["call_analyses"],
        "deal_history": DEAL_SHARE * events * sum(f[f"{t}_per_deal_event"] * f[t] for t in DEAL_TABLES),
    }
    at_retention = RETENTION_MONTHS * archive - (RETENTION_MONTHS - TRANSCRIPT_MONTHS) * erased
    two_years = at_retention + 24 * sum(folded.values())
    peak = EVENTS_PER_S * PEAK
    aggregators_peak = peak / (r["aggregator"] * HEADROOM)
    out = {
        "events_per_month_billions": events / 1e9,
        "archive_bytes_per_event": per_event,
        "archive_tb_per_month": archive / 1e12,
        "archive_tb_at_retention": at_retention / 1e12,
        **{f"{k}_tb_per_month": v / 1e12 for k, v in folded.items()},
        "tb_after_two_years": two_years / 1e12,
        "primaries_after_two_years": math.ceil(two_years / 1e12 / PRIMARY_TB),
        "aggregators_average": EVENTS_PER_S / (r["aggregator"] * HEADROOM),
        "aggregators_peak": aggregators_peak,
        "kafka_partitions": 12 * math.ceil(2 * aggregators_peak / 12),
        "postgres_fold_cores_peak": peak * r["postgres_cpu_s_per_1k"] / 1000,
        "ingest_single_events_peak": peak / (r["ingest_single"] * HEADROOM),
        "ingest_batches_peak": peak / (r["ingest_batch"] * HEADROOM),
    }
    return {k: round(v, 2) for k, v in out.items()}


def render(measured: dict[str, Any], f: dict[str, float], p: dict[str, float]) -> str:
    lines = [
        "| phase | events | s | table | rows gained | bytes/row | of it indexes |",
        "|---|" + "---:|" * 6,
    ]
    for name, phase in measured["phases"].items():
        head = f"| {name} | {phase['events']:,} | {phase['seconds']} "
        for table, t in phase["tables"].items():
            rows, b, ix = t["rows"], t["bytes_per_row"], t["index_bytes_per_row"]
            lines.append(head + f"| {table} | {rows:,} | {b:,.0f} | {ix:,.0f} |")
    lines += ["", f"transcripts: {measured['transcripts']}", "", "| bytes per row | |", "|---|---:|"]
    lines += [f"| {k} | {v:,.2f} |" for k, v in f.items()]
    lines += ["", f"| {TENANTS:,} tenants x {REPS} reps, {EVENTS_PER_S:,} events/s | |", "|---|---:|"]
    lines += [f"| {k} | {v:,.2f} |" for k, v in p.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000, help="activity events (deal events dropped)")
    parser.add_argument("--calls", type=int, default=200, help="calls carrying a 30-minute transcript")
    parser.add_argument("--deals", type=int, default=1_000)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--out", type=Path, help="also write the measurements and projection as JSON")
    args = parser.parse_args()
    url = os.environ.get("SALESLOOP_DATABASE_URL")
    work = Path(tempfile.mkdtemp(prefix="salesloop-sizing-"))
    pg = None if url else EmbeddedPostgres(work / "pg")
    try:
        if pg is not None:
            pg.start()
            pg.create_database("sizing")
            url = pg.uri("sizing")
        assert url is not None
        measured = asyncio.run(run_phases(url, prepare(url), args.events, args.calls, args.deals, args.reps))
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    figures = per_row(measured)
    projection = project(figures, rates())
    print(render(measured, figures, projection))
    if args.out:
        out = {"measured": measured, "bytes_per_row": figures, "projection": projection}
        args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
