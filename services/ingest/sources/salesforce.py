"""Salesforce Outbound Messages: a SOAP `notifications` envelope of up to 100 sObject snapshots, sent
to the endpoint URL with the tenant's token (`?token=...`).

Authenticity: the endpoint token in the URL, then the envelope's `OrganizationId`, optionally the
sender's address: `outbound_message.py`, which also reads the envelope.

A notification is a snapshot of the record's fields when a workflow rule fired, not a change, and a
rule may fire on every edit. So facts that happen once per record take an id from the record, not
from the notification: `salesforce:{record id}:deal.won` is the same id whichever notification first
showed the deal won, and re-edits or retries never count it twice. The Notification Id names the
entity updates (amount, owner, stage, close date, forecast category, channel, status) and is kept in
every event's attributes.

- Opportunity -> deal.created (at CreatedDate), then deal.won / deal.lost (IsWon / IsClosed, else the
  standard "Closed Won"/"Closed Lost" stage names) or deal.stage_changed once per stage; its amount,
  owner, stage, CloseDate and ForecastCategoryName as the deal's updates at LastModifiedDate, which
  is how the deal's history of close dates and categories is kept (SPEC 5.8).
- Lead -> lead.created (at CreatedDate), lead.qualified mql / sql by Status (the tenant's options)
  or sql once IsConverted.
- Task -> call.completed (TaskSubtype/Type Call), email.sent (Email, ListEmail), meeting.held (Type
  Meeting), for completed tasks only. Event -> meeting.booked (at CreatedDate), and meeting.held when
  the notification arrives after the meeting ended (reps edit a meeting after it took place).
The rep is OwnerId when it is a user (005...), as alias kind `salesforce_user_id`; queues are nobody.
Amounts in another currency than the tenant's (multi-currency orgs) are kept in the attributes only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from services.core import limits
from services.core.crm import EntityKind, EntityProperty, EntityUpdate
from services.core.crm_values import SALESFORCE_LEAD_SOURCES as CHANNELS
from services.core.crm_values import call_outcome, forecast_category
from services.core.events import Channel, EventType, Source
from services.core.source_settings import OptionSet, channel_map, flag, networks, strings

from .common import (
    InboundRequest,
    MappingContext,
    Normalised,
    PayloadError,
    VendorEvent,
)
from .kit import channel_for, fingerprint, make_event, rep_identity
from .outbound_message import (
    ACK,
    ACK_CONTENT_TYPE,
    Notification,
    OutboundMessage,
    authenticate,
    check_secret,
    decoy,
    parse,
    url_secret,
)
from .registry import Answer, Vendor

_MAX_STAGE = 100
_CATEGORIES = "Pipeline, Best Case, Most Likely, Commit, Closed or Omitted"
# A record first seen without CreatedDate was created, as far as anyone here knows, when first seen.
_CREATED = ("CreatedDate", "LastModifiedDate", "SystemModstamp")


@dataclass(frozen=True)
class SalesforceOptions:
    """A tenant's Salesforce options. Salesforce has no standard MQL/SQL lead statuses; statuses are
    compared case-insensitively (kept lower-cased), and so are lead-source values."""

    mql_statuses: frozenset[str] = strings("Lead statuses that mean MQL", "marketing qualified", "mql")
    sql_statuses: frozenset[str] = strings("Lead statuses that mean SQL", "sales qualified", "sql")
    allowed_networks: tuple[str, ...] = networks("the addresses or CIDR networks Outbound Messages come from")
    channel_overrides: Mapping[str, Channel] = channel_map("LeadSource values")  # before CHANNELS
    accept_without_token: bool = flag(
        "also accept deliveries without the endpoint token, on the OrganizationId alone: insecure (the"
        " org id is no secret), for switching a tenant set up before tokens over only"
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "mql_statuses", frozenset(s.lower() for s in self.mql_statuses))
        object.__setattr__(self, "sql_statuses", frozenset(s.lower() for s in self.sql_statuses))


SETTINGS = OptionSet.of(SalesforceOptions, disjoint=("mql_statuses", "sql_statuses"), fold_case=True)


DEFAULTS = SalesforceOptions()


def ack_response() -> bytes:
    """The `notificationsResponse` Salesforce needs to stop redelivering; serve as ACK_CONTENT_TYPE."""
    return ACK


def verify(request: InboundRequest, secret: str, options: SalesforceOptions = DEFAULTS) -> None:
    """The sender's address when the tenant set `allowed_networks`, the endpoint token, the org id."""
    authenticate(
        request,
        secret,
        allowed_networks=options.allowed_networks,
        accept_without_token=options.accept_without_token,
    )


