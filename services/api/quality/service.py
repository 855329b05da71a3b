"""The data-quality report: unresolved vendor identities grouped by source, with totals."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.kit.reads import rollup_read
from services.api.quality import queries
from services.api.quality.schemas import DataQualityOut, SourceQualityOut, UnknownAliasOut


async def data_quality(engine: AsyncEngine, *, tenant: str, limit: int) -> DataQualityOut:
    with rollup_read("data_quality"):
        as_of, rows = await queries.unknown_aliases(engine, tenant, limit)
    sources: dict[str, SourceQualityOut] = {}
    for r in rows:
        source = sources.get(r.source)
        if source is None:
            source = sources[r.source] = SourceQualityOut(
                events=r.source_events, unknown_aliases=r.source_aliases, aliases=[]
            )
        source.aliases.append(UnknownAliasOut.model_validate(r, from_attributes=True))
    return DataQualityOut(
        as_of=as_of,
        unassigned_events=sum(s.events for s in sources.values()),
        unknown_aliases=sum(s.unknown_aliases for s in sources.values()),
        sources=sources,
    )
