"""Response bodies of the training routes (SPEC 5.4, 5.6)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from services.api.kit.answers import AS_OF_EXAMPLE, AsOf, example

CohortKind = Literal["month", "quarter"]
# The pieces of the answers are built from the service's results of the same shape (from_attributes).
FROM_RESULT = ConfigDict(from_attributes=True)

MONTH_EXAMPLE: JsonDict = {"month": 0, "reps": 5, "median": 0.0}


class RampMonthOut(BaseModel):
    model_config = FROM_RESULT

    month: int = Field(description="Month index since hire: month k is [hired_at + k, hired_at + k+1 months)")
    reps: int = Field(
        description="Reps with a value for this month: it has started for them and its numbers are known"
    )
    median: float | None = Field(description="Median over those reps; null when there are none")


class RampCohortOut(BaseModel):
    model_config = FROM_RESULT

    cohort: str = Field(description='"2026-03" (cohort=month) or "2026-Q1" (cohort=quarter)')
    reps: int
    months: list[RampMonthOut]
    days_to_first_win: dict[str, int | None] = Field(
        description="Per rep; null before a first win, or when the rep's first months are unknown"
    )
    data_from_month: int | None = Field(
        description="The first month whose numbers are known for a rep of the cohort: earlier months "
        "began before the tenant sent data (for reps hired before that, before their own first event) "
        "and count as no data, not zero. Null when no month of any rep is known"
    )


class RampOut(BaseModel):
    model_config = example(
        {
            "metric": "revenue_won",
            "cohort": "quarter",
            "as_of": AS_OF_EXAMPLE,
            "cohorts": [
                {
                    "cohort": "2026-Q1",
                    "reps": 5,
                    "months": [MONTH_EXAMPLE],
                    "days_to_first_win": {"r7": 41, "r8": None},
                    "data_from_month": 0,
                }
            ],
            "ramp_months": 4,
            "ramp_measured": True,
            "steady_state": 21500.0,
        }
    )

    metric: str
    cohort: CohortKind
    as_of: AsOf
    cohorts: list[RampCohortOut]
    ramp_months: int = Field(
        description="The tenant's measured ramp length: the first month (0-based) in which its median "
        "rep reaches 80 % of the steady state; 3 when that cannot be measured. Coaching compares reps "
        "below it with peers at the same month of tenure"
    )
    ramp_measured: bool = Field(description="False when ramp_months is the default 3, not a measurement")
    steady_state: float | None = Field(
        description="Median monthly value of `metric` over tenure months 6-24 (complete, known months "
        "of the reps with a hire date that are active or have left, up to their leaving day); null "
        "without any"
    )


class ModuleStatsOut(BaseModel):
    model_config = FROM_RESULT

    attempts: int
    reps_attempted: int
    reps_passed: int
    pass_rate: float | None = Field(description="reps_passed / reps_attempted")
    median_score: float | None
    median_days_to_pass: float | None = Field(description="From hire to the first pass; a pre-hire pass is 0")


class RampGroupOut(BaseModel):
    model_config = FROM_RESULT

    reps: int
    months: list[RampMonthOut]


class CertifiedRampOut(BaseModel):
    model_config = FROM_RESULT

    by_month: int
    modules: list[str] = Field(description="Every module seen; certified = passed all of them in time")
    certified: RampGroupOut
    others: RampGroupOut


class CertificationsOut(BaseModel):
    model_config = example(
        {
            "metric": "revenue_won",
            "as_of": AS_OF_EXAMPLE,
            "modules": {
                "discovery": {
                    "attempts": 14,
                    "reps_attempted": 10,
                    "reps_passed": 8,
                    "pass_rate": 0.8,
                    "median_score": 82.5,
                    "median_days_to_pass": 23.0,
                }
            },
            "certified_ramp": {
                "by_month": 3,
                "modules": ["discovery"],
                "certified": {"reps": 8, "months": [MONTH_EXAMPLE]},
                "others": {"reps": 4, "months": [MONTH_EXAMPLE]},
            },
        }
    )

    metric: str
    as_of: AsOf
    modules: dict[str, ModuleStatsOut]
    certified_ramp: CertifiedRampOut
