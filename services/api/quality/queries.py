"""All SQL of the data-quality domain: unresolved vendor identities as the aggregator counted them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, and_, cast, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.kit.snapshot import AS_OF_SQL
from services.core.models import DataQuality, RepAlias


@dataclass(frozen=True)
class UnknownAlias:
    source: str
    kind: str
    value: str
    events: int
    first_seen: datetime
    last_seen: datetime
    resolves_to: str | None
    source_events: int  # over every identity of the source, listed or not
    source_aliases: int


async def unknown_aliases(
    engine: AsyncEngine, tenant: str, limit: int
) -> tuple[datetime | None, list[UnknownAlias]]:
    """The tenant's watermark, and per source the `limit` identities with the most events (with the
    source's totals), ordered by source and events."""
    dq = DataQuality
    ranked = (
        select(
            dq.source,
            dq.alias_kind,
            dq.alias_value,
            dq.events,
            dq.first_seen,
            dq.last_seen,
            RepAlias.rep_id.label("resolves_to"),
            cast(func.sum(dq.events).over(partition_by=dq.source), BigInteger).label("source_events"),
            func.count().over(partition_by=dq.source).label("source_aliases"),
            func.row_number()
            .over(partition_by=dq.source, order_by=(dq.events.desc(), dq.alias_kind, dq.alias_value))
            .label("rank"),
        )
        .outerjoin(
            RepAlias,
            and_(
                RepAlias.tenant == dq.tenant, RepAlias.kind == dq.alias_kind, RepAlias.value == dq.alias_value
            ),
        )
        .where(dq.tenant == tenant)
        .subquery()
    )
    stmt = select(ranked).where(ranked.c.rank <= limit).order_by(ranked.c.source, ranked.c.rank)
    async with engine.connect() as conn:
        watermark = (await conn.exec_driver_sql(f"SELECT {AS_OF_SQL}", (tenant,))).scalar()
        rows = (await conn.execute(stmt)).all()
    return watermark, [
        UnknownAlias(
            r.source,
            r.alias_kind,
            r.alias_value,
            r.events,
            r.first_seen,
            r.last_seen,
            r.resolves_to,
            r.source_events,
            r.source_aliases,
        )
        for r in rows
    ]
