"""Response bodies of the training routes (SPEC 5.4, 5.6)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from services.api.training.service import (
    CertificationReport,
    CohortKind,
    ModuleStats,
    RampCohort,
    RampGroup,
    RampMonth,
)

MONTH_EXAMPLE: JsonDict = {"month": 0, "reps": 5, "median": 0.0}


class RampMonthOut(BaseModel):
    month: int = Field(description="Month index since hire: month k is [hired_at + k, hired_at + k+1 months)")
    reps: int = Field(description="Reps with a value for this month (it has started for them)")
    median: float | None

    @classmethod
    def of(cls, m: RampMonth) -> RampMonthOut:
        return cls(month=m.month, reps=m.reps, median=m.median)


class RampCohortOut(BaseModel):
    cohort: str = Field(description='"2026-03" (cohort=month) or "2026-Q1" (cohort=quarter)')
    reps: int
    months: list[RampMonthOut]
    days_to_first_win: dict[str, int | None] = Field(description="Per rep; null before a first win")

    @classmethod
    def of(cls, c: RampCohort) -> RampCohortOut:
        return cls(
            cohort=c.cohort,
            reps=c.reps,
            months=[RampMonthOut.of(m) for m in c.months],
            days_to_first_win=dict(c.days_to_first_win),
        )


class RampOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "metric": "revenue_won",
                    "cohort": "quarter",
                    "as_of": "2026-10-30T17:02:11Z",
                    "cohorts": [
                        {
                            "cohort": "2026-Q1",
                            "reps": 5,
                            "months": [MONTH_EXAMPLE],
                            "days_to_first_win": {"r7": 41, "r8": None},
                        }
                    ],
                }
            ]
        }
    )

    metric: str
    cohort: CohortKind
    as_of: datetime | None = Field(description="Newest event time folded for the tenant; null before any")
    cohorts: list[RampCohortOut]

    @classmethod
    def of(
        cls, cohorts: list[RampCohort], *, metric: str, cohort: CohortKind, as_of: datetime | None
    ) -> RampOut:
        return cls(metric=metric, cohort=cohort, as_of=as_of, cohorts=[RampCohortOut.of(c) for c in cohorts])


class ModuleStatsOut(BaseModel):
    attempts: int
    reps_attempted: int
    reps_passed: int
    pass_rate: float | None = Field(description="reps_passed / reps_attempted")
    median_score: float | None
    median_days_to_pass: float | None = Field(description="From hire to the first pass; a pre-hire pass is 0")

    @classmethod
    def of(cls, m: ModuleStats) -> ModuleStatsOut:
        return cls(
            attempts=m.attempts,
            reps_attempted=m.reps_attempted,
            reps_passed=m.reps_passed,
            pass_rate=m.pass_rate,
            median_score=m.median_score,
            median_days_to_pass=m.median_days_to_pass,
        )


class RampGroupOut(BaseModel):
    reps: int
    months: list[RampMonthOut]

    @classmethod
    def of(cls, g: RampGroup) -> RampGroupOut:
        return cls(reps=g.reps, months=[RampMonthOut.of(m) for m in g.months])


class CertifiedRampOut(BaseModel):
    by_month: int
    modules: list[str] = Field(description="Every module seen; certified = passed all of them in time")
    certified: RampGroupOut
    others: RampGroupOut


class CertificationsOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "metric": "revenue_won",
                    "as_of": "2026-10-30T17:02:11Z",
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
            ]
        }
    )

    metric: str
    as_of: datetime | None = Field(description="Newest event time folded for the tenant; null before any")
    modules: dict[str, ModuleStatsOut]
    certified_ramp: CertifiedRampOut

    @classmethod
    def of(cls, report: CertificationReport, *, metric: str, as_of: datetime | None) -> CertificationsOut:
        ramp = report.certified_ramp
        return cls(
            metric=metric,
            as_of=as_of,
            modules={name: ModuleStatsOut.of(m) for name, m in report.modules.items()},
            certified_ramp=CertifiedRampOut(
                by_month=ramp.by_month,
                modules=list(ramp.modules),
                certified=RampGroupOut.of(ramp.certified),
                others=RampGroupOut.of(ramp.others),
            ),
        )
