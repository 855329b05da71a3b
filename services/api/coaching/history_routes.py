"""Coaching over time: `/v1/coaching/reps/{rep_id}/history`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from services.api.auth import CoachingReadKey
from services.api.coaching import history
from services.api.coaching.history_schemas import RepHistoryOut
from services.api.kit.reads import json_response
from services.api.kit.routing import ReadsDep, RepId, error_responses

router = APIRouter(prefix="/v1/coaching", tags=["coaching"])


@router.get(
    "/reps/{rep_id}/history",
    response_model=RepHistoryOut,
    summary="A rep's coaching priorities week by week, and whether each gap closed",
    description="For each of the last `weeks` weeks that ended (Monday to Sunday in the tenant's "
    "timezone): the rep's priorities and focus as the coaching answer gave them over the 28 days "
    "ending on the week's Sunday (peers: the tenant's active reps; min_sample 20). Weeks the api "
    "snapshot after they ended are read as they were taken; earlier weeks are computed now. "
    "`progress` follows each metric that was a priority from the first week it was one: the rep's "
    "value against the peer median week by week, and whether the gap is closed (within 10 % of the "
    "median) in the last week.",
    responses=error_responses(401, 403, 404, 422),
)
async def rep_history(
    key: CoachingReadKey,
    rep_id: RepId,
    reads: ReadsDep,
    weeks: Annotated[
        int, Query(ge=1, le=history.MAX_WEEKS, description="How many ended weeks, the last one included")
    ] = history.DEFAULT_WEEKS,
) -> Response:
    body = await history.rep_history(
        reads, tenant=key.tenant, rep_id=rep_id, weeks=weeks, now=datetime.now(UTC)
    )
    return json_response(body)
