"""Stripe webhooks: `Stripe-Signature` and subscription events.

The signature header is `t=<Unix seconds>,v1=<hex>[,v1=<hex>...]`, each `v1` the hex HMAC-SHA256 of
`"{t}.{raw body}"` keyed with the endpoint's signing secret (`whsec_...`, used as it is); while a
secret is being rolled Stripe signs with both, so any one `v1` may match. `t` must lie within 5
minutes of now (Stripe's own libraries refuse only old ones; a future one is as forged here as for
every other vendor). Each delivery is one event object, named by its id (`evt_...`) in every retry.

`customer.subscription.created` / `.updated` / `.deleted` become `subscription.started` / `.changed` /
`.canceled`, at the event's `created`, with `account_id` the subscription's `customer` and `mrr` its
monthly recurring revenue after the event, in the subscription's currency (which must be the tenant's):
- each item counts its price's `unit_amount` (else `unit_amount_decimal`) times `quantity`, in the
  currency's minor unit (divided by 1 for Stripe's zero-decimal currencies such as JPY, 1000 for the
  three-decimal ones, 100 for every other), normalised to a month by its `recurring.interval`
  and `interval_count`: a year is 12 months, a month 30.4375 days (SPEC 5.10), a week 7 days; the
  sum is rounded to 4 decimal places;
- as in Stripe's own billing analytics, only `active` and `past_due` subscriptions have MRR: a
  trialing, incomplete, unpaid, paused or canceled one has 0, and its items' value is kept in the
  attributes (`stripe_items_mrr`); metered and tiered prices have no fixed value and count 0
  (`stripe_unpriced_items` says how many), and discounts and taxes are not subtracted.
The subscription's `metadata.contact_id` (else the expanded customer's), when set, is the event's
`contact_id`: the CRM contact whose lead gives the account its first-touch channel (SPEC 5.10).
Every other event type is acknowledged and ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from decimal import Decimal, InvalidOperation
from typing import Any

from services.core.events import EventType, Source

from .common import InboundRequest, MappingContext, Normalised, PayloadError, SignatureError
from .kit import (
    check_signed_time,
    equal,
    from_epoch,
    header,
    json_object,
    make_event,
    required,
    text,
)
from .registry import Vendor

SIGNATURE = "Stripe-Signature"
SECRET_PREFIX = "whsec_"
_TYPES = {
    "customer.subscription.created": EventType.SUBSCRIPTION_STARTED,
    "customer.subscription.updated": EventType.SUBSCRIPTION_CHANGED,
    "customer.subscription.deleted": EventType.SUBSCRIPTION_CANCELED,
}
_PAYING = frozenset({"active", "past_due"})
# https://docs.stripe.com/currencies: amounts are in the currency's minor unit, except these.
_ZERO_DECIMAL = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)
_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
_DAYS_PER_MONTH = Decimal("30.4375")
_DAYS = {"day": Decimal(1), "week": Decimal(7), "month": _DAYS_PER_MONTH, "year": 12 * _DAYS_PER_MONTH}
_MAX_NUMBER = Decimal("1e15")
_MRR_PLACES = Decimal("0.0001")  # BuyerEvent money has at most 4 decimal places
_SUBSCRIPTION = "data.object"
_NAMES = {
    "event_id": "id",
    "occurred_at": "created",
    "account_id": f"{_SUBSCRIPTION}.customer",
    "currency": f"{_SUBSCRIPTION}.currency",
    "contact_id": f"{_SUBSCRIPTION}.metadata.contact_id",
}


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `v1` signature of `body` sent at `timestamp`, as Stripe computes it."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(request: InboundRequest, secret: str, options: None = None) -> None:
    value = header(request.headers, SIGNATURE)
    if not value:
        raise SignatureError(f"missing {SIGNATURE} header")
    timestamps, signatures = [], []
    for part in value.split(","):
        name, _, item = part.partition("=")
        if name.strip() == "t":
            timestamps.append(item.strip())
        elif name.strip() == "v1":
            signatures.append(item.strip())
    if not timestamps:
        raise SignatureError(f"{SIGNATURE} has no Unix timestamp t=")
    if not signatures:
        raise SignatureError(f"missing a v1 signature in {SIGNATURE}")
    sent_at = check_signed_time(timestamps[0], f"{SIGNATURE} t=", request.now, unit="s")
    expected = sign(secret, int(sent_at), request.body)
    if not any(equal(expected, signature) for signature in signatures):
        raise SignatureError("signature does not match")


def parse(body: bytes) -> dict[str, Any]:
    return json_object(body, "a Stripe event object")


def to_events(payload: dict[str, Any], ctx: MappingContext, options: None = None) -> Normalised:
    name = required(payload, "type")
    type_ = _TYPES.get(name)
    if type_ is None:
        return Normalised(events=[], ignored=1)
    data = payload.get("data")
    subscription = data.get("object") if isinstance(data, dict) else None
    if not isinstance(subscription, dict):
        raise PayloadError(_SUBSCRIPTION, "must be the subscription")
    currency = (text(subscription.get("currency")) or "").upper()
    if not currency:
        raise PayloadError(f"{_SUBSCRIPTION}.currency", "is required")
    items_mrr, unpriced = _items_mrr(subscription, currency)
    status = text(subscription.get("status"))
    attributes = {
        "stripe_event_type": name,
        "stripe_subscription_id": text(subscription.get("id")),
        "stripe_status": status,
        "stripe_livemode": payload.get("livemode") if isinstance(payload.get("livemode"), bool) else None,
        "stripe_items_mrr": str(items_mrr) if status not in _PAYING else None,
        "stripe_unpriced_items": unpriced or None,
    }
    event = make_event(
        ctx,
        names=_NAMES,
        event_id=f"stripe:{required(payload, 'id')}",
        type=type_,
        occurred_at=from_epoch(payload.get("created"), unit="s", field="created"),
        account_id=_customer(subscription.get("customer")),
        contact_id=_contact(subscription),
        mrr=items_mrr if status in _PAYING else Decimal(0),
        currency=currency,
        attributes={k: v for k, v in attributes.items() if v is not None},
    )
    return Normalised(events=[event], ignored=0)


def _items_mrr(subscription: dict[str, Any], currency: str) -> tuple[Decimal, int]:
    """The items' monthly value in major units of `currency`, and how many items have none."""
    items = subscription.get("items")
    listed = items.get("data") if isinstance(items, dict) else None
    if not isinstance(listed, list):
        raise PayloadError(f"{_SUBSCRIPTION}.items.data", "must be the list of subscription items")
    total, unpriced = Decimal(0), 0
    for i, item in enumerate(listed):
        monthly = _item_mrr(item, f"{_SUBSCRIPTION}.items.data.{i}")
        if monthly is None:
            unpriced += 1
        else:
            total += monthly
    minor = 1 if currency in _ZERO_DECIMAL else 1000 if currency in _THREE_DECIMAL else 100
    try:
        return (total / minor).quantize(_MRR_PLACES), unpriced
    except InvalidOperation:
        raise PayloadError(f"{_SUBSCRIPTION}.items.data", "add up to more than any MRR") from None


