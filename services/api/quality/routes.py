"""Data quality (SPEC 4): `GET /v1/data-quality`, the vendor events no rep could be found for."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.api.auth import MetricsReadKey
from services.api.kit.routing import ReadEngineDep, error_responses
from services.api.quality import service
from services.api.quality.schemas import DataQualityOut

router = APIRouter(tags=["data quality"])


@router.get(
    "/v1/data-quality",
    summary="Vendor events archived without a rep, per source and unknown identity",
    description="A vendor event whose user (HubSpot owner, phone number, email, ...) matches no rep's "
    "alias is archived with no rep and counted here, since the tenant's first event. Add the alias "
    "with `PUT /v1/reps/{rep_id}` and run `salesloop rebuild` to attribute those events; until then "
    "`resolves_to` shows which rep they will go to. Needs `metrics:read` (or `admin`).",
    responses=error_responses(401, 403, 422),
)
async def data_quality(
    key: MetricsReadKey,
    engine: ReadEngineDep,
    limit: Annotated[
        int, Query(ge=1, le=1000, description="Identities listed per source, most events first")
    ] = 100,
) -> DataQualityOut:
    return await service.data_quality(engine, tenant=key.tenant, limit=limit)
