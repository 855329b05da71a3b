"""The API in-process against the session's Postgres, and rows the aggregator would have written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.app import create_app
from services.core.models import REP_COUNTERS, Rep, RepDaily, TenantWatermark
from tests.conftest import Stack


@asynccontextmanager
async def api_client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its real lifespan; no key cache, so revocations show at once."""
    app = create_app(stack.settings(auth_cache_ttl_s=0))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class RollupFactory:
    """Writes `reps`, `rollup_rep_daily` and `tenant_watermarks` rows directly."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def rep(
        self,
        tenant: str,
        rep_id: str,
        *,
        timezone: str = "UTC",
        team: str | None = None,
        quota_monthly: Decimal | None = None,
        active: bool = True,
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(Rep).values(
                    tenant=tenant,
                    rep_id=rep_id,
                    timezone=timezone,
                    team=team,
                    quota_monthly=quota_monthly,
                    active=active,
                )
            )

    async def day(self, tenant: str, rep_id: str, day: date, **counters: Any) -> None:
        """Adds `counters` to the rep's row of that rep-local day, as the fold does."""
        unknown = set(counters) - set(REP_COUNTERS)
        assert not unknown, f"not rollup columns: {unknown}"
        stmt = insert(RepDaily).values(tenant=tenant, rep_id=rep_id, day=day, **counters)
        if counters:
            stmt = stmt.on_conflict_do_update(
                index_elements=[RepDaily.tenant, RepDaily.rep_id, RepDaily.day],
                set_={c: getattr(RepDaily, c) + getattr(stmt.excluded, c) for c in counters},
            )
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    async def watermark(self, tenant: str, as_of: datetime, events_folded: int = 1) -> None:
        stmt = insert(TenantWatermark).values(tenant=tenant, as_of=as_of, events_folded=events_folded)
        stmt = stmt.on_conflict_do_update(
            index_elements=[TenantWatermark.tenant],
            set_={"as_of": stmt.excluded.as_of, "events_folded": stmt.excluded.events_folded},
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    async def alias_rows(self, tenant: str) -> set[tuple[str, str, str]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT kind, value, rep_id FROM rep_aliases WHERE tenant = :t"), {"t": tenant}
            )
            return {(r.kind, r.value, r.rep_id) for r in rows}
