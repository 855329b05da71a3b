"""Request and response bodies of the reps routes (SPEC sections 4, 5.1, 5.6)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.config import JsonDict

from services.api.kit.answers import WINDOW_EXAMPLE, AsOf, FromDay, ToDay, example
from services.api.kit.routing import RepId
from services.core import limits
from services.core.limits import MAX_ALIAS_LEN, MAX_LABEL_LEN
from services.core.tenancy import TenancyError, validate_timezone


def _limit(check: limits.Check) -> AfterValidator:
    """A check of services/core/limits.py, run after pydantic's own (whitespace stripped, length)."""

    def validate(value: str) -> str:
        try:
            return str(check(value))
        except limits.Invalid as exc:
            raise ValueError(exc.reason) from None

    return AfterValidator(validate)


# The identities of a rep, checked as the wire format checks them (services.core.limits.identity).
AliasValue = Annotated[
    str, Field(min_length=1, max_length=MAX_ALIAS_LEN), _limit(limits.identity(MAX_ALIAS_LEN))
]
Label = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_LEN), _limit(limits.identity(MAX_LABEL_LEN))]
# The id a PUT names the rep by: one a URL path carries back as written. Reads take any RepId, so that
# reps registered before this rule stay readable.
NewRepId = Annotated[RepId, _limit(limits.rep_id)]

REP_EXAMPLE: JsonDict = {
    "rep_id": "r1",
    "name": "Ada Lovelace",
    "team": "east",
    "hired_at": "2026-01-05",
    "left_at": None,
    "timezone": "America/New_York",
    "quota_monthly": 50000.0,
    "monthly_cost": 12500.0,
    "active": True,
    "aliases": {
        "hubspot_owner_id": "31337",
        "salesforce_user_id": "0055e000001AbCd",
        "phone": "+14155550100",
        "email": "ada@example.com",
        "aircall_user_id": None,
    },
    "updated_at": "2026-11-02T09:30:00Z",
}

METRICS_EXAMPLE: JsonDict = {
    "dials": 120,
    "connects": 30,
    "connect_rate": 0.25,
    "talk_time_s": 8100.0,
    "talk_ratio": 0.46,
    "emails_sent": 40,
    "email_replies": 4,
    "reply_rate": 0.1,
    "emails_opened": 22,
    "emails_clicked": 6,
    "emails_bounced": 1,
    "open_rate": 0.55,
    "click_rate": 0.15,
    "bounce_rate": 0.025,
    "meetings_booked": 9,
    "meetings_held": 7,
    "meeting_rate": 0.3,
    "show_rate": 0.7777777777777778,
    "deals_created": 6,
    "deals_won": 2,
    "deals_lost": 1,
    "win_rate": 0.6666666666666666,
    "revenue_won": 48000.0,
    "avg_deal_size": 24000.0,
    "quota_attainment": 0.9740259740259741,
}


class Aliases(BaseModel):
    """The rep's identities in vendor systems; the aggregator resolves vendor events through them."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    hubspot_owner_id: AliasValue | None = None
    salesforce_user_id: AliasValue | None = None
    phone: AliasValue | None = None
    email: AliasValue | None = None
    aircall_user_id: AliasValue | None = None

    @field_validator("email")
    @classmethod
    def _looks_like_email(cls, value: str | None) -> str | None:
        if value is not None and "@" not in value:
            raise ValueError("must be an email address")
        return value


# A sum of money in the tenant's currency, as the wire format bounds amounts.
Amount = Annotated[Decimal, Field(ge=0, le=Decimal("1e15"), decimal_places=4, allow_inf_nan=False)]


class RepIn(BaseModel):
    """The whole rep: fields left out take their defaults (timezone: the tenant's)."""

    model_config = example(
        {
            "name": "Ada Lovelace",
            "team": "east",
            "hired_at": "2026-01-05",
            "left_at": None,
            "timezone": "America/New_York",
            "quota_monthly": "50000",
            "monthly_cost": "12500",
            "active": True,
            "aliases": {"hubspot_owner_id": "31337", "email": "ada@example.com"},
        },
        extra="forbid",
        str_strip_whitespace=True,
    )

    name: Label | None = None
    team: Label | None = None
    hired_at: date | None = None
    left_at: date | None = Field(
        None,
        description="The rep's first day away: from that day (rep's timezone) it counts as inactive. "
        "Not before hired_at",
    )
    timezone: Annotated[str, Field(max_length=64)] | None = None
    quota_monthly: Amount | None = None
    monthly_cost: Amount | None = Field(
        None, description="Fully loaded monthly cost (salary, commission, overhead) in the tenant's currency"
    )
    active: bool = True
    aliases: Aliases | None = None

    @field_validator("left_at")
    @classmethod
    def _not_before_hire(cls, value: date | None, info: ValidationInfo) -> date | None:
        hired_at = info.data.get("hired_at")
        if value is not None and hired_at is not None and value < hired_at:
            raise ValueError(f"must not be before hired_at ({hired_at.isoformat()})")
        return value

    @field_validator("timezone")
    @classmethod
    def _iana(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return validate_timezone(value)
        except TenancyError as exc:
            raise ValueError(str(exc)) from exc


class RepOut(BaseModel):
    model_config = example(REP_EXAMPLE)

    rep_id: str
    name: str | None
    team: str | None
    hired_at: date | None
    left_at: date | None
    timezone: str
    quota_monthly: float | None
    monthly_cost: float | None
    active: bool = Field(description="Set active and not yet gone: false from the left_at day on")
    aliases: Aliases
    updated_at: datetime


class RepList(BaseModel):
    model_config = example({"reps": [REP_EXAMPLE]})

    reps: list[RepOut]


class Metrics(BaseModel):
    """SPEC 5.1. A rate whose denominator is 0 is null."""

    model_config = example(METRICS_EXAMPLE)

    dials: int
    connects: int
    connect_rate: float | None
    talk_time_s: float
    talk_ratio: float | None
    emails_sent: int
    email_replies: int
    reply_rate: float | None
    emails_opened: int
    emails_clicked: int
    emails_bounced: int
    open_rate: float | None
    click_rate: float | None
    bounce_rate: float | None
    meetings_booked: int
    meetings_held: int
    meeting_rate: float | None
    show_rate: float | None
    deals_created: int
    deals_won: int
    deals_lost: int
    win_rate: float | None
    revenue_won: float
    avg_deal_size: float | None
    quota_attainment: float | None


class RepMetricsOut(BaseModel):
    model_config = example(
        {
            "rep_id": "r1",
            **WINDOW_EXAMPLE,
            "metrics": METRICS_EXAMPLE,
        }
    )

    rep_id: str
    from_: FromDay
    to: ToDay
    as_of: AsOf
    metrics: Metrics


class TeamMetricsOut(BaseModel):
    model_config = example(
        {
            "team": "east",
            "reps": ["r1", "r2", "r5"],
            **WINDOW_EXAMPLE,
            "metrics": METRICS_EXAMPLE,
        }
    )

    team: str
    reps: list[str]
    from_: FromDay
    to: ToDay
    as_of: AsOf
    metrics: Metrics
