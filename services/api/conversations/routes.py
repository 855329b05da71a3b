"""Conversations (SPEC 5.7): `/v1/conversations/calls/{event_id}`, `/v1/conversations/reps/{rep_id}`,
`/v1/conversations/team`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from services.api.auth import ConversationsReadKey
from services.api.conversations import service
from services.api.conversations.schemas import CallOut, RepConversationsOut, TeamConversationsOut
from services.api.kit.routing import ReadsDep, RepId, WindowDep, error_responses
from services.core.limits import MAX_ID_LEN

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])

EventId = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_LEN, description="The event id of the call (`call.completed`)")
]


@router.get(
    "/calls/{event_id}",
    summary="One call's conversation metrics and Voss moments",
    description="The analysis of the call's transcript: the last one delivered (on the `call.completed` "
    "or a later `call.transcribed` naming the call). 404 for a call without a transcript.",
    responses=error_responses(401, 403, 404, 422),
)
async def call(key: ConversationsReadKey, event_id: EventId, reads: ReadsDep) -> CallOut:
    return await service.call(reads.pool, tenant=key.tenant, event_id=event_id)


@router.get(
    "/reps/{rep_id}",
    summary="A rep's conversation metrics over a window of rep-local days",
    description="Means over the calls analysed in the window (each metric over the calls that have "
    "it), rep questions and each tactic's moments per analysed call. Read from daily rollups: no "
    "transcript is read.",
    responses=error_responses(401, 403, 404, 422),
)
async def rep(
    key: ConversationsReadKey, rep_id: RepId, window: WindowDep, reads: ReadsDep
) -> RepConversationsOut:
    return await service.rep(reads.pool, tenant=key.tenant, rep_id=rep_id, spec=window, now=datetime.now(UTC))


@router.get(
    "/team",
    summary="Every rep's conversation metrics",
    description="One entry per rep: every active rep of the tenant (or of `team`), and any other rep "
    "with calls analysed in the window. The default window follows the tenant's timezone; each rep "
    "contributes its own rep-local days between `from` and `to`.",
    responses=error_responses(401, 403, 404, 422),
)
async def team(
    key: ConversationsReadKey,
    window: WindowDep,
    reads: ReadsDep,
    team: Annotated[
        str | None, Query(min_length=1, max_length=200, description="List only the reps of this team")
    ] = None,
) -> TeamConversationsOut:
    return await service.team(reads.pool, tenant=key.tenant, team=team, spec=window, now=datetime.now(UTC))