def _item_mrr(item: Any, where: str) -> Decimal | None:
    """An item's monthly value in minor units; None for a price with no fixed amount."""
    if not isinstance(item, dict):
        raise PayloadError(where, "must be a subscription item")
    price = item.get("price")
    if isinstance(price, dict):
        where, recurring = f"{where}.price", price.get("recurring")
        amount = price.get("unit_amount"), price.get("unit_amount_decimal")
    else:  # API versions before Prices know only the item's Plan
        price = item.get("plan")
        if not isinstance(price, dict):
            raise PayloadError(f"{where}.price", "is required")
        where, recurring = f"{where}.plan", price
        amount = price.get("amount"), price.get("amount_decimal")
    if not isinstance(recurring, dict):
        raise PayloadError(f"{where}.recurring", "must be a recurring price")
    if recurring.get("usage_type") == "metered":
        return None
    unit = _number(amount[0] if amount[0] is not None else amount[1], f"{where}.unit_amount")
    if unit is None:
        return None
    days = _DAYS.get(str(recurring.get("interval")))
    if days is None:
        raise PayloadError(f"{where}.recurring.interval", "must be day, week, month or year")
    count = _number(recurring.get("interval_count", 1), f"{where}.recurring.interval_count")
    if not count:
        raise PayloadError(f"{where}.recurring.interval_count", "must be at least 1")
    # Only metered items have no quantity, and those have returned above.
    quantity = _number(item.get("quantity"), f"{where.rpartition('.')[0]}.quantity")
    return unit * (1 if quantity is None else quantity) * _DAYS_PER_MONTH / (days * count)


def _number(value: Any, where: str) -> Decimal | None:
    if value is None:
        return None
    try:
        number = Decimal(str(value)) if not isinstance(value, bool) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or not 0 <= number <= _MAX_NUMBER:
        raise PayloadError(where, f"must be a number from 0 to {_MAX_NUMBER:.0e}")
    return number


def _customer(value: Any) -> str:
    """The customer's id; an expanded Customer object carries it as `id`."""
    customer = text(value.get("id")) if isinstance(value, dict) else text(value)
    if customer is None:
        raise PayloadError(f"{_SUBSCRIPTION}.customer", "is required")
    return customer


def _contact(subscription: dict[str, Any]) -> str | None:
    """The CRM contact the subscription's (else its expanded customer's) metadata names."""
    customer = subscription.get("customer")
    for owner in (subscription, customer if isinstance(customer, dict) else {}):
        metadata = owner.get("metadata")
        found = text(metadata.get("contact_id")) if isinstance(metadata, dict) else None
        if found:
            return found
    return None


def check_secret(secret: str) -> None:
    """ValueError unless the secret looks like an endpoint's signing secret."""
    if not secret.startswith(SECRET_PREFIX) or len(secret) <= len(SECRET_PREFIX):
        raise ValueError(
            f"the Stripe secret is the webhook endpoint's signing secret ({SECRET_PREFIX}...),"
            " shown on the endpoint's page in Stripe"
        )


def _secret_decoy() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


VENDOR = Vendor(
    Source.STRIPE, "Stripe", __doc__, verify, parse, to_events, decoy=_secret_decoy, check_secret=check_secret
)
