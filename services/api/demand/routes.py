"""Demand generation (SPEC 5.5): `/v1/demand/channels`, `/v1/demand/spend`."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response

from services.api.auth import DemandReadKey, DemandWriteKey
from services.api.demand import service
from services.api.demand.schemas import ChannelsOut, SpendIn, SpendOut
from services.api.kit.reads import json_response
from services.api.kit.routing import EngineDep, ReadsDep, WindowDep, error_responses

router = APIRouter(prefix="/v1/demand", tags=["demand"])


@router.get(
    "/channels",
    response_model=ChannelsOut,
    summary="What each acquisition channel yields over the window",
    description="Per channel: leads created, MQLs and SQLs (by the day the lead reached the stage), "
    "deals created and won with their revenue, the conversion rates, the median speed to lead of the "
    "leads created in the window, and with spend the customer acquisition cost. A deal counts under "
    "its own channel, else under the channel of its contact's first lead, whatever order the events "
    "arrived in; leads and deals without a known channel are listed as `unattributed`. The window "
    "is in the tenant's timezone (default: the last 30 full days); monthly spend is prorated by day.",
    responses=error_responses(401, 403, 422),
)
async def channels(key: DemandReadKey, window: WindowDep, reads: ReadsDep) -> Response:
    body = await service.channels(reads, tenant=key.tenant, spec=window, now=datetime.now(UTC))
    return json_response(body)


@router.put(
    "/spend",
    summary="Record or replace a channel's spend for a month",
    description="The amount is in the tenant's reporting currency and replaces any earlier amount for "
    "the same channel and month.",
    responses={201: {"model": SpendOut, "description": "Created"}, **error_responses(400, 401, 403, 422)},
)
async def put_spend(key: DemandWriteKey, body: SpendIn, engine: EngineDep, response: Response) -> SpendOut:
    spend, created = await service.put_spend(
        engine, tenant=key.tenant, channel=body.channel.value, month=body.month, amount=body.amount
    )
    response.status_code = 201 if created else 200
    return spend
