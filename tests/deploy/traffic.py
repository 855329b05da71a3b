"""Traffic through the real services: events posted to ingest, reps put through the API, folds awaited."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx

from tests.factories import TenantCtx
from tests.support import events_folded as events_folded  # re-exported for the deploy tests
from tests.support import wait_folded as wait_folded

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
