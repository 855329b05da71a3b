"""Coaching (SPEC 5.2, 5.7): `/v1/coaching/reps/{rep_id}`, `/v1/coaching/team`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from services.api.auth import CoachingReadKey
from services.api.coaching import answers, service
from services.api.coaching.schemas import RepCoachingOut, Scope, TeamCoachingOut
from services.api.kit.reads import json_response
from services.api.kit.routing import ReadsDep, RepId, WindowDep, error_responses

router = APIRouter(prefix="/v1/coaching", tags=["coaching"])

ScopeQuery = Annotated[
    Scope,
    Query(description="Peers: the other active reps of the tenant, or of the rep's own team"),
]
MinSample = Annotated[
    int,
    Query(
        ge=0,
        le=1_000_000,
        description="A rate's denominator a rep needs to be a peer and to get a z-score "
        "(dials for connect_rate, connects for meeting_rate, calls with talk times for talk_ratio, "
        "calls analysed for the conversation metrics, ...)",
    ),
]

RampMonths = Annotated[
    int | None,
    Query(
        ge=0,
        le=120,
        description="A rep in its first `ramp_months` months of tenure is compared with its peers at the "
        "same month of their tenure. Default: the tenant's measured ramp length (the first tenure month in "
        "which its median rep reaches 80 % of the steady state), 3 when it cannot be measured; 0: never.",
    ),
]


@router.get(
    "/reps/{rep_id}",
    response_model=RepCoachingOut,
    summary="Where a rep stands against its peers, and the one or two metrics to coach on",
    description="For each rate, activity and conversation metric: the rep's value over the window, the "
    "peers' median, the rep's percentile and gap, and a robust z-score (median and MAD). `focus` lists "
    "at most two metrics with z <= -1, most negative first (talk_ratio and rep_talk_share count in "
    "either direction; for longest_monologue_s a z of +1 or more is the gap). `priorities` lists at "
    "most two of those that are also at least 10 % from the peer median, the largest monthly revenue "
    "impact first. The priorities of a ramping rep are judged against its tenure peers (`peer_group`), "
    "with activity metrics prorated to the whole window by the days the rep was employed in it; "
    "`metrics` and `focus` are against every peer of the scope, counts as they are. The default "
    "window is the last 30 full days in the rep's timezone; every peer counts its own local days "
    "between the same dates.",
    responses=error_responses(401, 403, 404, 422),
)
async def rep_coaching(
    key: CoachingReadKey,
    rep_id: RepId,
    window: WindowDep,
    reads: ReadsDep,
    scope: ScopeQuery = "tenant",
    min_sample: MinSample = service.DEFAULT_MIN_SAMPLE,
    ramp_months: RampMonths = None,
) -> Response:
    body = await answers.rep_coaching(
        reads,
        tenant=key.tenant,
        rep_id=rep_id,
        scope=scope,
        min_sample=min_sample,
        spec=window,
        now=datetime.now(UTC),
        ramp_months=ramp_months,
    )
    return json_response(body)


@router.get(
    "/team",
    response_model=TeamCoachingOut,
    summary="Every active rep with its focus and priorities",
    description="The coaching view of the whole tenant, or of one `team`. With `scope=team` each rep "
    "is compared with the other active reps of its own team; with `scope=tenant` with every other "
    "active rep; a ramping rep's priorities with its tenure peers (its `peer_group`). The default "
    "window follows the tenant's timezone.",
    responses=error_responses(401, 403, 404, 422),
)
async def team_coaching(
    key: CoachingReadKey,
    window: WindowDep,
    reads: ReadsDep,
    scope: ScopeQuery = "tenant",
    team: Annotated[
        str | None, Query(min_length=1, max_length=200, description="List only the reps of this team")
    ] = None,
    min_sample: MinSample = service.DEFAULT_MIN_SAMPLE,
    ramp_months: RampMonths = None,
) -> Response:
    body = await answers.team_coaching(
        reads,
        tenant=key.tenant,
        scope=scope,
        team=team,
        min_sample=min_sample,
        spec=window,
        now=datetime.now(UTC),
        ramp_months=ramp_months,
    )
    return json_response(body)
