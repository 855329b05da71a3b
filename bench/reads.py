"""What the read-latency benchmarks (bench/api_reads.py, bench/pipeline_reads.py) share: the
concurrency-N load over each named read, one client's requests one at a time (optionally with a
commit before each, which makes every cached answer stale), a connection committing in the
background as a busy aggregator does, and the tenant and key they read with."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from bench import loadgen
from services.core.db import sqlalchemy_url

# A busy aggregator commits a batch every 100-200 ms (batch_wait_ms is 200).
WRITES_EVERY_S = 0.1


def address(api_url: str) -> tuple[str, int]:
    url = urlsplit(api_url)
    return url.hostname or "127.0.0.1", url.port or 80


def measure(
    api_url: str, reqs: Mapping[str, list[bytes]], concurrency: int, seconds: float
) -> dict[str, dict[str, Any]]:
    """Per read: loadgen's summary of `seconds` of its requests over `concurrency` connections (floats
    rounded to 0.01); raises unless every answer was 200."""
    host, port = address(api_url)
    out = {}
    for name, batch in reqs.items():
        result = asyncio.run(loadgen.run(host, port, batch, concurrency, seconds)).summary()
        statuses = result["statuses"]
        assert isinstance(statuses, dict)
        if set(statuses) != {200}:
            raise RuntimeError(f"{name}: answers other than 200: {statuses}")
        out[name] = {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}
    return out


async def sequential(
    host: str, port: int, reqs: list[bytes], count: int, dsn: str | None
) -> tuple[list[float], set[int]]:
    """Latencies of `count` requests sent one at a time; with `dsn`, a commit before each."""
    reader, writer = await asyncio.open_connection(host, port)
    conn = await asyncpg.connect(dsn) if dsn else None
    latencies, statuses = [], set()
    try:
        for i in range(count):
            if conn is not None:
                await conn.execute("SELECT txid_current()")  # a write transaction: a new snapshot
            start = time.perf_counter()
            writer.write(reqs[i % len(reqs)])
            status, _ = await loadgen.read_response(reader)
            latencies.append((time.perf_counter() - start) * 1000)
            statuses.add(status)
    finally:
        writer.close()
        if conn is not None:
            await conn.close()
    return latencies, statuses


def one_client(
    name: str, host: str, port: int, reqs: list[bytes], count: int, dsn: str | None
) -> list[float]:
    """`sequential`'s latencies; raises unless every answer was 200."""
    latencies, statuses = asyncio.run(sequential(host, port, reqs, count, dsn))
    if statuses != {200}:
        raise RuntimeError(f"{name}: answers other than 200: {statuses}")
    return latencies


class Committer:
    """A write transaction every `interval_s` in a thread of its own, as a busy aggregator commits its
    batches: each one makes every cached answer stale, so reads during it are partly computed afresh."""

    def __init__(self, dsn: str, interval_s: float) -> None:
        self.dsn, self.interval_s = dsn, interval_s
        self.commits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while not self._stop.wait(self.interval_s):
                await conn.execute("SELECT txid_current()")
                self.commits += 1
        finally:
            await conn.close()

    def __enter__(self) -> Committer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def ensure_tenant(database_url: str, tenant: str, scopes: Sequence[str]) -> str:
    """A key with `scopes` for `tenant`, created (tenant included) when missing."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from services.core.tenancy import create_key, create_tenant, get_tenant

    engine = create_async_engine(sqlalchemy_url(database_url))
    try:
        if await get_tenant(engine, tenant) is None:
            await create_tenant(engine, tenant, "USD", "UTC")
        return await create_key(engine, tenant, list(scopes))
    finally:
        await engine.dispose()


def stderr(message: str) -> None:
    print(message, file=sys.stderr)


def emit(results: dict[str, Any], out: str | None) -> None:
    """Print the results as JSON, and write them to `out` when given."""
    text = json.dumps(results, indent=2)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
    print(text)


def arguments(doc: str | None, tenant: str, key_help: str, seconds_help: str) -> argparse.ArgumentParser:
    """The command line both benchmarks take: the api and its database, the tenant and its key, the
    load, and where to write the results."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--database-url", required=True, help="postgresql:// URL of the api's database")
    parser.add_argument("--tenant", default=tenant)
    parser.add_argument("--api-key", help=key_help)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0, help=seconds_help)
    parser.add_argument("--out", help="write the results here as JSON")
    return parser
