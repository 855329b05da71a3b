"""Pipeline and forecast (SPEC 5.8): `/v1/pipeline/stages`, `/v1/pipeline/velocity`,
`/v1/pipeline/forecast`, `/v1/pipeline/deals`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from services.api.auth import PipelineReadKey, PipelineWriteKey
from services.api.kit.reads import json_response
from services.api.kit.routing import EngineDep, ReadsDep, WindowDep, error_responses
from services.api.pipeline import service
from services.api.pipeline.schemas import (
    DealsOut,
    DealStatus,
    ForecastReportOut,
    Group,
    StageReportOut,
    StagesIn,
    StagesOut,
    VelocityReportOut,
)
from services.core.limits import MAX_ID_LEN, MAX_LABEL_LEN

router = APIRouter(prefix="/v1/pipeline", tags=["pipeline"])

RepFilter = Annotated[
    str | None, Query(min_length=1, max_length=MAX_ID_LEN, description="Only this rep's deals")
]
TeamFilter = Annotated[
    str | None, Query(min_length=1, max_length=MAX_LABEL_LEN, description="Only deals of this team's reps")
]
PeriodParam = Annotated[
    str | None,
    Query(
        description="A month `YYYY-MM` or quarter `YYYY-Qn`. "
        "Default: the current month in the tenant's timezone.",
        examples=["2026-Q4"],
    ),
]


@router.put(
    "/stages",
    summary="Set the tenant's stage order and probabilities",
    description="Replaces the whole list: stages in pipeline order (a later stage is an advance), each "
    "with the probability that a deal in it is won (0 to 1) or null, in which case the forecast "
    "weighs the stage by its historical `won_from_stage`. At most 100 stages, names unique (as the "
    "CRM writes them, 1-100 characters). An empty list goes back to the default: the order the "
    "stages were first entered.",
    responses=error_responses(400, 401, 403, 422),
)
async def put_stages(key: PipelineWriteKey, body: StagesIn, engine: EngineDep) -> StagesOut:
    return await service.put_stages(engine, tenant=key.tenant, body=body)


@router.get(
    "/stages",
    response_model=StageReportOut,
    summary="How deals move through each stage",
    description="Per stage, in pipeline order, over the deals created in the window: how many entered "
    "it, advanced (reached a later stage or were won) and were won, and the median and 90th "
    "percentile of days in the stage over their completed stays (linear interpolation, as numpy's "
    "default); with the deals open in it now, whenever created. With `rep_id` or `team`: the stays of "
    "deals the rep (or a rep of the team) owned when they entered the stage, and the open deals they "
    "own now. The window is in the tenant's timezone (default: the last 30 full days).",
    responses=error_responses(401, 403, 422),
)
async def stages(
    key: PipelineReadKey,
    window: WindowDep,
    reads: ReadsDep,
    rep_id: RepFilter = None,
    team: TeamFilter = None,
) -> Response:
    body = await service.stage_report(
        reads, tenant=key.tenant, spec=window, now=datetime.now(UTC), rep_id=rep_id, team=team
    )
    return json_response(body)


@router.get(
    "/velocity",
    response_model=VelocityReportOut,
    summary="Sales velocity per rep or team",
    description="Over the deals closed in the window: won, lost, win rate, average deal size, the "
    "median days from creation to win; opportunities are the deals created in the window. A closed "
    "deal counts for its owner at the close, a created one for its owner at creation. Every rep (or "
    "named team) is listed; `key` null gathers deals without owner (or whose owner has no team).",
    responses=error_responses(401, 403, 422),
)
async def velocity(
    key: PipelineReadKey,
    window: WindowDep,
    reads: ReadsDep,
    group: Annotated[Group, Query(description="One entry per rep or per team")] = Group.rep,
) -> Response:
    body = await service.velocity_report(
        reads, tenant=key.tenant, spec=window, now=datetime.now(UTC), group=group
    )
    return json_response(body)


@router.get(
    "/forecast",
    response_model=ForecastReportOut,
    summary="The forecast of a month or quarter per rep, team and tenant",
    description="Open deals whose latest close date falls in the period, with their amount weighted by "
    "their stage's probability (where the tenant set none: the stage's `won_from_stage` over deals "
    "created in the last 365 full days), commit and best case (best case includes commit), the amount "
    "won in the period so far, the quota (quota_monthly x months), coverage and projection. Open deals "
    "count for their current owner, won ones for their owner at the close.",
    responses=error_responses(401, 403, 422),
)
async def forecast(key: PipelineReadKey, reads: ReadsDep, period: PeriodParam = None) -> Response:
    body = await service.forecast_report(reads, tenant=key.tenant, period=period, now=datetime.now(UTC))
    return json_response(body)


@router.get(
    "/deals",
    response_model=DealsOut,
    summary="Slipped or stale deals",
    description="`slipped`: deals whose close date at 00:00 of the period's first day lay in the period "
    "and now lies after its last day, or that were lost since; `from`/`to` are the period. `stale`: "
    "open deals longer in their stage (to `as_of`) than the stage's 90th percentile over the stays "
    "completed in the last 365 full days (`from`/`to`), or whose contact had no call, email or meeting "
    "for `stale_days` (counted from the deal's creation when the contact never had any; a deal without "
    "a contact is judged on its days in stage only). The largest deals first.",
    responses=error_responses(401, 403, 422),
)
async def deals(
    key: PipelineReadKey,
    reads: ReadsDep,
    status: Annotated[DealStatus, Query(description="Which deals to list")],
    period: PeriodParam = None,
    stale_days: Annotated[int, Query(ge=1, le=365, description="status=stale: days without activity")] = 14,
    rep_id: RepFilter = None,
    team: TeamFilter = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Deals listed at most")] = 100,
) -> Response:
    body = await service.deals_report(
        reads, tenant=key.tenant, status=status, period=period, stale_days=stale_days, rep_id=rep_id,
        team=team, limit=limit, now=datetime.now(UTC),
    )  # fmt: skip
    return json_response(body)
