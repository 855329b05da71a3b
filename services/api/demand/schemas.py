"""Request and response bodies of the demand-generation routes (SPEC 5.5, 5.6)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

from services.api.demand.service import ChannelStats, parse_month
from services.core.events import Channel

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
    model_config = ConfigDict(json_schema_extra={"examples": [CHANNEL_EXAMPLE]})

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

    @classmethod
    def of(cls, s: ChannelStats) -> ChannelStatsOut:
        return cls(
            leads=s.leads,
            mqls=s.mqls,
            sqls=s.sqls,
            deals_created=s.deals_created,
            deals_won=s.deals_won,
            revenue_won=s.revenue_won,
            lead_to_deal=s.lead_to_deal,
            lead_to_won=s.lead_to_won,
            revenue_per_lead=s.revenue_per_lead,
            speed_to_lead_median_s=s.speed_to_lead_median_s,
            spend=s.spend,
            cac=s.cac,
        )


class ChannelsOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "from": "2026-10-01",
                    "to": "2026-10-30",
                    "as_of": "2026-10-30T17:02:11Z",
                    "channels": {"organic_search": CHANNEL_EXAMPLE},
                }
            ]
        }
    )

    from_: date = Field(serialization_alias="from", description="First day of the window, inclusive")
    to: date = Field(description="Last day of the window, inclusive")
    as_of: datetime | None = Field(description="Newest event time folded for the tenant; null before any")
    channels: dict[str, ChannelStatsOut]

    @classmethod
    def of(
        cls, channels: dict[str, ChannelStats], *, start: date, end: date, as_of: datetime | None
    ) -> ChannelsOut:
        out = {name: ChannelStatsOut.of(s) for name, s in channels.items()}
        return cls(from_=start, to=end, as_of=as_of, channels=out)


class SpendIn(BaseModel):
    """Marketing spend of one channel in one calendar month, in the tenant's reporting currency."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"channel": "paid_search", "month": "2026-10", "amount": "12500.00"}]
        },
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
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"channel": "paid_search", "month": "2026-10", "amount": 12500.0}]}
    )

    channel: Channel
    month: str
    amount: float
