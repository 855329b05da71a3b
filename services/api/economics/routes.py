"""Unit economics (SPEC 5.10): `/v1/economics/summary`, `/v1/economics/settings`."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response

from services.api.auth import EconomicsReadKey, EconomicsWriteKey
from services.api.economics import service
from services.api.economics.schemas import SettingsIn, SettingsOut, SummaryOut
from services.api.kit.reads import json_response
from services.api.kit.routing import EngineDep, ReadEngineDep, ReadsDep, WindowDep, error_responses

router = APIRouter(prefix="/v1/economics", tags=["economics"])


@router.get(
    "/summary",
    response_model=SummaryOut,
    summary="MRR movements, retention, LTV, CAC and payback over the window",
    description="From the tenant's subscription events (Stripe `customer.subscription.*` or canonical "
    "`subscription.*`), marketing spend (`PUT /v1/demand/spend`), reps' `monthly_cost` and the "
    "settings: MRR at the start and end and its movements (new, reactivation, expansion, contraction, "
    "churn), customers, logo, net and gross revenue retention, ARPA, monthly churn, LTV, CAC, CAC "
    "payback and LTV:CAC, for the tenant and per first-touch channel (the billing events' channel, "
    "else the channel of the account's contact's first lead). Every ratio with nothing to divide by "
    "is null. The window is in the tenant's timezone (default: the last 30 full days).",
    responses=error_responses(401, 403, 422),
)
async def summary(key: EconomicsReadKey, window: WindowDep, reads: ReadsDep) -> Response:
    body = await service.summary(reads, tenant=key.tenant, spec=window, now=datetime.now(UTC))
    return json_response(body)


@router.put(
    "/settings",
    summary="Set the tenant's gross margin, sales cost and rep failure rate",
    description="Replaces the settings: `gross_margin` (0 to 1; null: not set, so LTV and payback "
    "are null), `sales_cost_monthly` (sales cost beyond the reps' own `monthly_cost`, default 0) and "
    "`failure_rate` (0 to 1; null: measured from reps' leaving days, else 0.35).",
    responses=error_responses(400, 401, 403, 422),
)
async def put_settings(key: EconomicsWriteKey, body: SettingsIn, engine: EngineDep) -> SettingsOut:
    return await service.put_settings(engine, tenant=key.tenant, body=body)


@router.get(
    "/settings",
    summary="The tenant's economics settings",
    description="As the last `PUT /v1/economics/settings` left them, else the defaults.",
    responses=error_responses(401, 403),
)
async def get_settings(key: EconomicsReadKey, engine: ReadEngineDep) -> SettingsOut:
    return await service.get_settings(engine, tenant=key.tenant)
