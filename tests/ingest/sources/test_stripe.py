"""Stripe: requests signed by Stripe's own Python library, and subscription events mapped to MRR."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
import stripe

from services.ingest.sources import stripe as adapter
from services.ingest.sources.common import InboundRequest, PayloadError, SignatureError
from tests.ingest.sources.support import CTX, NOW, body, malformed, mapped, maps, refused

SECRET = "whsec_4eC39HqLyjWDarjtT1zdp7dc2f9Z0qX1"
URL = "https://hooks.salesloop.example/webhooks/stripe/acme"
EVENT = "stripe_subscription_updated.json"


def signed(payload: bytes, *, secret: str = SECRET, sent_at: datetime = NOW) -> InboundRequest:
    """A request as Stripe sends it: the header made by stripe-python's own test helper."""
    header = stripe.WebhookSignature.generate_signature_header(
        payload.decode(), secret, timestamp=int(sent_at.timestamp())
    )
    return InboundRequest("POST", URL, {"Stripe-Signature": header}, payload, NOW)


def test_a_request_signed_by_stripe_verifies_and_stripe_accepts_ours() -> None:
    adapter.verify(signed(body(EVENT)), SECRET)
    timestamp = int(NOW.timestamp())
    ours = f"t={timestamp},v1={adapter.sign(SECRET, timestamp, body(EVENT))}"
    assert stripe.WebhookSignature.verify_header(body(EVENT), ours, SECRET, tolerance=None)


def test_any_of_several_v1_signatures_may_match() -> None:
    request = signed(body(EVENT))
    good = request.headers["Stripe-Signature"]
    timestamp, v1 = good.split(",")
    old = stripe.WebhookSignature.generate_signature_header(
        body(EVENT).decode(), "whsec_rolled-away", timestamp=int(NOW.timestamp())
    ).split(",")[1]
    for header in (f"{timestamp},{old},{v1}", f"{timestamp},{v1},{old}", f"{timestamp},v0=abc,{v1}"):
        adapter.verify(InboundRequest("POST", URL, {"stripe-signature": header}, request.body, NOW), SECRET)
    with pytest.raises(SignatureError, match="does not match"):
        adapter.verify(
            InboundRequest("POST", URL, {"Stripe-Signature": f"{timestamp},{old}"}, request.body, NOW), SECRET
        )


def test_timestamp_tolerance_is_five_minutes_either_way() -> None:
    adapter.verify(signed(body(EVENT), sent_at=NOW - timedelta(minutes=5)), SECRET)
    adapter.verify(signed(body(EVENT), sent_at=NOW + timedelta(minutes=5)), SECRET)
    with pytest.raises(SignatureError, match="older than 5 minutes"):
        adapter.verify(signed(body(EVENT), sent_at=NOW - timedelta(minutes=5, seconds=1)), SECRET)
    with pytest.raises(SignatureError, match="in the future"):
        adapter.verify(signed(body(EVENT), sent_at=NOW + timedelta(minutes=5, seconds=1)), SECRET)


def _header(value: str | None) -> InboundRequest:
    headers = {} if value is None else {"Stripe-Signature": value}
    return InboundRequest("POST", URL, headers, body(EVENT), NOW)


def _modified() -> InboundRequest:
    """Signed by Stripe, then changed on the way: 12 seats became 1200."""
    request = signed(body(EVENT))
    return dataclasses.replace(request, body=request.body.replace(b'"quantity": 12', b'"quantity": 1200'))


REFUSED = {
    "wrong-secret": (signed(body(EVENT), secret="whsec_another-endpoint"), "does not match"),
    "modified-body": (_modified(), "does not match"),
    "no-header": (_header(None), "missing Stripe-Signature"),
    "empty-header": (_header(""), "missing Stripe-Signature"),
    "no-t": (_header("v1=abc"), "no Unix timestamp"),
    "bad-t": (_header("t=soon,v1=abc"), "not a Unix timestamp"),
    "no-v1": (_header(f"t={int(NOW.timestamp())}"), "missing a v1 signature"),
}


