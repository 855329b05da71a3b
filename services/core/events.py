"""BuyerEvent v1: the one canonical event every source is normalised to (SPEC sections 1, 2).

The models here document the schema and validate what vendor adapters build; their fields apply the
checks of services/core/limits.py, the ones the decoder (services/core/wire.py) applies to what
clients send and to what the aggregator folds, so the two accept the same events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from services.core import limits
from services.core.limits import (
    AMOUNT_PLACES,
    MAX_ALIAS_LEN,
    MAX_AMOUNT,
    MAX_ID_LEN,
    MAX_SCORE,
    MAX_SECONDS,
    MAX_SEGMENT_TEXT,
    MAX_STAGE_LEN,
    MAX_TENANT_LEN,
    MAX_TRANSCRIPT_SEGMENTS,
    Check,
    Invalid,
)

SCHEMA_HEADER = ("schema", b"buyer-event/1")


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


DEAL_TYPES = frozenset(
    {
        EventType.DEAL_CREATED,
        EventType.DEAL_STAGE_CHANGED,
        EventType.DEAL_UPDATED,
        EventType.DEAL_WON,
        EventType.DEAL_LOST,
    }
)
LEAD_TYPES = frozenset({EventType.LEAD_CREATED, EventType.LEAD_QUALIFIED})
SUBSCRIPTION_TYPES = frozenset(
    {EventType.SUBSCRIPTION_STARTED, EventType.SUBSCRIPTION_CHANGED, EventType.SUBSCRIPTION_CANCELED}
)

# What some types require besides the fields every event has (SPEC 1, 1.1).
LEAD_STAGES = ("mql", "sql")  # the stage of a lead.qualified
REQUIRED_BY_TYPE: dict[EventType, tuple[str, ...]] = {
    EventType.TRAINING_CERTIFICATION: ("module", "passed"),
    EventType.CALL_TRANSCRIBED: ("call_event_id", "transcript"),
    **dict.fromkeys(sorted(SUBSCRIPTION_TYPES), ("account_id", "mrr")),
}
_RULED_TYPES = frozenset({EventType.LEAD_QUALIFIED, *REQUIRED_BY_TYPE})


def type_problems(type_: EventType, get: Callable[[str], Any]) -> list[tuple[str, str]]:
    """(field, reason) for each rule of the event's type it breaks; `get` gives a field's value."""
    if type_ not in _RULED_TYPES:
        return []
    problems = []
    if type_ is EventType.LEAD_QUALIFIED and get("stage") not in LEAD_STAGES:
        problems.append(("stage", "must be 'mql' or 'sql' for lead.qualified"))
    problems += [
        (name, f"is required for {type_}") for name in REQUIRED_BY_TYPE.get(type_, ()) if get(name) is None
    ]
    return problems


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
    FATHOM = "fathom"


# Set by ingest on the events of a vendor that leaves their rep, amount and channel to CRM entity
# state (services/core/crm.py): where such an event belongs to a deal or a contact, the aggregator
# attributes it through that entity's state, by event time.
Attribution = Literal["crm_entity"]


Direction = Literal["inbound", "outbound"]
Outcome = Literal["connected", "no_answer", "voicemail", "busy", "failed"]
ForecastCategory = Literal["pipeline", "best_case", "commit", "closed", "omitted"]
Speaker = Literal["rep", "buyer"]
AliasKind = Literal["hubspot_owner_id", "salesforce_user_id", "phone", "email", "aircall_user_id"]
ALIAS_KINDS: tuple[AliasKind, ...] = get_args(AliasKind)


def _applies(check: Check) -> BeforeValidator:
    """A field validator that runs `check` first: pydantic's own constraints then only document it."""

    def validate(value: Any) -> Any:
        try:
            return check(value)
        except Invalid as exc:
            raise PydanticCustomError("invalid", "{reason}", {"reason": _reason(exc)}) from None

    return BeforeValidator(validate)


def _reason(exc: Invalid) -> str:
    return f"{'.'.join(exc.path)}: {exc.reason}" if exc.path else exc.reason


def _text(max_len: int) -> tuple[Any, BeforeValidator]:
    return Field(min_length=1, max_length=max_len), _applies(limits.text(max_len))


