"""HubSpot webhooks API: request signatures and CRM object events.

Signature v3 (every app since 2021): base64(HMAC-SHA256(app secret, method + uri + body + timestamp)),
the timestamp being `X-HubSpot-Request-Timestamp` in milliseconds, refused beyond 5 minutes either way.
HubSpot signs the URI with these escapes decoded: %3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B.
v1/v2 (`X-HubSpot-Signature`, hex SHA-256 of secret + body / secret + method + uri + body) carry no
timestamp, so they can be replayed forever; they are accepted only with the `legacy_signatures` option.

The body is a JSON array of notifications. A fact a record has once, its creation, its win or loss,
a contact's qualification as MQL or SQL, is named by the record and the fact
(`hubspot:deal:{objectId}:deal.won`, services.core.crm_values.hubspot_fact_id), as `salesloop import`
names it from an export, so the fact counts once whether it was imported, notified, or both, in either
order, and however many notifications report it (a deal won, reopened and won again is one win, at the
first); each win or loss is also the deal's stage update, so the deal's history (SPEC 5.8) closes a deal
reopened and closed again. Stage changes and property changes are named by notification: HubSpot says
`eventId` alone is not guaranteed unique, so the id combines it with the portal, subscription and
object, all stable across retries (only `attemptNumber` changes, and it is left out). Every event keeps
its notification in `attributes.hubspot_notification_id`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, time
from decimal import Decimal, InvalidOperation
from typing import Any

from services.core import limits
from services.core.crm import EntityKind, EntityProperty, EntityUpdate
from services.core.crm_values import HUBSPOT_SOURCES as CHANNELS
from services.core.crm_values import forecast_category, hubspot_fact_id
from services.core.events import Channel, EventType, RepAlias, Source
from services.core.source_settings import OptionSet, channel_map, flag, strings

from .common import (
    InboundRequest,
    MappingContext,
    Normalised,
    PayloadError,
    SignatureError,
    VendorEvent,
)
from .kit import (
    channel_for,
    check_signed_time,
    equal,
    from_epoch,
    header,
    json_objects,
    make_event,
    rep_identity,
    text,
)
from .registry import Vendor

SIGNATURE_V3 = "X-HubSpot-Signature-v3"
TIMESTAMP = "X-HubSpot-Request-Timestamp"
SIGNATURE_LEGACY = "X-HubSpot-Signature"
SIGNATURE_VERSION = "X-HubSpot-Signature-Version"

_SIGNED_ESCAPES = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)
# Generic `object.*` subscriptions name the object type by id instead of in the subscription type.
_OBJECT_TYPES = {"0-1": "contact", "0-3": "deal"}
_QUALIFIED = {"marketingqualifiedlead": "mql", "salesqualifiedlead": "sql"}
# A deal's forecast category: the one HubSpot's forecast tool derives from the stage and the one reps set
# by hand; a portal subscribes to the one its forecast uses.
FORECAST_PROPERTIES = frozenset({"hs_forecast_category", "hs_manual_forecast_category"})
_FORECAST_VALUES = "OMIT, PIPELINE, BEST_CASE, COMMIT or CLOSED"
_CLOSE_DATE_FORMAT = "must be a date: milliseconds since the Unix epoch, or ISO 8601"
_NAMES = {
    "occurred_at": "occurredAt",
    "contact_id": "objectId",
    "deal_id": "objectId",
    "stage": "propertyValue",
}


@dataclass(frozen=True)
class HubSpotOptions:
    """A tenant's HubSpot options; stage ids are compared exactly, lead-source values ignoring case."""

    won_stages: frozenset[str] = strings("deal stage ids that mean won", "closedwon")
    lost_stages: frozenset[str] = strings("deal stage ids that mean lost", "closedlost")
    legacy_signatures: bool = flag("also accept v1/v2 signatures, which carry no timestamp")
    channel_overrides: Mapping[str, Channel] = channel_map("hs_analytics_source values")  # before CHANNELS


SETTINGS = OptionSet.of(HubSpotOptions, disjoint=("won_stages", "lost_stages"))
DEFAULTS = HubSpotOptions()


def signed_uri(url: str) -> str:
    return _SIGNED_ESCAPES.sub(lambda m: chr(int(m.group(1), 16)), url)


def sign_v3(secret: str, method: str, url: str, body: bytes, timestamp: str) -> str:
    message = method.upper().encode() + signed_uri(url).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def sign_legacy(secret: str, version: str, method: str, url: str, body: bytes) -> str:
    if version == "v1":
        return hashlib.sha256(secret.encode() + body).hexdigest()
    return hashlib.sha256(secret.encode() + method.upper().encode() + url.encode() + body).hexdigest()


