"""Training (SPEC 5.4): `/v1/training/ramp`, `/v1/training/certifications`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.api.auth import TrainingReadKey
from services.api.kit.routing import ReadEngineDep, ReadsDep, error_responses
from services.api.kit.sums import METRICS
from services.api.kit.windows import WindowSpec, parse_window
from services.api.training import service
from services.api.training.schemas import CertificationsOut, CohortKind, RampOut


async def _hires(
    from_: Annotated[
        str | None,
        Query(alias="from", description="Only reps hired on or after this day, YYYY-MM-DD (with `to`)."),
    ] = None,
    to: Annotated[
        str | None, Query(description="Only reps hired on or before this day, YYYY-MM-DD (with `from`).")
    ] = None,
    window: Annotated[
        str | None,
        Query(description="Only reps hired in the last N full days (tenant's timezone), e.g. `90d`."),
    ] = None,
) -> WindowSpec | None:
    """A ramp is indexed by tenure, not by calendar: the window selects hires. Default: every hire."""
    if from_ is None and to is None and window is None:
        return None
    return parse_window(from_, to, window)


HiresDep = Annotated[WindowSpec | None, Depends(_hires)]
Metric = Annotated[
    str,
    Query(
        description="Any metric of `GET /v1/reps/{rep_id}/metrics`",
        json_schema_extra={"enum": list(METRICS)},
    ),
]
Months = Annotated[
    int, Query(ge=1, le=service.MAX_MONTHS, description="Months of tenure to report (0 .. months-1)")
]

router = APIRouter(prefix="/v1/training", tags=["training"])


@router.get(
    "/ramp",
    summary="How fast new hires ramp, by hire cohort",
    description="Active reps with a hire date, grouped by the month or quarter they were hired in. For "
    "each month of tenure (month k runs from hired_at + k months to hired_at + k+1 months, rep-local "
    "days): the cohort median of `metric` and how many reps have data for that month; per rep the days "
    "from hire to its first won deal. Months without activity count as 0 for counts and sums and "
    "are left out for rates. Months that began before the tenant's first event (for a rep hired "
    "before it, before the rep's own first event) are unknown, not zero: left out of the medians, "
    "and each cohort's `data_from_month` says where its data begins. `ramp_months` is the tenant's "
    "measured ramp length in `metric`, the default of coaching's `ramp_months`.",
    responses=error_responses(401, 403, 422),
)
async def ramp(
    key: TrainingReadKey,
    hires: HiresDep,
    engine: ReadEngineDep,
    reads: ReadsDep,
    cohort: Annotated[CohortKind, Query(description="Group hires by calendar month or quarter")] = "month",
    metric: Metric = service.DEFAULT_METRIC,
    months: Months = service.DEFAULT_MONTHS,
) -> RampOut:
    return await service.ramp_report(
        engine,
        reads,
        tenant=key.tenant,
        metric=metric,
        cohort=cohort,
        months=months,
        hires=hires,
        now=datetime.now(UTC),
    )


@router.get(
    "/certifications",
    summary="Certification results per module, and whether certified reps ramp faster",
    description="Per module: attempts, reps who attempted and passed, pass rate, median score and "
    "median days from hire to the first pass. Then the ramp of `metric` for the reps who passed every "
    "module within 3 months of hire against every other active hire.",
    responses=error_responses(401, 403, 422),
)
async def certifications(
    key: TrainingReadKey,
    hires: HiresDep,
    engine: ReadEngineDep,
    metric: Metric = service.DEFAULT_METRIC,
    months: Months = service.DEFAULT_MONTHS,
) -> CertificationsOut:
    return await service.certification_report(
        engine, tenant=key.tenant, metric=metric, months=months, hires=hires, now=datetime.now(UTC)
    )