def to_events(
    message: OutboundMessage, ctx: MappingContext, options: SalesforceOptions = DEFAULTS
) -> Normalised:
    mappers = {"Opportunity": _opportunity, "Lead": _lead, "Task": _task, "Event": _event}
    out = Normalised(events=[], ignored=0)
    ignored = 0
    for i, notification in enumerate(message.notifications):
        mapper = mappers.get(notification.sobject)
        before = len(out.events) + len(out.entity_updates)
        if mapper is not None:
            mapper(_Record(notification, i, ctx, options), out)
        ignored += len(out.events) + len(out.entity_updates) == before
    return Normalised(out.events, ignored, out.entity_updates)


class _Record:
    """One notification's sObject with typed, error-naming accessors."""

    def __init__(
        self, notification: Notification, index: int, ctx: MappingContext, options: SalesforceOptions
    ) -> None:
        self.n, self.i, self.ctx, self.options = notification, index, ctx, options
        record_id = self.get("Id")
        if record_id is None:
            raise PayloadError("sObject.Id", "is required", index)
        self.id = record_id
        owner = self.get("OwnerId")
        # 005 is the User key prefix; an owner may also be a queue (00G), which is no rep.
        self.alias = rep_identity("salesforce_user_id", owner) if owner and owner[:3] == "005" else None

    def get(self, name: str) -> str | None:
        value = self.n.fields.get(name)
        return (value.strip() or None) if value is not None else None

    def flag(self, name: str) -> bool | None:
        value = self.get(name)
        return None if value is None else value.lower() == "true"

    def when(self, *names: str) -> datetime:
        return self.first_time(names)[0]

    def first_time(self, names: tuple[str, ...]) -> tuple[datetime, str | None]:
        """The first of `names` that is set (and which), else the time the message was received."""
        for name in names:
            value = self.get(name)
            if value is None:
                continue
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise PayloadError(f"sObject.{name}", "must be an xsd:dateTime or xsd:date", self.i) from None
            return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)), name
        return self.ctx.received_at, None

    def day(self, name: str) -> str | None:
        value = self.get(name)
        if value is None:
            return None
        try:
            return limits.calendar_date(value).isoformat()
        except limits.Invalid as exc:
            raise PayloadError(f"sObject.{name}", exc.reason, self.i) from None

    def number(self, name: str) -> Decimal | None:
        value = self.get(name)
        if value is None:
            return None
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise PayloadError(f"sObject.{name}", "must be a number", self.i) from None
        if not number.is_finite() or number < 0:
            raise PayloadError(f"sObject.{name}", "must be a finite number of at least 0", self.i)
        return number

    def event(self, type_: EventType, fact: str, times: tuple[str, ...], **fields: Any) -> VendorEvent:
        """`times`: the fields that may hold the event time, first set one wins."""
        occurred_at, source = self.first_time(times)
        attributes = {"salesforce_notification_id": self.n.id, "salesforce_sobject": self.n.sobject}
        return make_event(
            self.ctx,
            index=self.i,
            names={"occurred_at": f"sObject.{source}"} if source else None,
            event_id=f"salesforce:{self.id}:{fact}",
            type=type_,
            occurred_at=occurred_at,
            attributes={**attributes, **fields.pop("attributes", {})},
            rep_alias=self.alias,
            **fields,
        )

    def update(self, entity: EntityKind, prop: EntityProperty, value: str | None) -> EntityUpdate:
        alias = self.alias if prop == "owner" else None
        occurred_at = self.when("LastModifiedDate", "SystemModstamp")
        return EntityUpdate(entity, self.id, prop, value, occurred_at, f"salesforce:{self.n.id}", alias)