def verify(request: InboundRequest, secret: str, options: HubSpotOptions = DEFAULTS) -> None:
    signature = header(request.headers, SIGNATURE_V3)
    if signature is None:
        _verify_legacy(request, secret, options.legacy_signatures)
        return
    sent_at = header(request.headers, TIMESTAMP)
    timestamp = check_signed_time(sent_at, TIMESTAMP, request.now, unit="ms")
    if not equal(sign_v3(secret, request.method, request.url, request.body, timestamp), signature.strip()):
        raise SignatureError("signature does not match")


def _verify_legacy(request: InboundRequest, secret: str, allow_legacy: bool) -> None:
    signature = header(request.headers, SIGNATURE_LEGACY)
    if not allow_legacy or signature is None:
        raise SignatureError(f"missing {SIGNATURE_V3} header")
    version = (header(request.headers, SIGNATURE_VERSION) or "v1").strip().lower()
    if version not in ("v1", "v2"):
        raise SignatureError(f"unsupported {SIGNATURE_VERSION} {version[:10]!r}")
    expected = sign_legacy(secret, version, request.method, request.url, request.body)
    if not equal(expected, signature.strip().lower()):
        raise SignatureError("signature does not match")


def parse(body: bytes) -> list[dict[str, Any]]:
    return json_objects(body, "HubSpot notifications")


def to_events(
    payload: list[dict[str, Any]], ctx: MappingContext, options: HubSpotOptions = DEFAULTS
) -> Normalised:
    events: list[VendorEvent] = []
    updates: list[EntityUpdate] = []
    ignored = 0
    for i, item in enumerate(payload):
        got_events, got_updates = _notification(item, i, ctx, options)
        events.extend(got_events)
        updates.extend(got_updates)
        ignored += not (got_events or got_updates)
    return Normalised(events=events, ignored=ignored, entity_updates=updates)


def _notification(
    item: dict[str, Any], i: int, ctx: MappingContext, options: HubSpotOptions
) -> tuple[list[VendorEvent], list[EntityUpdate]]:
    kind, action = _kind(item, i)
    if kind in ("contact", "deal") and action == "associationChange":
        return [], _deal_contact(item, i)
    if kind not in ("contact", "deal") or action not in ("creation", "propertyChange"):
        return [], []
    object_id = _required(item, "objectId", i)
    portal, number = _required(item, "portalId", i), _required(item, "eventId", i)
    event_id = f"hubspot:{portal}:{number}:{_id(item, 'subscriptionId')}:{object_id}"
    occurred_at = from_epoch(_raw(item, "occurredAt", i), unit="ms", field="occurredAt", index=i)
    attributes = {**_attributes(item), "hubspot_notification_id": event_id}
    base: dict[str, Any] = {"event_id": event_id, "occurred_at": occurred_at, "attributes": attributes}
    base["contact_id" if kind == "contact" else "deal_id"] = object_id

    def once(type_: EventType, fact: str | None = None) -> VendorEvent:
        """The record's fact `type_`, named by the record and the fact (module docstring)."""
        fields = {**base, "event_id": hubspot_fact_id(kind, object_id, fact or type_.value)}
        return make_event(ctx, index=i, names=_NAMES, type=type_, **fields)

    if action == "creation":
        return [once(EventType.LEAD_CREATED if kind == "contact" else EventType.DEAL_CREATED)], []

    prop = text(item.get("propertyName"))
    if prop is None:
        raise PayloadError("propertyName", "is required for a propertyChange notification", i)
    value = text(item.get("propertyValue"))

    entity: EntityKind = "contact" if kind == "contact" else "deal"

    def update(name: EntityProperty, new: str | None, alias: RepAlias | None = None) -> EntityUpdate:
        return EntityUpdate(entity, object_id, name, new, occurred_at, event_id, alias)

    if prop == "hubspot_owner_id":
        # An owner no rep can be (rep_identity) leaves the entity unassigned, not with its old owner.
        alias = rep_identity("hubspot_owner_id", value)
        return [], [update("owner", alias.value if alias else None, alias)]
    if kind == "contact" and prop == "lifecyclestage":
        got = []
        stage = _QUALIFIED.get((value or "").lower())
        if stage is not None:
            base["stage"] = stage
            got.append(once(EventType.LEAD_QUALIFIED, f"{EventType.LEAD_QUALIFIED.value}:{stage}"))
        return got, [update("lifecycle_stage", value)]
    if kind == "contact" and prop == "hs_analytics_source":
        channel = channel_for(value, CHANNELS, options.channel_overrides)
        return [], [update("channel", channel.value if channel else None)]
    if kind == "deal" and prop == "amount":
        return [], [update("amount", _amount(value, i))]
    if kind == "deal" and (history := _deal_history(prop, value, i, ctx)) is not None:
        return [], [update(*history)]
    if kind == "deal" and prop == "dealstage" and value is not None:
        base["stage"] = value
        if value in options.won_stages:
            return [once(EventType.DEAL_WON)], [update("stage", value)]
        if value in options.lost_stages:
            return [once(EventType.DEAL_LOST)], [update("stage", value)]
        return [make_event(ctx, index=i, names=_NAMES, type=EventType.DEAL_STAGE_CHANGED, **base)], []
    return [], []


