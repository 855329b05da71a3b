"""Response bodies of the planning routes (SPEC 5.10): the capacity plan and the stage of fit."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from pydantic.config import JsonDict

from services.api.kit.answers import AS_OF_EXAMPLE, WINDOW_EXAMPLE, AsOf, FromDay, ToDay, example

Source = Literal["measured", "settings", "default"]
Light = Literal["green", "red", "unknown"]

INPUT_EXAMPLE: JsonDict = {
    "value": 0.3,
    "source": "measured",
    "basis": "3 of 10 reps hired at least 12 months ago left within their first 12 months",
}


class InputOut(BaseModel):
    model_config = example(INPUT_EXAMPLE)

    value: float
    source: Source = Field(description="`measured` from the tenant's data, `settings`, or a `default`")
    basis: str = Field(description="What it was measured from, or why it is a default")


RAMP_EXAMPLE: JsonDict = {
    "metric": "revenue_won",
    "months": 3,
    "shares": [0.05, 0.31, 0.62],
    "steady_state": 24000.0,
    "reps": 14,
}


class PlanRampOut(BaseModel):
    model_config = example(RAMP_EXAMPLE)

    metric: str
    months: int = Field(description="Tenure months until the median rep reaches 80 % of the steady state")
    shares: list[float] = Field(
        description="Per tenure month before `months`: the median rep's value as a share of the steady "
        "state (a ramped rep counts 1)"
    )
    steady_state: float = Field(description="The median monthly value over tenure months 6-24")
    reps: int = Field(description="Reps the ramp was measured from")


MONTH_EXAMPLE: JsonDict = {
    "month": "2027-01",
    "target": 300000.0,
    "existing_rep_equivalents": 9.42,
    "ramped_rep_equivalents": 9.42,
    "capacity": 243100.0,
    "gap": 56900.0,
    "gap_without_hires": 56900.0,
    "hires": 4,
    "linear_reps": 10.0,
    "linear_hires": 0,
}


class PlanMonthOut(BaseModel):
    model_config = example(MONTH_EXAMPLE)

    month: str = Field(description="YYYY-MM")
    target: float
    existing_rep_equivalents: float = Field(description="Today's team as ramped reps, after attrition")
    ramped_rep_equivalents: float = Field(description="Today's team and the plan's hires as ramped reps")
    capacity: float = Field(description="ramped_rep_equivalents x a ramped rep's monthly capacity")
    gap: float = Field(description="target - capacity with the plan's hires: > 0 short, < 0 ahead")
    gap_without_hires: float = Field(description="target - what today's team alone makes")
    hires: int = Field(description="Reps to start hiring this month")
    linear_reps: float = Field(description="Linear math: target / quota")
    linear_hires: int = Field(description="Linear math's hires this month")


class LinearOut(BaseModel):
    reps: int = Field(description="Whole reps linear math wants on the team (target / quota, rounded up)")
    hires: int = Field(description="Linear math's hires: those reps less the active reps today")


CAPACITY_EXAMPLE: JsonDict = {
    "target": "bookings",
    "target_monthly": 300000.0,
    "start": "2027-01",
    "months": 12,
    "as_of": AS_OF_EXAMPLE,
    "ramp": RAMP_EXAMPLE,
    "inputs": {
        "failure_rate": INPUT_EXAMPLE,
        "monthly_attrition": {"value": 0.02, "source": "measured", "basis": "..."},
        "quota": {"value": 30000.0, "source": "measured", "basis": "..."},
        "median_attainment": {"value": 0.86, "source": "measured", "basis": "..."},
    },
    "measured": ["failure_rate", "monthly_attrition", "quota", "median_attainment"],
    "from_settings": [],
    "defaulted": [],
    "ramped_rep_capacity": 25800.0,
    "active_reps": 10,
    "hires": 7,
    "linear": {"reps": 10, "hires": 0},
    "plan": [MONTH_EXAMPLE],
}


class CapacityOut(BaseModel):
    model_config = example(CAPACITY_EXAMPLE)

    target: Literal["bookings", "new_mrr"]
    target_monthly: float
    start: str = Field(description="The plan's first month, YYYY-MM")
    months: int
    as_of: AsOf
    ramp: PlanRampOut
    inputs: dict[str, InputOut] = Field(
        description="failure_rate, monthly_attrition, quota, median_attainment (and new_mrr_per_booking "
        "for a new-MRR target), each with where it came from"
    )
    measured: list[str] = Field(description="Inputs measured from the tenant's data")
    from_settings: list[str] = Field(description="Inputs taken from the economics settings")
    defaulted: list[str] = Field(description="Inputs the data could not measure: defaults, see their basis")
    ramped_rep_capacity: float = Field(
        description="What a ramped rep makes a month: quota x median attainment"
    )
    active_reps: int
    hires: int = Field(description="Hires the plan starts, all months together")
    linear: LinearOut
    plan: list[PlanMonthOut]


# --- stage of fit ----------------------------------------------------------------------------------


class LightOut(BaseModel):
    light: Light
    reason: str
    figures: dict[str, float | int | str | None]


FIT_EXAMPLE: JsonDict = {
    **WINDOW_EXAMPLE,
    "product_market": {
        "light": "green",
        "reason": "logo retention 0.93 >= 0.90 and net revenue retention 1.06 >= 1.00 a year",
        "figures": {"logo_retention": 0.93, "net_revenue_retention": 1.06, "customers_start": 48},
    },
    "go_to_market": {
        "light": "red",
        "reason": "LTV:CAC 2.1 < 3",
        "figures": {"ltv_to_cac": 2.1, "cac_payback_months": 10.4},
    },
    "scale": {
        "light": "unknown",
        "reason": "fewer than 10 reps hired at least 12 months ago: no failure rate",
        "figures": {"failure_rate": None},
    },
    "premature_scaling": True,
    "headcount": {"now": 15, "quarter_ago": 11, "growth": 0.364},
}


class HeadcountOut(BaseModel):
    now: int = Field(description="Active sales reps today")
    quarter_ago: int = Field(description="Reps on the team three months ago")
    growth: float | None = Field(description="now / quarter_ago - 1; null without reps a quarter ago")


class FitOut(BaseModel):
    model_config = example(FIT_EXAMPLE)

    from_: FromDay
    to: ToDay
    as_of: AsOf
    product_market: LightOut
    go_to_market: LightOut
    scale: LightOut
    premature_scaling: bool | None = Field(
        description="Headcount grew more than 25 % in the last quarter while product_market or "
        "go_to_market is red; null when that cannot be told"
    )
    headcount: HeadcountOut