def _opportunity(r: _Record, out: Normalised) -> None:
    stage = (r.get("StageName") or "")[:_MAX_STAGE] or None
    won, closed = r.flag("IsWon"), r.flag("IsClosed")
    if won is None and closed is None and stage is not None:
        won, closed = stage.lower() == "closed won", stage.lower() in ("closed won", "closed lost")
    amount, currency, attributes = r.number("Amount"), r.get("CurrencyIsoCode"), {}
    if amount is not None and currency is not None and currency != r.ctx.currency:
        attributes = {"amount_original": str(amount), "currency_original": currency}
        amount = None
    common: dict[str, Any] = {
        "deal_id": r.id,
        "account_id": r.get("AccountId"),
        "channel": channel_for(r.get("LeadSource"), CHANNELS, r.options.channel_overrides),
        "amount": amount,
        "currency": r.ctx.currency if amount is not None else None,
        "attributes": {**attributes, **({"close_date": r.get("CloseDate")} if r.get("CloseDate") else {})},
    }
    changed_at = ("LastModifiedDate", "SystemModstamp")
    out.events.append(r.event(EventType.DEAL_CREATED, "deal.created", _CREATED, **common))
    if won:
        out.events.append(r.event(EventType.DEAL_WON, "deal.won", changed_at, stage=stage, **common))
    elif closed:
        out.events.append(r.event(EventType.DEAL_LOST, "deal.lost", changed_at, stage=stage, **common))
    elif stage is not None:
        fact = f"stage:{stage}" if len(stage) <= 60 else f"stage:{fingerprint(stage)}"
        out.events.append(r.event(EventType.DEAL_STAGE_CHANGED, fact, changed_at, stage=stage, **common))
    if amount is not None:
        out.entity_updates.append(r.update("deal", "amount", str(amount)))
    if r.alias is not None:
        out.entity_updates.append(r.update("deal", "owner", r.alias.value))
    if stage is not None:
        out.entity_updates.append(r.update("deal", "stage", stage))
    out.entity_updates.extend(_deal_history(r))


def _deal_history(r: _Record) -> list[EntityUpdate]:
    """The close date and forecast category of the snapshot, for each the message carries (nil:
    cleared). Each notification is the record at its LastModifiedDate, so its values are history."""
    updates = []
    if "CloseDate" in r.n.fields:
        updates.append(r.update("deal", "close_date", r.day("CloseDate")))
    name = next((n for n in ("ForecastCategoryName", "ForecastCategory") if n in r.n.fields), None)
    if name is not None:
        value = r.get(name)
        category = forecast_category(value) if value is not None else None
        if value is not None and category is None:
            raise PayloadError(f"sObject.{name}", f"must be a forecast category: {_CATEGORIES}", r.i)
        updates.append(r.update("deal", "forecast_category", category))
    return updates