def _deal_history(
    prop: str, value: str | None, i: int, ctx: MappingContext
) -> tuple[EntityProperty, str | None] | None:
    """The close date or forecast category a deal property change sets (a cleared one: None), else None."""
    if prop == "closedate":
        return "close_date", _close_date(value, i, ctx)
    if prop in FORECAST_PROPERTIES:
        category = forecast_category(value) if value is not None else None
        if value is not None and category is None:
            raise PayloadError("propertyValue", f"must be a forecast category: {_FORECAST_VALUES}", i)
        return "forecast_category", category
    return None


def _close_date(value: str | None, i: int, ctx: MappingContext) -> str | None:
    """`closedate` as the day HubSpot shows. It is a datetime property: HubSpot keeps a moment and shows
    it in the viewer's time zone, and a day picked in its date picker may be kept at any time of that
    day in the user's zone; so the day is the moment's in the tenant's zone. A moment at exactly
    midnight UTC is a day as HubSpot's API writes days (date properties must be midnight UTC), and is
    that UTC day whatever the tenant's zone."""
    if value is None:
        return None
    try:
        if value.isascii() and value.isdigit():
            moment = from_epoch(value, unit="ms", field="propertyValue", index=i)
        elif len(value) == 10:
            return limits.calendar_date(value).isoformat()
        else:
            moment = limits.timestamp(value)
        utc = moment.astimezone(UTC)
        day = utc.date() if utc.time() == time(0) else moment.astimezone(ctx.zone).date()
        return limits.calendar_date(day).isoformat()
    except (PayloadError, limits.Invalid, OverflowError):
        raise PayloadError("propertyValue", _CLOSE_DATE_FORMAT, i) from None


def _deal_contact(item: dict[str, Any], i: int) -> list[EntityUpdate]:
    """A deal-contact association: which contact (and so which lead channel) a deal belongs to."""
    association = (text(item.get("associationType")) or "").upper()
    if association not in ("DEAL_TO_CONTACT", "CONTACT_TO_DEAL"):
        return []
    source, target = _required(item, "fromObjectId", i), _required(item, "toObjectId", i)
    deal, contact = (source, target) if association == "DEAL_TO_CONTACT" else (target, source)
    removed = item.get("associationRemoved") is True
    portal, number = _required(item, "portalId", i), _required(item, "eventId", i)
    event_id = f"hubspot:{portal}:{number}:{_id(item, 'subscriptionId')}:{deal}"
    occurred_at = from_epoch(_raw(item, "occurredAt", i), unit="ms", field="occurredAt", index=i)
    return [EntityUpdate("deal", deal, "contact", None if removed else contact, occurred_at, event_id, None)]


def _kind(item: dict[str, Any], i: int) -> tuple[str, str]:
    # The documented field table calls it `eventType`; every payload HubSpot sends says `subscriptionType`.
    subscription = text(item.get("subscriptionType")) or text(item.get("eventType"))
    if subscription is None:
        raise PayloadError("subscriptionType", "is required", i)
    kind, _, action = subscription.partition(".")
    if kind == "object":
        kind = _OBJECT_TYPES.get(text(item.get("objectTypeId")) or "", "other")
    return kind, action


def _amount(value: str | None, i: int) -> str | None:
    if value is None:
        return None
    try:
        amount = Decimal(value.replace(",", ""))
    except InvalidOperation:
        raise PayloadError("propertyValue", "must be a decimal amount", i) from None
    if not amount.is_finite() or amount < 0:
        raise PayloadError("propertyValue", "must be a finite amount of at least 0", i)
    return str(amount)


def _attributes(item: dict[str, Any]) -> dict[str, Any]:
    kept = {
        "hubspot_subscription_type": text(item.get("subscriptionType")),
        "hubspot_change_source": text(item.get("changeSource")),
        "hubspot_source_id": text(item.get("sourceId")),
    }
    return {k: v for k, v in kept.items() if v is not None}


def _raw(item: dict[str, Any], name: str, i: int) -> Any:
    if item.get(name) is None:
        raise PayloadError(name, "is required", i)
    return item[name]


def _required(item: dict[str, Any], name: str, i: int) -> str:
    value = text(_raw(item, name, i))
    if value is None or len(value) > 40:
        raise PayloadError(name, "must be a HubSpot id", i)
    return value


def _id(item: dict[str, Any], name: str) -> str:
    value = text(item.get(name))
    return value[:40] if value else "-"


VENDOR = Vendor(
    Source.HUBSPOT,
    "HubSpot",
    __doc__,
    verify,
    parse,
    to_events,
    options=HubSpotOptions,
    settings=SETTINGS,
    # Deal and lead notifications name no rep, amount or channel: those are CRM entity state.
    attribution="crm_entity",
)
