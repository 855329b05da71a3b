"""Reps and their metrics: `/v1/reps`, `/v1/reps/{rep_id}/metrics`, `/v1/teams/{team}/metrics`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from services.api.auth import MetricsReadKey, RepsReadKey, RepsWriteKey
from services.api.kit.reads import json_response
from services.api.kit.routing import (
    EngineDep,
    ReadEngineDep,
    ReadsDep,
    RepId,
    Team,
    WindowDep,
    error_responses,
)
from services.api.reps import service
from services.api.reps.schemas import NewRepId, RepIn, RepList, RepMetricsOut, RepOut, TeamMetricsOut

router = APIRouter(prefix="/v1", tags=["reps"])


@router.put(
    "/reps/{rep_id}",
    summary="Create or replace a rep",
    description="Creates (201) or replaces (200) the rep and all of its aliases. Fields left out take "
    "their defaults: timezone the tenant's, active true, the others null. An alias held by another "
    "rep of the tenant answers 409 and changes nothing. The rep id must read back from the URL as "
    "written (no '/', not '.' or '..'); it, the name, team and aliases take no control characters, "
    "and the timezone is an IANA name the database knows: 422 names the field otherwise. From its "
    "`left_at` day (rep's timezone; not before `hired_at`) a rep reads as inactive everywhere, whatever "
    "`active` says; `monthly_cost` is its fully loaded cost per month in the tenant's currency.",
    responses={201: {"model": RepOut, "description": "Created"}, **error_responses(400, 401, 403, 409, 422)},
)
async def put_rep(
    key: RepsWriteKey, rep_id: NewRepId, body: RepIn, engine: EngineDep, response: Response
) -> RepOut:
    rep, created = await service.put_rep(engine, tenant=key.tenant, rep_id=rep_id, body=body)
    response.status_code = 201 if created else 200
    return rep


@router.get(
    "/reps",
    summary="List the tenant's reps",
    responses=error_responses(401, 403, 422),
)
async def list_reps(
    key: RepsReadKey,
    engine: ReadEngineDep,
    team: Annotated[str | None, Query(max_length=200, description="Only reps of this team")] = None,
    active: Annotated[
        bool | None,
        Query(
            description="Only active (true) or inactive (false) reps; a rep is inactive from its left_at day"
        ),
    ] = None,
) -> RepList:
    return RepList(reps=await service.list_reps(engine, tenant=key.tenant, team=team, active=active))


@router.get(
    "/reps/{rep_id}",
    summary="One rep",
    responses=error_responses(401, 403, 404, 422),
)
async def get_rep(key: RepsReadKey, rep_id: RepId, engine: ReadEngineDep) -> RepOut:
    return await service.get_rep(engine, tenant=key.tenant, rep_id=rep_id)


@router.get(
    "/reps/{rep_id}/metrics",
    response_model=RepMetricsOut,
    summary="A rep's SPEC 5.1 metrics over a window of rep-local days",
    responses=error_responses(401, 403, 404, 422),
)
async def rep_metrics(key: MetricsReadKey, rep_id: RepId, window: WindowDep, reads: ReadsDep) -> Response:
    body = await service.rep_metrics(
        reads.pool, tenant=key.tenant, rep_id=rep_id, spec=window, now=datetime.now(UTC)
    )
    return json_response(body)


@router.get(
    "/teams/{team}/metrics",
    summary="A team's metrics: rates from the summed counts of its reps",
    description="Every rep of the team counts, active or not. The default window follows the tenant's "
    "timezone; each rep contributes its own rep-local days between `from` and `to`. Quota is the sum "
    "of the reps' monthly quotas.",
    responses=error_responses(401, 403, 404, 422),
)
async def team_metrics(
    key: MetricsReadKey, team: Team, window: WindowDep, engine: ReadEngineDep
) -> TeamMetricsOut:
    return await service.team_metrics(
        engine, tenant=key.tenant, team=team, spec=window, now=datetime.now(UTC)
    )