@pytest.mark.parametrize(("delivery", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_refused(delivery: InboundRequest, reason: str) -> None:
    refused(adapter.VENDOR, delivery, SECRET, reason)


def test_subscription_updated() -> None:
    # 12 seats at 49.00 a month, a 2,400.00 yearly platform fee, and metered minutes (no fixed value):
    # MRR 788.0000 for customer cus_QhX4m2LkZ9aB7c.
    assert maps(adapter.VENDOR, EVENT) == mapped(EVENT)


def _event(type_: str = "customer.subscription.created", **subscription: Any) -> dict[str, Any]:
    event: dict[str, Any] = copy.deepcopy(orjson.loads(body(EVENT)))
    event["type"] = type_
    event["data"]["object"].update(subscription)
    return event


def _item(unit_amount: Any, interval: str, *, count: int = 1, quantity: int | None = 1) -> dict[str, Any]:
    price = {"unit_amount": unit_amount, "recurring": {"interval": interval, "interval_count": count}}
    return {"price": price, **({"quantity": quantity} if quantity is not None else {})}


def _mrr(*items: dict[str, Any], currency: str = "usd", status: str = "active") -> Decimal | None:
    ctx = CTX if currency == "usd" else type(CTX)(currency=currency.upper(), received_at=NOW)
    event = _event(items={"data": list(items)}, currency=currency, status=status)
    [mapped] = adapter.to_events(event, ctx).events
    return mapped.event.mrr


def test_mrr_normalises_every_interval_to_a_month() -> None:
    assert _mrr(_item(1200, "month", quantity=3)) == Decimal("36.0000")
    assert _mrr(_item(120000, "year")) == Decimal("100.0000")
    assert _mrr(_item(30000, "month", count=3)) == Decimal("100.0000")
    assert _mrr(_item(240000, "year", count=2)) == Decimal("100.0000")
    # A month is 30.4375 days: 365.25 / 12.
    assert _mrr(_item(700, "week")) == Decimal("30.4375")
    assert _mrr(_item(100, "day")) == Decimal("30.4375")
    assert _mrr(_item(1000, "month", count=3)) == Decimal("3.3333")
    assert _mrr(_item(1000, "month"), _item(1000, "month", quantity=0)) == Decimal("10.0000")
    assert _mrr() == Decimal("0.0000")


def test_amounts_are_read_in_the_currency_minor_unit() -> None:
    assert _mrr(_item(5000, "month"), currency="jpy") == Decimal("5000.0000")
    assert _mrr(_item(5120, "month"), currency="kwd") == Decimal("5.1200")
    assert _mrr(_item(5000, "month"), currency="eur") == Decimal("50.0000")


def test_a_decimal_unit_amount_or_a_legacy_plan_counts_too() -> None:
    fractional = {
        "price": {"unit_amount": None, "unit_amount_decimal": "12.5", "recurring": {"interval": "month"}}
    }
    assert _mrr({**fractional, "quantity": 100}) == Decimal("12.5000")
    plan = {"plan": {"amount": 9900, "interval": "month", "interval_count": 1}, "quantity": 1}
    assert _mrr(plan) == Decimal("99.0000")


def test_only_active_and_past_due_subscriptions_have_mrr() -> None:
    seats = _item(4900, "month", quantity=2)
    assert _mrr(seats, status="past_due") == Decimal("98.0000")
    for status in ("trialing", "incomplete", "unpaid", "paused", "canceled"):
        assert _mrr(seats, status=status) == Decimal(0), status
    event = _event("customer.subscription.deleted", items={"data": [seats]}, status="canceled")
    [canceled] = adapter.to_events(event, CTX).events
    assert (canceled.event.type, canceled.event.mrr) == ("subscription.canceled", Decimal(0))
    assert canceled.event.attributes is not None
    assert canceled.event.attributes["stripe_items_mrr"] == "98.0000"


def test_tiered_and_metered_items_have_no_fixed_value() -> None:
    tiered = {"price": {"unit_amount": None, "billing_scheme": "tiered", "recurring": {"interval": "month"}}}
    metered = {"price": {"unit_amount": 3, "recurring": {"interval": "month", "usage_type": "metered"}}}
    event = _event(items={"data": [tiered, metered, _item(1000, "month")]})
    [mapped] = adapter.to_events(event, CTX).events
    assert mapped.event.mrr == Decimal("10.0000")
    assert mapped.event.attributes is not None
    assert mapped.event.attributes["stripe_unpriced_items"] == 2


def test_the_same_event_delivered_again_gets_the_same_id() -> None:
    first = adapter.to_events(adapter.parse(body(EVENT)), CTX)
    again = adapter.to_events(adapter.parse(body(EVENT)), CTX)
    assert first == again


@pytest.mark.parametrize(
    "type_",
    ["invoice.paid", "customer.created", "customer.subscription.trial_will_end", "v1.billing.meter.error"],
)
def test_other_event_types_are_acknowledged_and_ignored(type_: str) -> None:
    result = adapter.to_events({"id": "evt_1", "type": type_, "data": {"object": {}}}, CTX)
    assert (result.events, result.ignored) == ([], 1)


def _broken(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """The subscription.created event, with `change` applied to its subscription."""
    event = _event()
    change(event["data"]["object"])
    return event


def _item_broken(index: int, price: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    """The event with item `index` changed, and its price by `price`."""

    def change(subscription: dict[str, Any]) -> None:
        item = subscription["items"]["data"][index]
        item.update(changes)
        item["price"].update(price or {})

    return _broken(change)


ITEM = "data.object.items.data"
MALFORMED = {
    "no-type": ({"id": "evt_1"}, "type"),
    "no-id": ({k: v for k, v in _event().items() if k != "id"}, "id"),
    "no-created": ({k: v for k, v in _event().items() if k != "created"}, "created"),
    "future": ({**_event(), "created": 4102444800}, "created"),
    "no-object": ({**_event(), "data": []}, "data.object"),
    "no-customer": (_broken(lambda s: s.pop("customer")), "data.object.customer"),
    "other-currency": (_broken(lambda s: s.update(currency="eur")), "data.object.currency"),
    "no-currency": (_broken(lambda s: s.pop("currency")), "data.object.currency"),
    "no-items": (_broken(lambda s: s.update(items=None)), ITEM),
    "bad-interval": (
        _item_broken(1, price={"recurring": {"interval": "decade"}}),
        f"{ITEM}.1.price.recurring.interval",
    ),
    "negative-quantity": (_item_broken(0, quantity=-1), f"{ITEM}.0.quantity"),
    "bad-amount": (_item_broken(0, price={"unit_amount": "lots"}), f"{ITEM}.0.price.unit_amount"),
    "huge-amount": (_item_broken(0, price={"unit_amount": 10**40}), f"{ITEM}.0.price.unit_amount"),
}


@pytest.mark.parametrize(("payload", "field"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_payload_names_the_field(payload: dict[str, Any], field: str) -> None:
    assert malformed(adapter.VENDOR, payload).field == field


def test_parse_wants_an_event_object() -> None:
    for raw in (b"[]", b"{", b'"evt"'):
        with pytest.raises(PayloadError):
            adapter.parse(raw)


def test_the_secret_is_an_endpoint_signing_secret() -> None:
    adapter.check_secret(SECRET)
    for wrong in ("sk_live_4eC39HqLyjWDarjt", "whsec_", "", "rk_test_1"):
        with pytest.raises(ValueError, match="signing secret"):
            adapter.check_secret(wrong)
