"""Conversation reads (SPEC 5.7): one call's analysis, and a rep's or every rep's means over a window
(the formulas: services/api/kit/conversations.py)."""

from __future__ import annotations

from datetime import datetime

from services.api.conversations import queries
from services.api.conversations.schemas import (
    CallMetrics,
    CallOut,
    ConversationMetrics,
    Moment,
    RepConversationsOut,
    TeamConversationsOut,
    TeamMemberConversationsOut,
)
from services.api.kit.conversations import CALLS, conversation_metrics
from services.api.kit.errors import NotFound
from services.api.kit.reads import ReadPool, rollup_read
from services.api.kit.windows import WindowSpec
from services.core.models.conversations import CALL_METRICS


async def call(pool: ReadPool, *, tenant: str, event_id: str) -> CallOut:
    with rollup_read("conversations_call"):
        found = await queries.call_analysis(pool, tenant, event_id)
    if found is None:
        # The same answer for another tenant's call and a call never transcribed.
        raise NotFound("no analysed call with this event id")
    moments = [Moment.model_validate(m) for m in found["moments"]]
    return CallOut(
        event_id=found["call_event_id"],
        rep_id=found["rep_id"],
        contact_id=found["contact_id"],
        occurred_at=found["occurred_at"],
        duration_s=found["duration_s"],
        transcript_event_id=found["transcript_event_id"],
        as_of=found["as_of"],
        words=found["words"],
        metrics=CallMetrics.model_validate({m: found[m] for m in CALL_METRICS}),
        moments=sorted(moments, key=lambda m: m.start_s),
    )


def _metrics(sums: queries.RepSums) -> ConversationMetrics:
    return ConversationMetrics.model_validate(conversation_metrics(sums.sums))


async def rep(
    pool: ReadPool, *, tenant: str, rep_id: str, spec: WindowSpec, now: datetime
) -> RepConversationsOut:
    with rollup_read("conversations_rep"):
        found = await queries.rep_sums(pool, tenant, rep_id, spec, now)
    if found is None:
        raise NotFound("no such rep")
    window, sums = found
    return RepConversationsOut(
        rep_id=rep_id,
        team=sums.team,
        from_=window.start,
        to=window.end,
        as_of=window.as_of,
        calls_analysed=int(sums.sums[CALLS]),
        metrics=_metrics(sums),
    )


async def team(
    pool: ReadPool, *, tenant: str, team: str | None, spec: WindowSpec, now: datetime
) -> TeamConversationsOut:
    with rollup_read("conversations_team"):
        found = await queries.team_sums(pool, tenant, team, spec, now)
    if found is None:
        # The same answer for another tenant's team and a team nobody is in.
        raise NotFound("no rep in this team")
    window, reps = found
    return TeamConversationsOut(
        team=team,
        from_=window.start,
        to=window.end,
        as_of=window.as_of,
        reps=[
            TeamMemberConversationsOut(
                rep_id=r.rep_id, team=r.team, calls_analysed=int(r.sums[CALLS]), metrics=_metrics(r)
            )
            for r in reps
        ],
    )
