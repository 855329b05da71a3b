"""The API in-process against the session's Postgres, and rows the aggregator would have written."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.app import create_app
from services.core.models import (
    REP_COUNTERS,
    CallAnalysis,
    ConversationRollup,
    Rep,
    RepDaily,
    TenantWatermark,
)
from services.core.models.conversations import CALL_METRICS, TACTICS
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


@dataclass(frozen=True)
class AnalysedCall:
    """A call's analysis as the conversation fold stores it. `metrics` by SPEC 5.7 name (missing:
    null); `moments` as `{tactic, speaker, start_s, text}`; no `rep_id` or `day` until the call itself
    is folded."""

    event_id: str
    rep_id: str | None
    day: date | None
    occurred_at: datetime | None = None
    words: int = 100
    metrics: Mapping[str, float | int | None] = field(default_factory=dict)
    moments: Sequence[Mapping[str, Any]] = ()
    contact_id: str | None = None
    duration_s: float | None = 300.0
    transcript_event_id: str | None = None
    erased_at: datetime | None = None


class ConversationFactory:
    """Writes `call_analyses` rows and adds each analysed call to `conversation_rollups`, as the fold does."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(self, tenant: str, *calls: AnalysedCall) -> None:
        """Store `calls` in one transaction."""
        async with self.engine.begin() as conn:
            for call in calls:
                await conn.execute(insert(CallAnalysis).values(**self._row(tenant, call)))
                if call.rep_id is not None and call.day is not None and call.words > 0:
                    await conn.execute(self._rollup(tenant, call.rep_id, call.day, self._counters(call)))

    @staticmethod
    def _row(tenant: str, call: AnalysedCall) -> dict[str, Any]:
        return {
            "tenant": tenant,
            "call_event_id": call.event_id,
            "rep_id": call.rep_id,
            "contact_id": call.contact_id,
            "occurred_at": call.occurred_at,
            "local_day": call.day,
            "duration_s": call.duration_s,
            "transcript_event_id": call.transcript_event_id or f"{call.event_id}-transcript",
            "transcript_received_at": call.occurred_at or datetime.now(UTC),
            "words": call.words,
            "rep_speech_s": 0.0,
            "buyer_speech_s": 0.0,
            "moments": list(call.moments),
            "erased_at": call.erased_at,
            **{m: call.metrics.get(m) for m in CALL_METRICS},
        }

    @staticmethod
    def _counters(call: AnalysedCall) -> dict[str, Any]:
        """What the call adds to its rep's day: one analysed call, each metric it has, its moments."""
        counters: dict[str, Any] = {"calls_analysed": 1}
        for name in CALL_METRICS:
            value = call.metrics.get(name)
            if value is not None:
                counters |= {f"{name}_sum": value, f"{name}_n": 1}
        for tactic in TACTICS:
            counters[f"{tactic}_moments"] = sum(m["tactic"] == tactic for m in call.moments)
        return counters

    @staticmethod
    def _rollup(tenant: str, rep_id: str, day: date, counters: dict[str, Any]) -> Any:
        stmt = insert(ConversationRollup).values(tenant=tenant, rep_id=rep_id, day=day, **counters)
        return stmt.on_conflict_do_update(
            index_elements=[ConversationRollup.tenant, ConversationRollup.rep_id, ConversationRollup.day],
            set_={c: getattr(ConversationRollup, c) + getattr(stmt.excluded, c) for c in counters},
        )
