"""Request and response bodies of the pipeline routes (SPEC 5.8)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, JsonValue
from pydantic.config import JsonDict

from services.api.kit.answers import AS_OF_EXAMPLE, WINDOW_EXAMPLE, AsOf, FromDay, ToDay, example
from services.core import limits
from services.core.limits import MAX_STAGE_LEN

MAX_STAGES = 100


def _stage_name(value: str) -> str:
    try:
        return str(limits.identity(MAX_STAGE_LEN)(value))
    except limits.Invalid as exc:
        raise ValueError(exc.reason) from None


StageName = Annotated[
    str,
    Field(min_length=1, max_length=MAX_STAGE_LEN, description="The stage as the CRM names it"),
    AfterValidator(_stage_name),
]
Probability = Annotated[
    Decimal,
    Field(
        ge=0,
        le=1,
        decimal_places=10,
        allow_inf_nan=False,
        description="Chance that a deal in this stage is won, 0 to 1 (at most 10 decimal places)",
    ),
]


class Group(StrEnum):
    rep = "rep"
    team = "team"


class DealStatus(StrEnum):
    slipped = "slipped"
    stale = "stale"


class StageIn(BaseModel):
    model_config = example({"name": "demo", "probability": "0.3"}, extra="forbid", str_strip_whitespace=True)

    name: StageName
    probability: Probability | None = None


STAGES_EXAMPLE: list[JsonValue] = [
    {"name": "discovery", "probability": 0.1},
    {"name": "demo", "probability": 0.3},
    {"name": "proposal", "probability": None},
]


class StagesIn(BaseModel):
    """The tenant's stages in pipeline order, each with its probability or null (then the stage's
    historical `won_from_stage` weighs the forecast)."""

    model_config = example({"stages": STAGES_EXAMPLE}, extra="forbid")

    stages: list[StageIn] = Field(max_length=MAX_STAGES)


class StageOut(BaseModel):
    name: str
    probability: float | None


class StagesOut(BaseModel):
    model_config = example({"stages": STAGES_EXAMPLE})

    stages: list[StageOut]


STAGE_STATS_EXAMPLE: JsonDict = {
    "stage": "demo",
    "position": 1,
    "probability": 0.3,
    "entered": 40,
    "advanced": 22,
    "conversion": 0.55,
    "won": 9,
    "won_from_stage": 0.225,
    "median_days_in_stage": 6.5,
    "p90_days_in_stage": 21.2,
    "open_now": 31,
}


class StageStatsOut(BaseModel):
    model_config = example(STAGE_STATS_EXAMPLE)

    stage: str
    position: int = Field(description="Place in the pipeline order, from 0")
    probability: float | None = Field(description="As set with PUT /v1/pipeline/stages, else null")
    entered: int = Field(description="Deals created in the window that entered the stage")
    advanced: int = Field(description="Of those, deals that later reached a later stage or were won")
    conversion: float | None = Field(description="advanced / entered")
    won: int = Field(description="Of those, deals won")
    won_from_stage: float | None = Field(description="won / entered")
    median_days_in_stage: float | None = Field(description="Over their completed stays in the stage")
    p90_days_in_stage: float | None
    open_now: int = Field(description="Open deals in the stage now, whenever created")


class StageReportOut(BaseModel):
    model_config = example(
        {**WINDOW_EXAMPLE, "configured": True, "rep_id": None, "team": None, "stages": [STAGE_STATS_EXAMPLE]}
    )

    from_: FromDay
    to: ToDay
    as_of: AsOf
    configured: bool = Field(description="Whether the order is the tenant's (else: the order first seen)")
    rep_id: str | None
    team: str | None
    stages: list[StageStatsOut]


VELOCITY_EXAMPLE: JsonDict = {
    "won": 4,
    "lost": 6,
    "win_rate": 0.4,
    "avg_deal_size": 24000.0,
    "cycle_days_median": 38.5,
    "opportunities": 12,
    "velocity_per_day": 2992.21,
}


class VelocityOut(BaseModel):
    model_config = example(VELOCITY_EXAMPLE)

    won: int = Field(description="Deals won in the window")
    lost: int
    win_rate: float | None = Field(description="won / (won + lost)")
    avg_deal_size: float | None = Field(description="Amount won / won")
    cycle_days_median: float | None = Field(description="Median days from creation to win of the deals won")
    opportunities: int = Field(description="Deals created in the window")
    velocity_per_day: float | None = Field(
        description="opportunities x win_rate x avg_deal_size / cycle_days_median"
    )


class VelocityGroupOut(VelocityOut):
    model_config = example({"key": "r1", **VELOCITY_EXAMPLE})

    key: str | None = Field(description="The rep id or team; null: deals without owner (or team)")


class VelocityReportOut(BaseModel):
    model_config = example(
        {
            **WINDOW_EXAMPLE,
            "group": "rep",
            "groups": [{"key": "r1", **VELOCITY_EXAMPLE}],
            "total": VELOCITY_EXAMPLE,
        }
    )

    from_: FromDay
    to: ToDay
    as_of: AsOf
    group: Group
    groups: list[VelocityGroupOut]
    total: VelocityOut


FORECAST_EXAMPLE: JsonDict = {
    "open_count": 7,
    "open_amount": 140000.0,
    "weighted": 52000.0,
    "commit": 60000.0,
    "best_case": 95000.0,
    "won": 30000.0,
    "quota": 150000.0,
    "coverage": 1.1666666666666667,
    "projection": 82000.0,
    "without_probability": 0,
}


class ForecastOut(BaseModel):
    model_config = example(FORECAST_EXAMPLE)

    open_count: int = Field(description="Open deals whose latest close date is in the period")
    open_amount: float
    weighted: float = Field(description="Sum of amount x the stage's probability")
    commit: float = Field(description="Open amount in forecast category commit")
    best_case: float = Field(description="Open amount in best_case or commit")
    won: float = Field(description="Amount won in the period so far")
    quota: float | None = Field(description="quota_monthly x months of the period")
    coverage: float | None = Field(description="open_amount / (quota - won); null when quota - won <= 0")
    projection: float = Field(description="won + weighted")
    without_probability: int = Field(
        description="Open deals counted in weighted as 0: their stage has no probability set and no history"
    )


class RepForecastOut(ForecastOut):
    model_config = example({"rep_id": "r1", "team": "east", **FORECAST_EXAMPLE})

    rep_id: str | None = Field(description="null: deals without owner")
    team: str | None


class TeamForecastOut(ForecastOut):
    model_config = example({"team": "east", "reps": ["r1", "r2"], **FORECAST_EXAMPLE})

    team: str
    reps: list[str]


class ForecastReportOut(BaseModel):
    model_config = example(
        {
            "period": "2026-Q4",
            "from": "2026-10-01",
            "to": "2026-12-31",
            "as_of": AS_OF_EXAMPLE,
            "reps": [{"rep_id": "r1", "team": "east", **FORECAST_EXAMPLE}],
            "teams": [{"team": "east", "reps": ["r1"], **FORECAST_EXAMPLE}],
            "total": FORECAST_EXAMPLE,
        }
    )

    period: str
    from_: FromDay
    to: ToDay
    as_of: AsOf
    reps: list[RepForecastOut]
    teams: list[TeamForecastOut]
    total: ForecastOut


DEAL_EXAMPLE: JsonDict = {
    "deal_id": "d-1042",
    "rep_id": "r1",
    "stage": "proposal",
    "amount": 42000.0,
    "days_in_stage": 37.2,
    "close_date": "2027-01-15",
    "previous_close_date": "2026-11-30",
    "reason": "close_date_moved",
    "reasons": ["close_date_moved"],
}


class DealOut(BaseModel):
    model_config = example(DEAL_EXAMPLE)

    deal_id: str
    rep_id: str | None
    stage: str | None
    amount: float | None
    days_in_stage: float | None = Field(
        description="In the current stage, to as_of (closed deals: to the close)"
    )
    close_date: date | None
    previous_close_date: date | None = Field(
        description="slipped: the close date at the period's start; "
        "stale: the close date before the current one"
    )
    reason: str = Field(description="The first of `reasons`")
    reasons: list[str] = Field(
        description="slipped: close_date_moved, lost; stale: days_in_stage_over_p90, no_activity"
    )


class DealsOut(BaseModel):
    model_config = example(
        {
            "status": "slipped",
            "period": "2026-11",
            "stale_days": None,
            **WINDOW_EXAMPLE,
            "count": 1,
            "amount": 42000.0,
            "deals": [DEAL_EXAMPLE],
        }
    )

    status: DealStatus
    period: str | None = Field(description="slipped: the period")
    stale_days: int | None = Field(description="stale: days without a call, email or meeting")
    from_: FromDay
    to: ToDay
    as_of: AsOf
    count: int = Field(description="Every deal that matches, however many are listed")
    amount: float = Field(description="Their amount")
    deals: list[DealOut] = Field(description="The largest first, at most `limit`")
