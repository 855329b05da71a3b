"""Traffic through the real services: events posted to ingest, reps put through the API, folds awaited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import TenantCtx

BATCH = 500


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def event(
    event_id: str, type_: str, at: datetime, rep_id: str | None = None, **fields: Any
) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": at.isoformat(), "rep_id": rep_id, **fields}


def call(event_id: str, at: datetime, rep_id: str, connected: bool) -> dict[str, Any]:
    return event(
        event_id,
        "call.completed",
        at,
        rep_id,
        direction="outbound",
        outcome="connected" if connected else "no_answer",
        duration_s=120 if connected else 0,
    )


async def post_events(ingest: httpx.AsyncClient, t: TenantCtx, events: Sequence[dict[str, Any]]) -> None:
    for i in range(0, len(events), BATCH):
        chunk = list(events[i : i + BATCH])
        r = await ingest.post(f"/v1/events/{t.slug}", json={"events": chunk}, headers=bearer(t.ingest_key))
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] == len(chunk)


async def put_rep(api: httpx.AsyncClient, t: TenantCtx, rep_id: str, **body: Any) -> None:
    r = await api.put(f"/v1/reps/{rep_id}", json=body, headers=bearer(t.api_key))
    assert r.status_code in (200, 201), r.text


async def events_folded(engine: AsyncEngine, tenant: str) -> int:
    async with engine.connect() as conn:
        n = (
            await conn.execute(
                text("SELECT events_folded FROM tenant_watermarks WHERE tenant = :t"), {"t": tenant}
            )
        ).scalar()
    return int(n or 0)


async def wait_folded(engine: AsyncEngine, tenant: str, expected: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (n := await events_folded(engine, tenant)) < expected:
        assert time.monotonic() < deadline, f"only {n} of {expected} events folded after {timeout_s:.0f}s"
        await asyncio.sleep(0.1)
    assert n == expected, f"{n} events folded, {expected} were sent"
