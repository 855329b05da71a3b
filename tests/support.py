"""Helpers the end-to-end tests share: waiting until the aggregator folded what was sent."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

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