def _lead(r: _Record, out: Normalised) -> None:
    channel = channel_for(r.get("LeadSource"), CHANNELS, r.options.channel_overrides)
    converted = {
        "converted_contact_id": r.get("ConvertedContactId"),
        "converted_opportunity_id": r.get("ConvertedOpportunityId"),
    }
    common: dict[str, Any] = {
        "contact_id": r.id,
        "channel": channel,
        "attributes": {k: v for k, v in converted.items() if v is not None},
    }
    out.events.append(r.event(EventType.LEAD_CREATED, "lead.created", _CREATED, **common))
    status = (r.get("Status") or "").lower()
    stages = []
    if status in r.options.mql_statuses:
        stages.append("mql")
    if status in r.options.sql_statuses or r.flag("IsConverted"):
        stages.append("sql")
    for stage in stages:
        at = ("LastModifiedDate", "ConvertedDate", "SystemModstamp")
        out.events.append(
            r.event(EventType.LEAD_QUALIFIED, f"lead.qualified:{stage}", at, stage=stage, **common)
        )
    if r.alias is not None:
        out.entity_updates.append(r.update("contact", "owner", r.alias.value))
    if channel is not None:
        out.entity_updates.append(r.update("contact", "channel", channel.value))
    if r.get("Status") is not None:
        out.entity_updates.append(r.update("contact", "lifecycle_stage", r.get("Status")))


def _task(r: _Record, out: Normalised) -> None:
    closed = r.flag("IsClosed")
    if closed is False or (closed is None and (r.get("Status") or "Completed").lower() != "completed"):
        return
    subtype, kind = (r.get("TaskSubtype") or "").lower(), (r.get("Type") or "").lower()
    at = ("CompletedDateTime", "CreatedDate", "LastModifiedDate")
    links = _links(r)
    if subtype == "call" or kind == "call" or r.get("CallType") is not None:
        direction = {"inbound": "inbound", "outbound": "outbound"}.get((r.get("CallType") or "").lower())
        duration = r.number("CallDurationInSeconds")
        disposition = r.get("CallDisposition")
        attributes = {"call_disposition": disposition} if disposition else {}
        out.events.append(
            r.event(
                EventType.CALL_COMPLETED,
                "call.completed",
                at,
                direction=direction,
                outcome=call_outcome(disposition),
                duration_s=float(duration) if duration is not None else None,
                attributes=attributes,
                **links,
            )
        )
    elif subtype in ("email", "listemail") or kind == "email":
        out.events.append(r.event(EventType.EMAIL_SENT, "email.sent", at, direction="outbound", **links))
    elif kind == "meeting":
        out.events.append(r.event(EventType.MEETING_HELD, "meeting.held", at, **links))


def _event(r: _Record, out: Normalised) -> None:
    minutes = r.number("DurationInMinutes")
    duration_s = float(minutes) * 60 if minutes is not None else None
    links = _links(r)
    booked_at = ("CreatedDate", "LastModifiedDate")
    out.events.append(
        r.event(EventType.MEETING_BOOKED, "meeting.booked", booked_at, duration_s=duration_s, **links)
    )
    if r.get("StartDateTime") is None:
        return
    start = r.when("StartDateTime")
    end = r.when("EndDateTime") if r.get("EndDateTime") else start + timedelta(seconds=duration_s or 0)
    if end <= r.ctx.received_at:
        out.events.append(
            r.event(
                EventType.MEETING_HELD, "meeting.held", ("StartDateTime",), duration_s=duration_s, **links
            )
        )


def _links(r: _Record) -> dict[str, Any]:
    """WhoId is a lead or contact; WhatId may be an opportunity (006) or an account (001)."""
    what = r.get("WhatId") or ""
    return {
        "contact_id": r.get("WhoId"),
        "deal_id": what if what[:3] == "006" else None,
        "account_id": r.get("AccountId") or (what if what[:3] == "001" else None),
    }


VENDOR = Vendor(
    Source.SALESFORCE,
    "Salesforce",
    __doc__,
    verify,
    parse,
    to_events,
    media_types=("text/xml", "application/xml"),
    options=SalesforceOptions,
    settings=SETTINGS,
    answer=Answer(
        200, ACK_CONTENT_TYPE, "the SOAP `<Ack>true</Ack>`, once the broker acknowledged", lambda *_: ACK
    ),
    decoy=decoy,
    check_secret=check_secret,
    url_secret=url_secret,
)
