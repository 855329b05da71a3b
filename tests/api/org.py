"""A sales organisation built the way a customer builds one: reps through the API, events through
the real ingest endpoint, folded by the real aggregator. The feedback API tests read it back."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.settings import DEV_SECRET_KEY
from services.core.tenancy import set_secret
from tests.conftest import Services
from tests.factories import TenantCtx, TenantFactory
from tests.support import wait_folded

BATCH = 500
AIRCALL_TOKEN = "aircall-token-for-tests"


@dataclass
class Org:
    tenant: TenantCtx
    ingest: httpx.AsyncClient
    api: httpx.AsyncClient
    engine: AsyncEngine
    pending: list[dict[str, Any]] = field(default_factory=list)
    folded: int = 0
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tenant.api_key}"}

    async def rep(self, rep_id: str, **body: Any) -> None:
        r = await self.api.put(f"/v1/reps/{rep_id}", json=body, headers=self.auth)
        assert r.status_code in (200, 201), r.text

    def event(self, type_: str, at: datetime, **fields: Any) -> None:
        """Queue a canonical event; `flush` sends the queue."""
        assert at.tzinfo is not None
        self.pending.append(
            {"event_id": f"e{next(self._ids)}", "type": type_, "occurred_at": at.isoformat(), **fields}
        )

    async def flush(self, also_folded: int = 0) -> None:
        """Post the queued events (batches of `BATCH`) and wait until the aggregator folded them and
        `also_folded` events delivered some other way (vendor webhooks)."""
        headers = {"Authorization": f"Bearer {self.tenant.ingest_key}"}
        for i in range(0, len(self.pending), BATCH):
            batch = self.pending[i : i + BATCH]
            r = await self.ingest.post(
                f"/v1/events/{self.tenant.slug}", json={"events": batch}, headers=headers
            )
            assert r.status_code == 202, r.text
        self.folded += len(self.pending) + also_folded
        self.pending.clear()
        await wait_folded(self.engine, self.tenant.slug, self.folded)

    async def aircall_calls(self, calls: list[tuple[int, int, datetime]]) -> None:
        """Post (call id, Aircall user id, end time) as `call.ended` webhooks and wait until folded."""
        await set_secret(self.engine, DEV_SECRET_KEY, self.tenant.slug, "aircall", AIRCALL_TOKEN)
        for call_id, user_id, at in calls:
            r = await self.ingest.post(
                f"/webhooks/aircall/{self.tenant.slug}",
                content=_call_ended(call_id, user_id, at),
                headers={"Content-Type": "application/json"},
            )
            assert r.status_code == 202, r.text
        await self.flush(also_folded=len(calls))

    async def request(self, method: str, url: str, key: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.tenant.api_key}"}
        return await self.api.request(method, url, headers=headers, **kwargs)

    async def get(self, url: str, **params: Any) -> dict[str, Any]:
        r = await self.request("GET", url, params=params)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


def _call_ended(call_id: int, user_id: int, at: datetime) -> bytes:
    ended = int(at.timestamp())
    call = {
        "id": call_id,
        "started_at": ended - 300,
        "answered_at": ended - 290,
        "ended_at": ended,
        "direction": "outbound",
        "user": {"id": user_id, "name": "Someone"},
    }
    envelope = {"resource": "call", "event": "call.ended", "timestamp": ended + 30, "token": AIRCALL_TOKEN}
    return orjson.dumps({**envelope, "data": call})


@asynccontextmanager
async def organisation(
    services: Services, tenants: TenantFactory, engine: AsyncEngine, *, timezone: str = "UTC"
) -> AsyncIterator[Org]:
    t = await tenants.create(timezone=timezone)
    async with (
        httpx.AsyncClient(base_url=services.ingest_url, timeout=30) as ingest,
        httpx.AsyncClient(base_url=services.api_url, timeout=30) as api,
    ):
        yield Org(t, ingest, api, engine)
