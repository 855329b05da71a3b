"""Request and response bodies of the economics routes (SPEC 5.10)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field
from pydantic.config import JsonDict

from services.api.kit.answers import WINDOW_EXAMPLE, AsOf, FromDay, ToDay, example

Share = Annotated[Decimal, Field(ge=0, le=1, decimal_places=6, allow_inf_nan=False)]
Amount = Annotated[Decimal, Field(ge=0, le=Decimal("1e15"), decimal_places=4, allow_inf_nan=False)]


class SettingsIn(BaseModel):
    """Replaces the tenant's settings; a field left out takes its default."""

    model_config = example(
        {"gross_margin": "0.8", "sales_cost_monthly": "15000", "failure_rate": None}, extra="forbid"
    )

    gross_margin: Share | None = Field(
        default=None, description="Gross margin, 0 to 1; null: not set, so no LTV and no payback"
    )
    sales_cost_monthly: Amount = Field(
        default=Decimal(0),
        description="Monthly sales cost beyond the reps' own `monthly_cost` (managers, tools), "
        "in the tenant's reporting currency",
    )
    failure_rate: Share | None = Field(
        default=None,
        description="Share of hired reps who fail, 0 to 1; null: measured from reps' leaving days, else 0.35",
    )


SETTINGS_EXAMPLE: JsonDict = {"gross_margin": 0.8, "sales_cost_monthly": 15000.0, "failure_rate": None}


class SettingsOut(BaseModel):
    model_config = example(SETTINGS_EXAMPLE)

    gross_margin: float | None
    sales_cost_monthly: float
    failure_rate: float | None


FIGURES_EXAMPLE: JsonDict = {
    "mrr_start": 40000.0,
    "mrr_end": 44500.0,
    "new_mrr": 6000.0,
    "reactivation_mrr": 500.0,
    "expansion_mrr": 2500.0,
    "contraction_mrr": 1000.0,
    "churned_mrr": 3500.0,
    "customers_start": 80,
    "customers_end": 86,
    "customers_new": 12,
    "customers_reactivated": 1,
    "customers_churned": 7,
    "logo_retention": 0.9125,
    "net_revenue_retention": 0.95,
    "gross_revenue_retention": 0.885,
    "arpa": 517.44,
    "monthly_churn": 0.0888,
    "ltv": 4662.9,
    "marketing_spend": 9000.0,
    "sales_cost": 27000.0,
    "cac": 3000.0,
    "cac_payback_months": 7.25,
    "ltv_to_cac": 1.554,
}


class FiguresOut(BaseModel):
    """One group's unit economics over the window (docs/economics.md defines each field)."""

    model_config = example(FIGURES_EXAMPLE)

    mrr_start: float = Field(description="MRR at the window's start")
    mrr_end: float = Field(description="MRR at the window's end")
    new_mrr: float = Field(description="MRR of accounts paying for the first time")
    reactivation_mrr: float = Field(description="MRR of accounts paying again after churning")
    expansion_mrr: float
    contraction_mrr: float
    churned_mrr: float
    customers_start: int
    customers_end: int
    customers_new: int
    customers_reactivated: int
    customers_churned: int = Field(
        description="Churns in the window (an account churning twice counts twice)"
    )
    logo_retention: float | None = Field(description="Customers at the start still customers at the end")
    net_revenue_retention: float | None
    gross_revenue_retention: float | None
    arpa: float | None = Field(description="mrr_end / customers_end")
    monthly_churn: float | None = Field(description="customers_churned / customers_start / months")
    ltv: float | None = Field(description="arpa x gross_margin / monthly_churn")
    marketing_spend: float | None = Field(description="Spend falling in the window (months prorated by day)")
    sales_cost: float | None = Field(description="Reps' monthly_cost and sales_cost_monthly over the window")
    cac: float | None = Field(description="(marketing_spend + sales_cost) / customers_new")
    cac_payback_months: float | None = Field(description="cac / (arpa x gross_margin)")
    ltv_to_cac: float | None


class SummaryOut(BaseModel):
    model_config = example(
        {
            **WINDOW_EXAMPLE,
            "settings": SETTINGS_EXAMPLE,
            "overall": FIGURES_EXAMPLE,
            "channels": {"paid_search": FIGURES_EXAMPLE},
        }
    )

    from_: FromDay
    to: ToDay
    as_of: AsOf
    settings: SettingsOut
    overall: FiguresOut
    channels: dict[str, FiguresOut] = Field(
        description="Per first-touch channel of the accounts (`unattributed` when unknown), and per "
        "channel with spend in the window"
    )
