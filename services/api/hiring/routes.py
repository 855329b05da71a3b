"""Hiring (SPEC 5.3): `/v1/hiring/scorecards/{rep_id}`, `/v1/hiring/trait-correlations`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from services.api.auth import HiringReadKey, HiringWriteKey
from services.api.hiring import service
from services.api.hiring.schemas import ScorecardIn, ScorecardOut, TraitCorrelationsOut
from services.api.kit.routing import EngineDep, ReadEngineDep, RepId, WindowDep, error_responses

router = APIRouter(prefix="/v1/hiring", tags=["hiring"])


@router.put(
    "/scorecards/{rep_id}",
    summary="Record or replace a rep's scorecard at hire",
    description="Trait scores are whole numbers 1-10: the standard `coachability`, `curiosity`, "
    "`prior_success`, `intelligence`, `work_ethic`, and any custom trait (lowercase name). Replaces the "
    "whole scorecard. The rep must exist (404 otherwise); every bad trait gets its own entry in the "
    "422 `details`.",
    responses={
        201: {"model": ScorecardOut, "description": "Created"},
        **error_responses(400, 401, 403, 404, 422),
    },
)
async def put_scorecard(
    key: HiringWriteKey, rep_id: RepId, body: ScorecardIn, engine: EngineDep, response: Response
) -> ScorecardOut:
    card, created = await service.put_scorecard(engine, tenant=key.tenant, rep_id=rep_id, traits=body.traits)
    response.status_code = 201 if created else 200
    return ScorecardOut.model_validate(card, from_attributes=True)


@router.get(
    "/scorecards/{rep_id}",
    summary="A rep's scorecard",
    responses=error_responses(401, 403, 404, 422),
)
async def get_scorecard(key: HiringReadKey, rep_id: RepId, engine: ReadEngineDep) -> ScorecardOut:
    card = await service.get_scorecard(engine, tenant=key.tenant, rep_id=rep_id)
    return ScorecardOut.model_validate(card, from_attributes=True)


@router.get(
    "/trait-correlations",
    summary="Which traits at hire go with performance",
    description="For each trait: Pearson r (two-sided p-value, Fisher-z 95 % interval) and Spearman rho "
    "against the `outcome` of every active rep with a scorecard, over the window (default: the last 30 "
    "full days in the tenant's timezone). A rep counts for a trait when it has a score for it and a "
    "defined outcome (quota_attainment needs a quota). `insufficient_data` below ten reps.",
    responses=error_responses(401, 403, 422),
)
async def trait_correlations(
    key: HiringReadKey,
    window: WindowDep,
    engine: ReadEngineDep,
    outcome: Annotated[
        str,
        Query(
            description="Any metric of `GET /v1/reps/{rep_id}/metrics`",
            json_schema_extra={"enum": list(service.OUTCOMES)},
        ),
    ] = service.DEFAULT_OUTCOME,
) -> TraitCorrelationsOut:
    found = await service.correlations(
        engine, tenant=key.tenant, outcome=outcome, spec=window, now=datetime.now(UTC)
    )
    return TraitCorrelationsOut(
        outcome=found.outcome, from_=found.start, to=found.end, as_of=found.as_of, traits=found.traits
    )
