"""Request and response bodies of the demand-generation routes (SPEC 5.5, 5.6)."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field, field_validator
from pydantic.config import JsonDict

from services.api.kit.answers import WINDOW_EXAMPLE, AsOf, FromDay, ToDay, example
from services.core.events import Channel

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def parse_month(text: str) -> date:
    """ "2026-03" -> date(2026, 3, 1); ValueError for anything else."""
    match = _MONTH.match(text)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError("must be a month as YYYY-MM")
    return date(int(match.group(1)), int(match.group(2)), 1)


def month_key(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


CHANNEL_EXAMPLE: JsonDict = {
    "leads": 40,
    "mqls": 12,
    "sqls": 6,
    "deals_created": 5,
    "deals_won": 2,
    "revenue_won": 24000.0,
    "lead_to_deal": 0.125,
    "lead_to_won": 0.05,
    "revenue_per_lead": 600.0,
    "speed_to_lead_median_s": 540.0,
    "spend": 3000.0,
    "cac": 1500.0,
}


class ChannelStatsOut(BaseModel):
    model_config = example(CHANNEL_EXAMPLE)

    leads: int
    mqls: int
    sqls: int
    deals_created: int
    deals_won: int
    revenue_won: float
    lead_to_deal: float | None
    lead_to_won: float | None
    revenue_per_lead: float | None
    speed_to_lead_median_s: float | None = Field(
        description="Median seconds from lead.created to the first call, email or meeting booked"
    )
    spend: float | None = Field(description="Spend falling in the window (months prorated by day)")
    cac: float | None = Field(description="spend / deals_won; null without spend or deals won")


class ChannelsOut(BaseModel):
    model_config = example(
        {
            **WINDOW_EXAMPLE,
            "channels": {"organic_search": CHANNEL_EXAMPLE},
        }
    )

    from_: FromDay
    to: ToDay
    as_of: AsOf
    channels: dict[str, ChannelStatsOut]


class SpendIn(BaseModel):
    """Marketing spend of one channel in one calendar month, in the tenant's reporting currency."""

    model_config = example(
        {"channel": "paid_search", "month": "2026-10", "amount": "12500.00"}, extra="forbid"
    )

    channel: Channel
    month: str = Field(description="Calendar month as YYYY-MM", examples=["2026-10"])
    amount: Annotated[Decimal, Field(ge=0, le=Decimal("1e15"), decimal_places=4, allow_inf_nan=False)]

    @field_validator("month")
    @classmethod
    def _month(cls, value: str) -> str:
        parse_month(value)
        return value


class SpendOut(BaseModel):
    model_config = example({"channel": "paid_search", "month": "2026-10", "amount": 12500.0})

    channel: Channel
    month: str
    amount: float
