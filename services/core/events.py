"""BuyerEvent v1: the one canonical event every source is normalised to (SPEC section 1)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

SCHEMA_HEADER = ("schema", b"buyer-event/1")
MAX_FUTURE = timedelta(hours=24)
MAX_ATTRIBUTES_BYTES = 16 * 1024


class EventType(StrEnum):
    CALL_COMPLETED = "call.completed"
    EMAIL_SENT = "email.sent"
    EMAIL_OPENED = "email.opened"
    EMAIL_CLICKED = "email.clicked"
    EMAIL_REPLIED = "email.replied"
    EMAIL_BOUNCED = "email.bounced"
    MEETING_BOOKED = "meeting.booked"
    MEETING_HELD = "meeting.held"
    MEETING_NO_SHOW = "meeting.no_show"
    LEAD_CREATED = "lead.created"
    LEAD_QUALIFIED = "lead.qualified"
    DEAL_CREATED = "deal.created"
    DEAL_STAGE_CHANGED = "deal.stage_changed"
    DEAL_WON = "deal.won"
    DEAL_LOST = "deal.lost"
    TRAINING_CERTIFICATION = "training.certification"
    # v2 (SPEC 5.7, 5.8, 5.10)
    CALL_TRANSCRIBED = "call.transcribed"
    DEAL_UPDATED = "deal.updated"
    SUBSCRIPTION_STARTED = "subscription.started"
    SUBSCRIPTION_CHANGED = "subscription.changed"
    SUBSCRIPTION_CANCELED = "subscription.canceled"


SUBSCRIPTION_TYPES = frozenset(
    {EventType.SUBSCRIPTION_STARTED, EventType.SUBSCRIPTION_CHANGED, EventType.SUBSCRIPTION_CANCELED}
)


class Channel(StrEnum):
    ORGANIC_SEARCH = "organic_search"
    PAID_SEARCH = "paid_search"
    PAID_SOCIAL = "paid_social"
    ORGANIC_SOCIAL = "organic_social"
    EMAIL_MARKETING = "email_marketing"
    REFERRAL = "referral"
    DIRECT = "direct"
    EVENTS = "events"
    CONTENT = "content"
    OUTBOUND = "outbound"
    PARTNER = "partner"
    OTHER = "other"


class Source(StrEnum):
    API = "api"
    HUBSPOT = "hubspot"
    SALESFORCE = "salesforce"
    TWILIO = "twilio"
    AIRCALL = "aircall"
    SENDGRID = "sendgrid"
    STRIPE = "stripe"


# Set by ingest on the events of a vendor that leaves their rep, amount and channel to CRM entity
# state (services/core/crm.py): where such an event belongs to a deal or a contact, the aggregator
# attributes it through that entity's state, by event time.
Attribution = Literal["crm_entity"]


Id = Annotated[str, Field(min_length=1, max_length=200)]
Seconds = Annotated[float, Field(ge=0, le=10_000_000, allow_inf_nan=False)]
Money = Annotated[Decimal, Field(ge=0, le=Decimal("1e15"), decimal_places=4, allow_inf_nan=False)]


class TranscriptSegment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    speaker: Literal["rep", "buyer"]
    start_s: Seconds
    end_s: Seconds
    text: str = Field(max_length=100_000)


class BuyerEvent(BaseModel):
    """What a client may send. The service adds tenant, source and received_at (see `StoredEvent`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Id
    type: EventType
    occurred_at: AwareDatetime
    rep_id: Id | None = None
    contact_id: Id | None = None
    account_id: Id | None = None
    deal_id: Id | None = None
    channel: Channel | None = None
    direction: Literal["inbound", "outbound"] | None = None
    outcome: Literal["connected", "no_answer", "voicemail", "busy", "failed"] | None = None
    duration_s: Seconds | None = None
    rep_talk_s: Seconds | None = None
    buyer_talk_s: Seconds | None = None
    amount: Money | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None
    stage: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    module: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    score: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None
    passed: bool | None = None
    call_event_id: Id | None = None
    close_date: date | None = None
    forecast_category: Literal["pipeline", "best_case", "commit", "closed", "omitted"] | None = None
    mrr: Money | None = None
    transcript: Annotated[list[TranscriptSegment], Field(max_length=10_000)] | None = None
    attributes: dict[str, Any] | None = None

    @field_validator("occurred_at")
    @classmethod
    def _not_in_far_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        now = (info.context or {}).get("now") or datetime.now(UTC)
        if value - now > MAX_FUTURE:
            raise ValueError("must not be more than 24 hours in the future")
        return value

    @field_validator("currency")
    @classmethod
    def _tenant_currency(cls, value: str | None, info: ValidationInfo) -> str | None:
        expected = (info.context or {}).get("currency")
        if value is not None and expected is not None and value != expected:
            raise ValueError(f"must be the tenant's reporting currency {expected}")
        return value

    @field_validator("attributes")
    @classmethod
    def _attributes_size(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        try:
            size = len(orjson.dumps(value))
        except orjson.JSONEncodeError as exc:  # e.g. nested deeper than JSON encoders go
            raise ValueError("must be serialisable JSON of reasonable depth") from exc
        if size > MAX_ATTRIBUTES_BYTES:
            raise ValueError("must be at most 16 KiB of JSON")
        return value

    @model_validator(mode="after")
    def _type_rules(self) -> BuyerEvent:
        if self.type is EventType.LEAD_QUALIFIED and self.stage not in ("mql", "sql"):
            raise ValueError("stage must be 'mql' or 'sql' for lead.qualified")
        if self.type is EventType.TRAINING_CERTIFICATION and (self.module is None or self.passed is None):
            raise ValueError("module and passed are required for training.certification")
        if self.type in SUBSCRIPTION_TYPES and (self.account_id is None or self.mrr is None):
            raise ValueError(f"account_id and mrr are required for {self.type.value}")
        if self.type is EventType.CALL_TRANSCRIBED and (
            self.call_event_id is None or self.transcript is None
        ):
            raise ValueError("call_event_id and transcript are required for call.transcribed")
        return self


ALIAS_KINDS = ("hubspot_owner_id", "salesforce_user_id", "phone", "email", "aircall_user_id")


class RepAlias(BaseModel):
    """A vendor identity of the rep (e.g. a HubSpot owner id), resolved to `rep_id` by the aggregator."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["hubspot_owner_id", "salesforce_user_id", "phone", "email", "aircall_user_id"]
    value: Annotated[str, Field(min_length=1, max_length=320)]


class StoredEvent(BuyerEvent):
    """The event as it travels on Kafka and sits in the archive: service-set fields filled in."""

    tenant: str
    source: Source
    received_at: AwareDatetime
    rep_alias: RepAlias | None = None
    attribution: Attribution | None = None


def kafka_key(tenant: str, rep_id: str | None, contact_id: str | None) -> bytes:
    return f"{tenant}:{rep_id or contact_id or '-'}".encode()


def to_message(
    event: BuyerEvent,
    tenant: str,
    source: Source,
    received_at: datetime,
    rep_alias: RepAlias | None = None,
    attribution: Attribution | None = None,
) -> bytes:
    """The Kafka value: the event's JSON with the service-set fields filled in."""
    body = event.model_dump(mode="json", exclude_none=True)
    body["tenant"] = tenant
    body["source"] = source.value
    body["received_at"] = received_at.isoformat()
    if rep_alias is not None:
        body["rep_alias"] = rep_alias.model_dump()
    if attribution is not None:
        body["attribution"] = attribution
    return orjson.dumps(body)
