"""Planning (SPEC 5.10): `/v1/planning/capacity`, `/v1/planning/fit`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from services.api.auth import EconomicsReadKey
from services.api.kit.reads import json_response
from services.api.kit.routing import ReadsDep, error_responses
from services.api.kit.windows import WindowSpec, parse_window
from services.api.planning import service
from services.api.planning.schemas import CapacityOut, FitOut

router = APIRouter(prefix="/v1/planning", tags=["planning"])

Target = Annotated[float | None, Query(gt=0, le=1e12, allow_inf_nan=False)]


@router.get(
    "/capacity",
    response_model=CapacityOut,
    summary="How many reps to hire, and when, to make a monthly target",
    description="A month-by-month plan from the tenant's measured ramp (the median rep's bookings by "
    "month of tenure as a share of the steady state), its measured monthly attrition and failure rate "
    "(the failure rate of the economics settings first; 0.35 when neither is known), the reps' quota "
    "and median attainment: per month the ramped rep equivalents, the capacity, the gap to the target "
    "and the hires to start that month (net hires / (1 - failure rate), rounded up, started as many "
    "months ahead as the ramp takes), beside linear math (target / quota). `inputs` says which were "
    "measured and which are defaults. Answers 422 (`insufficient_history`) when the ramp cannot be "
    "measured honestly: fewer than ten reps, or no complete ramp.",
    responses=error_responses(401, 403, 404, 422),
)
async def capacity(
    key: EconomicsReadKey,
    reads: ReadsDep,
    target_new_mrr: Annotated[
        Target,
        Query(description="New MRR to add each month (give this or target_bookings)", examples=[50000]),
    ] = None,
    target_bookings: Annotated[
        Target, Query(description="Bookings (won deals' amounts) each month", examples=[300000])
    ] = None,
    months: Annotated[
        int, Query(ge=1, le=service.MAX_MONTHS, description="Months to plan")
    ] = service.DEFAULT_MONTHS,
    start: Annotated[
        str | None,
        Query(
            description="First month, YYYY-MM (default: next month in the tenant's timezone)",
            examples=["2027-01"],
        ),
    ] = None,
) -> Response:
    query = service.CapacityQuery(target_new_mrr, target_bookings, months, start)
    return json_response(await service.capacity(reads, tenant=key.tenant, query=query, now=datetime.now(UTC)))


FIT_DAYS = 365


async def _fit_window(
    from_: Annotated[str | None, Query(alias="from", description="First day, YYYY-MM-DD (with `to`)")] = None,
    to: Annotated[str | None, Query(description="Last day, YYYY-MM-DD (with `from`)")] = None,
    window: Annotated[
        str | None, Query(description="The last N full days, e.g. `365d`. Default: the last 365 full days.")
    ] = None,
) -> WindowSpec:
    if from_ is None and to is None and window is None:
        return WindowSpec(days=FIT_DAYS)
    return parse_window(from_, to, window)


FitWindow = Annotated[WindowSpec, Depends(_fit_window)]


@router.get(
    "/fit",
    response_model=FitOut,
    summary="Roberge's stage of fit: product/market, go-to-market, scale, and premature scaling",
    description="Three lights, each `green`, `red` or `unknown` with the figures behind it: "
    "`product_market` (logo retention >= 0.90 and net revenue retention >= 1.00, annualised), "
    "`go_to_market` (LTV:CAC >= 3 and CAC payback <= 12 months), `scale` (failure rate <= 0.40 and the "
    "ramp of the last two hire cohorts stable); `premature_scaling` is true when the active headcount "
    "grew more than 25 % over the last quarter while product_market or go_to_market is red. Too little "
    "history (fewer than 10 customers at the window's start, fewer than 10 hires a year old, fewer than "
    "two measured cohorts) gives `unknown`, never a guess. The window is in the tenant's timezone; "
    "default the last 365 full days, since retention is judged over a year.",
    responses=error_responses(401, 403, 404, 422),
)
async def fit(key: EconomicsReadKey, reads: ReadsDep, window: FitWindow) -> Response:
    return json_response(await service.fit(reads, tenant=key.tenant, spec=window, now=datetime.now(UTC)))
