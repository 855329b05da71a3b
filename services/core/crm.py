"""CRM entity updates on the events topic: how ingest sends them and how the aggregator reads them.

A CRM reports its records one property at a time: HubSpot sends a deal's amount, its owner and its
stage as separate notifications, in no guaranteed order. Such a fact is not a buyer interaction, so it
is no BuyerEvent; the aggregator keeps it as entity state and attributes the CRM's deal and lead
events through that state by event time (services/aggregator/folds/crm.py).

Updates travel on the events topic beside the BuyerEvents, told apart by the `schema` header:

- header `schema: crm-update/1`
- key `"{tenant}:{entity_id}"` (one record's updates stay ordered on one partition)
- value, JSON: `tenant`, `source`, `entity` (`deal` | `contact`), `entity_id`, `property`, `value`
  (string or null), `occurred_at`, `update_id`, `received_at`, for `owner` the vendor identity
  `rep_alias: {kind, value}` that the aggregator resolves to a rep, and `attribution: crm_entity`
  when the vendor's events are attributed through the entity's state (services/core/events.py).

Properties and their values: `amount` (a decimal string >= 0), `owner` (the vendor's owner id),
`stage`, `lifecycle_stage` (the vendor's own names), `channel` (a SPEC channel: the contact's
original traffic source), `contact` (on a deal: the associated contact's id), and for a deal's
history (SPEC 5.8) `close_date` (a date `YYYY-MM-DD`, the expected close as the CRM has it) and
`forecast_category` (a SPEC category: `pipeline`, `best_case`, `commit`, `closed`, `omitted`). A null
value clears the property; folds read the properties they use and keep the others. `update_id` is
unique per tenant and stable across retried deliveries: it is the vendor notification's id with the
property appended (one notification may update several properties).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal, get_args

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.core import limits
from services.core.events import (
    AliasValue,
    Attribution,
    Channel,
    ForecastCategory,
    Id,
    RepAlias,
    Source,
    Tenant,
    Timestamp,
)
from services.core.limits import MAX_UPDATE_ID_LEN, Invalid

SCHEMA_HEADER = ("schema", b"crm-update/1")
ENTITIES = ("deal", "contact")
EntityKind = Literal["deal", "contact"]
EntityProperty = Literal[
    "amount", "owner", "stage", "lifecycle_stage", "channel", "contact", "close_date", "forecast_category"
]
PROPERTIES: tuple[EntityProperty, ...] = get_args(EntityProperty)

# The checks of the properties whose values have a format (the others are free text).
_VALUES: dict[str, limits.Check] = {
    "amount": limits.money,
    "channel": limits.choice(Channel),
    "close_date": limits.calendar_date,
    "forecast_category": limits.choice(get_args(ForecastCategory)),
}


@dataclass(frozen=True)
class EntityUpdate:
    """A CRM fact that is not itself a BuyerEvent (a deal's amount, a contact's owner or channel), as a
    vendor adapter produces it. `value` is normalised: a decimal string for `amount`, a Channel value
    for `channel`, a `YYYY-MM-DD` date for `close_date`, a SPEC category for `forecast_category`;
    `event_id` is the vendor notification's id (see `update_id`)."""

    entity: EntityKind
    entity_id: str
    property: EntityProperty
    value: str | None
    occurred_at: datetime
    event_id: str
    rep_alias: RepAlias | None = None


class CrmUpdateMessage(BaseModel):
    """The message value, validated the same way on both sides of the topic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: Tenant
    source: Source
    entity: EntityKind
    entity_id: Id
    property: EntityProperty
    value: AliasValue | None = None  # as long as the longest: an owner's vendor identity
    occurred_at: Timestamp
    update_id: Annotated[str, Field(min_length=1, max_length=MAX_UPDATE_ID_LEN)]
    received_at: Timestamp
    rep_alias: RepAlias | None = None
    attribution: Attribution | None = None  # the entity's owner decides its events' rep (events.py)

    @model_validator(mode="after")
    def _values(self) -> CrmUpdateMessage:
        check = _VALUES.get(self.property)
        if check is not None and self.value is not None:
            try:
                check(self.value)
            except Invalid as exc:
                raise ValueError(f"the value of {self.property} {exc.reason}") from None
        return self


@dataclass(slots=True)
class CrmUpdate:
    """One decoded update, as the aggregator folds it. `rep_id` is set once the owner identity resolves."""

    tenant: str
    update_id: str
    source: str
    entity: str
    entity_id: str
    property: str
    value: str | None
    occurred_at: datetime
    received_at: datetime
    rep_alias: tuple[str, str] | None = None
    rep_id: str | None = None
    attribution: str | None = None


class CrmMessageError(ValueError):
    """A message that is no valid `crm-update/1` value; `reason` uses the aggregator's DLQ reasons."""

    def __init__(
        self, reason: Literal["invalid_json", "missing_field", "invalid_field"], detail: str
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def update_id(event_id: str, prop: str) -> str:
    return f"{event_id}:{prop}"


def kafka_key(tenant: str, entity_id: str) -> bytes:
    return f"{tenant}:{entity_id}".encode()


def to_message(
    update: EntityUpdate,
    tenant: str,
    source: Source,
    received_at: datetime,
    attribution: Attribution | None = None,
) -> bytes:
    """The Kafka value of one vendor entity update; ValueError if it is not a valid update."""
    message = CrmUpdateMessage(
        tenant=tenant,
        source=source,
        entity=update.entity,
        entity_id=update.entity_id,
        property=update.property,
        value=update.value,
        occurred_at=update.occurred_at,
        update_id=update_id(update.event_id, update.property),
        received_at=received_at,
        rep_alias=update.rep_alias,
        attribution=attribution,
    )
    return orjson.dumps(message.model_dump(mode="json", exclude_none=True))


def parse(value: bytes | None) -> CrmUpdate:
    """Validate one `crm-update/1` message value; CrmMessageError says why it cannot be folded."""
    if not value:
        raise CrmMessageError("invalid_json", "empty message")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise CrmMessageError("invalid_json", str(exc)) from None
    if not isinstance(data, dict):
        raise CrmMessageError("invalid_json", "not a JSON object")
    try:
        m = CrmUpdateMessage.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "message"
        reason: Literal["missing_field", "invalid_field"] = (
            "missing_field" if err.get("type") == "missing" else "invalid_field"
        )
        raise CrmMessageError(reason, f"{where}: {err.get('msg', 'invalid')}") from None
    alias = (m.rep_alias.kind, m.rep_alias.value) if m.rep_alias is not None else None
    return CrmUpdate(
        m.tenant,
        m.update_id,
        m.source.value,
        m.entity,
        m.entity_id,
        m.property,
        m.value,
        m.occurred_at,
        m.received_at,
        alias,
        attribution=m.attribution,
    )


def amount_value(text: str) -> Decimal | None:
    """A decimal amount as the aggregator stores it (at most 4 places); None if `text` is no amount."""
    try:
        return limits.money(text)
    except Invalid:
        return None