Id = Annotated[str, *_text(MAX_ID_LEN)]
RepId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LEN), _applies(limits.rep_id)]
Stage = Annotated[str, *_text(MAX_STAGE_LEN)]
AliasValue = Annotated[str, *_text(MAX_ALIAS_LEN)]
Tenant = Annotated[str, *_text(MAX_TENANT_LEN)]
Timestamp = Annotated[AwareDatetime, _applies(limits.timestamp)]
CloseDate = Annotated[date, _applies(limits.calendar_date)]
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False), _applies(limits.seconds)]
Score = Annotated[float, Field(ge=0, le=MAX_SCORE, allow_inf_nan=False), _applies(limits.score)]
Flag = Annotated[bool, _applies(limits.flag)]
Money = Annotated[
    Decimal,
    Field(ge=0, le=MAX_AMOUNT, decimal_places=AMOUNT_PLACES, allow_inf_nan=False),
    _applies(limits.exact_money),
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$"), _applies(limits.currency_code)]


class TranscriptSegment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    speaker: Speaker
    start_s: Seconds
    end_s: Seconds
    text: Annotated[str, Field(max_length=MAX_SEGMENT_TEXT), _applies(limits.free_text)]


class BuyerEvent(BaseModel):
    """What a client may send. The service adds tenant, source and received_at (see `StoredEvent`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Id
    type: EventType
    occurred_at: Timestamp
    rep_id: RepId | None = None
    contact_id: Id | None = None
    account_id: Id | None = None
    deal_id: Id | None = None
    channel: Channel | None = None
    direction: Direction | None = None
    outcome: Outcome | None = None
    duration_s: Seconds | None = None
    rep_talk_s: Seconds | None = None
    buyer_talk_s: Seconds | None = None
    amount: Money | None = None
    currency: Currency | None = None
    stage: Stage | None = None
    module: Id | None = None
    score: Score | None = None
    passed: Flag | None = None
    call_event_id: Id | None = None
    close_date: CloseDate | None = None
    forecast_category: ForecastCategory | None = None
    mrr: Money | None = None
    transcript: Annotated[list[TranscriptSegment], Field(max_length=MAX_TRANSCRIPT_SEGMENTS)] | None = None
    attributes: dict[str, Any] | None = None

    @field_validator("occurred_at")
    @classmethod
    def _not_in_far_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        return limits.not_ahead(value, (info.context or {}).get("now") or datetime.now(UTC))

    @field_validator("currency")
    @classmethod
    def _tenant_currency(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        return limits.tenant_currency(value, (info.context or {}).get("currency"))

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        try:
            return limits.attributes(value)
        except Invalid as exc:
            raise ValueError(_reason(exc)) from None

    @model_validator(mode="after")
    def _type_rules(self) -> BuyerEvent:
        problems = type_problems(self.type, lambda name: getattr(self, name))
        if problems:
            raise ValueError("; ".join(f"{name} {reason}" for name, reason in problems))
        return self


class RepAlias(BaseModel):
    """A vendor identity of the rep (e.g. a HubSpot owner id), resolved to `rep_id` by the aggregator."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: AliasKind
    value: AliasValue


class StoredEvent(BuyerEvent):
    """The event as it travels on Kafka and sits in the archive: service-set fields filled in."""

    rep_id: Id | None = None  # what the aggregator folds, also from before clients' ids had to be paths
    tenant: Tenant
    source: Source
    received_at: Timestamp
    rep_alias: RepAlias | None = None
    attribution: Attribution | None = None


@dataclass(frozen=True, slots=True)
class CheckedEvent:
    """A client's event as the decoder accepted it (services.core.wire.check_event): its JSON object,
    ready to be sent as is, which spares the hot path building and dumping a `BuyerEvent`."""

    body: Mapping[str, Any]
    rep_id: str | None
    contact_id: str | None


# An event validated and ready to send: built by a vendor adapter, or checked as a client sent it.
ValidEvent = BuyerEvent | CheckedEvent


def kafka_key(tenant: str, rep_id: str | None, contact_id: str | None) -> bytes:
    return f"{tenant}:{rep_id or contact_id or '-'}".encode()


def to_message(
    event: ValidEvent,
    tenant: str,
    source: Source,
    received_at: datetime,
    rep_alias: RepAlias | None = None,
    attribution: Attribution | None = None,
) -> bytes:
    """The Kafka value: the event's JSON with the service-set fields filled in."""
    if isinstance(event, CheckedEvent):
        body = dict(event.body)
    else:
        body = event.model_dump(mode="json", exclude_none=True)
    body["tenant"] = tenant
    body["source"] = source.value
    body["received_at"] = received_at.isoformat()
    if rep_alias is not None:
        body["rep_alias"] = rep_alias.model_dump()
    if attribution is not None:
        body["attribution"] = attribution
    return orjson.dumps(body)
