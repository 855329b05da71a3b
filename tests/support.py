"""Helpers the end-to-end tests share: aggregator processes, and waiting until what was sent is folded."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.embedded import ServiceProcess, free_port
from services.core.models import TenantWatermark


async def events_folded(engine: AsyncEngine, tenant: str) -> int:
    """How many distinct events of `tenant` the aggregator has folded (its watermark's count)."""
    query = select(TenantWatermark.events_folded).where(TenantWatermark.tenant == tenant)
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar() or 0)


async def wait_folded(engine: AsyncEngine, tenant: str, expected: int, timeout_s: float = 60.0) -> None:
    """Poll until `expected` distinct events are folded; more than that means one counted twice."""
    deadline = time.monotonic() + timeout_s
    while (n := await events_folded(engine, tenant)) < expected:
        assert time.monotonic() < deadline, f"only {n} of {expected} events folded after {timeout_s:.0f}s"
        await asyncio.sleep(0.1)
    assert n == expected, f"{n} events folded, {expected} distinct were sent: something was counted twice"


class AggregatorProcess:
    """One aggregator process of a consumer group; each `start` gives it a new process and metrics port.

    `ready` is the endpoint `start` waits for: /healthz (serving) or /readyz (consumer and Postgres up);
    with `wait=False` it does not wait at all.
    """

    def __init__(self, name: str, env: dict[str, str], logs: Path, ready: str = "/healthz") -> None:
        self.name, self.env, self.logs, self.ready = name, env, logs, ready
        self.proc: ServiceProcess | None = None
        self.port = 0

    def start(self, wait: bool = True) -> None:
        self.port = free_port()
        self.proc = ServiceProcess(
            self.name,
            ["aggregator", "--metrics-port", str(self.port)],
            self.env,
            f"http://127.0.0.1:{self.port}{self.ready}",
            self.logs / f"{self.name}-{self.port}.log",
        )
        self.proc.start(wait=wait)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.stop()  # closes the log

    def stop(self, timeout_s: float = 40.0) -> int | None:
        """SIGTERM (SIGKILL after `timeout_s`); the exit code."""
        if self.proc is None:
            return None
        self.proc.stop(timeout_s=timeout_s)
        return self.proc.proc.returncode if self.proc.proc else None

    async def metric(self, name: str) -> float:
        """`salesloop_aggregator_<name>` from this process's /metrics (0 while it is not serving yet)."""
        try:
            async with httpx.AsyncClient() as client:
                body = (await client.get(f"http://127.0.0.1:{self.port}/metrics", timeout=2)).text
        except httpx.HTTPError:
            return 0.0
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == f"salesloop_aggregator_{name}":
                    return float(sample.value)
        return 0.0
