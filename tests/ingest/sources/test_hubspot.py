from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hubspot.utils.signature import Signature

from services.core.events import Channel, EventType
from services.ingest.sources import hubspot
from services.ingest.sources.common import (
    InboundRequest,
    SignatureError,
)
from services.ingest.sources.hubspot import HubSpotOptions
from tests.ingest.sources.support import CTX, NOW, body, malformed, mapped, maps, refused, with_header

SECRET = "3c9e5f42-1b7d-4e8a-9f60-2d1c8b7a6e55"
URL = "https://hooks.salesloop.example/webhooks/hubspot/acme"


def _change(kind: str, name: str, value: str) -> dict[str, object]:
    return {
        "eventId": 1,
        "subscriptionId": 2,
        "portalId": 3,
        "appId": 4,
        "occurredAt": 1782900000000,
        "subscriptionType": f"{kind}.propertyChange",
        "attemptNumber": 0,
        "objectId": 5,
        "propertyName": name,
        "propertyValue": value,
    }


def signed(
    payload: bytes,
    *,
    secret: str = SECRET,
    sent_at: datetime = NOW,
    url: str = URL,
    signed_url: str | None = None,
) -> InboundRequest:
    """A request signed by HubSpot's own Python SDK, as HubSpot signs it."""
    timestamp = str(int(sent_at.timestamp() * 1000))
    signature = Signature.get_signature(
        secret, payload.decode(), "v3", http_uri=signed_url or url, http_method="POST", timestamp=timestamp
    )
    headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp}
    return InboundRequest("POST", url, headers, payload, NOW)


def test_known_vector_from_hubspot_sdk_test_suite() -> None:
    # hubspot-api-python tests/spec/utils/test_signature.py
    secret, url, payload, ts = (
        "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
        "https://www.example.com/webhook_uri",
        b"{'example_field':'example_value'}",
        "1693657560000",
    )
    assert hubspot.sign_v3(secret, "POST", url, payload, ts) == "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="
    headers = {
        "X-HubSpot-Signature-v3": "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y=",
        "X-HubSpot-Request-Timestamp": ts,
    }
    sent = datetime.fromisoformat("2023-09-02T12:26:00+00:00")
    hubspot.verify(InboundRequest("POST", url, headers, payload, sent + timedelta(seconds=1)), secret)


def test_sdk_signed_request_passes_with_any_header_case() -> None:
    request = signed(body("hubspot_contacts.json"))
    hubspot.verify(request, SECRET)
    lowered = {k.lower(): v for k, v in request.headers.items()}
    hubspot.verify(dataclasses.replace(request, headers=lowered), SECRET)
    assert (
        hubspot.sign_v3(SECRET, "POST", URL, request.body, request.headers["X-HubSpot-Request-Timestamp"])
        == (request.headers["X-HubSpot-Signature-v3"])
    )


def test_timestamp_tolerance_is_five_minutes_either_way() -> None:
    payload = body("hubspot_deals.json")
    hubspot.verify(signed(payload, sent_at=NOW - timedelta(minutes=5)), SECRET)
    hubspot.verify(signed(payload, sent_at=NOW + timedelta(minutes=5)), SECRET)
    with pytest.raises(SignatureError, match="older than 5 minutes"):
        hubspot.verify(signed(payload, sent_at=NOW - timedelta(minutes=5, milliseconds=1)), SECRET)
    with pytest.raises(SignatureError, match="in the future"):
        hubspot.verify(signed(payload, sent_at=NOW + timedelta(minutes=5, milliseconds=1)), SECRET)


SIGNATURE, TIMESTAMP = "X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp"
MISMATCH = "does not match"
REFUSED = {
    "wrong-secret": (lambda r: signed(r.body, secret="wrong-secret"), MISMATCH),
    "modified-body": (lambda r: replace(r, body=r.body.replace(b"closedwon", b"closedlos")), MISMATCH),
    "other-method": (lambda r: replace(r, method="PUT"), MISMATCH),
    "other-url": (lambda r: replace(r, url=URL.replace("acme", "globex")), MISMATCH),
    "no-signature": (lambda r: with_header(r, SIGNATURE, None), f"missing {SIGNATURE}"),
    "no-timestamp": (lambda r: with_header(r, TIMESTAMP, None), f"missing {TIMESTAMP}"),
    "bad-ts": (lambda r: with_header(r, TIMESTAMP, "soon"), "not a millisecond"),
}


@pytest.mark.parametrize(("tamper", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_refused(tamper: Callable[[InboundRequest], InboundRequest], reason: str) -> None:
    refused(hubspot.VENDOR, tamper(signed(body("hubspot_deals.json"))), SECRET, reason)


def test_uri_is_signed_with_documented_escapes_decoded() -> None:
    raw = URL + "?src=hs%3Aapp%2Fv3&x=%28a%29"
    request = signed(b"[]", url=raw, signed_url=URL + "?src=hs:app/v3&x=(a)")
    hubspot.verify(request, SECRET)
    with pytest.raises(SignatureError):
        hubspot.verify(signed(b"[]", url=raw, signed_url=raw), SECRET)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_legacy_signatures_only_when_allowed(version: str) -> None:
    payload = body("hubspot_contacts.json")
    legacy = Signature.get_signature(SECRET, payload.decode(), version, http_uri=URL, http_method="POST")
    headers = {"X-HubSpot-Signature": legacy, "X-HubSpot-Signature-Version": version}
    request = InboundRequest("POST", URL, headers, payload, NOW)
    with pytest.raises(SignatureError, match="missing X-HubSpot-Signature-v3"):
        hubspot.verify(request, SECRET)
    legacy = HubSpotOptions(legacy_signatures=True)
    hubspot.verify(request, SECRET, legacy)
    with pytest.raises(SignatureError, match="does not match"):
        hubspot.verify(request, "another-secret", legacy)


def test_contact_notifications() -> None:
    # Lead events, and the contact's channel, lifecycle stages and owner as entity updates; a firstname
    # change, contact.deletion and company.creation map to nothing.
    assert maps(hubspot.VENDOR, "hubspot_contacts.json") == mapped("hubspot_contacts.json")


def test_deal_notifications() -> None:
    # Deal events by stage (closedwon, closedlost), the amount and owner as entity updates; the generic
    # object.* subscriptions name the object type by id.
    assert maps(hubspot.VENDOR, "hubspot_deals.json") == mapped("hubspot_deals.json")


def test_a_deals_history_of_stages_amounts_close_dates_and_forecast_categories() -> None:
    # A deal from creation to its win: owner, amount, close date and forecast category as entity
    # updates, stages as events. Close dates come as epoch milliseconds (the default one at midnight
    # UTC, one picked in the date picker, HubSpot's own at the win) or ISO 8601, a cleared one as "";
    # either forecast category property, in HubSpot's internal values; a contact's closedate is nothing.
    assert maps(hubspot.VENDOR, "hubspot_deal_history.json") == mapped("hubspot_deal_history.json")


def test_redelivered_history_keeps_its_update_ids() -> None:
    payload = hubspot.parse(body("hubspot_deal_history.json"))
    retried = [{**item, "attemptNumber": item["attemptNumber"] + 1} for item in payload]
    assert hubspot.to_events(retried, CTX) == hubspot.to_events(payload, CTX)


# (the moment closedate holds, the tenant's zone, the day it is there)
ZONED = {
    "a day as the API writes it": ("2026-07-31T00:00:00Z", "America/Los_Angeles", "2026-07-31"),
    "picked at 17:45 in LA": ("2026-08-01T00:45:00Z", "America/Los_Angeles", "2026-07-31"),
    "the same moment in UTC": ("2026-08-01T00:45:00Z", "UTC", "2026-08-01"),
    "Tokyo's midnight": ("2026-07-31T15:00:00Z", "Asia/Tokyo", "2026-08-01"),
    "Berlin's evening": ("2026-07-31T15:00:00Z", "Europe/Berlin", "2026-07-31"),
    "Auckland's morning": ("2026-07-31T20:30:00Z", "Pacific/Auckland", "2026-08-01"),
}


@pytest.mark.parametrize(("moment", "zone", "day"), ZONED.values(), ids=ZONED.keys())
def test_a_close_date_is_the_day_in_the_tenants_zone(moment: str, zone: str, day: str) -> None:
    ctx = replace(CTX, timezone=zone)
    at = datetime.fromisoformat(moment)
    for value in (str(int(at.timestamp() * 1000)), moment, moment.replace("Z", ".000+00:00")):
        (update,) = hubspot.to_events([_change("deal", "closedate", value)], ctx).entity_updates
        assert (update.property, update.value) == ("close_date", day), value


@pytest.mark.parametrize(
    ("name", "value", "category"),
    [
        ("hs_forecast_category", "OMIT", "omitted"),
        ("hs_forecast_category", "PIPELINE", "pipeline"),
        ("hs_forecast_category", "BEST_CASE", "best_case"),
        ("hs_forecast_category", "COMMIT", "commit"),
        ("hs_forecast_category", "CLOSED", "closed"),
        ("hs_manual_forecast_category", "COMMIT", "commit"),
        ("hs_manual_forecast_category", "", None),
    ],
)
def test_forecast_categories(name: str, value: str, category: str | None) -> None:
    (update,) = hubspot.to_events([_change("deal", name, value)], CTX).entity_updates
    assert (update.entity, update.entity_id, update.property, update.value) == (
        "deal",
        "5",
        "forecast_category",
        category,
    )
    assert (update.event_id, update.occurred_at) == ("hubspot:3:1:2:5", datetime(2026, 7, 1, 10, tzinfo=UTC))


def test_tenant_won_and_lost_stages() -> None:
    options = HubSpotOptions(won_stages=frozenset({"presentationscheduled"}))
    result = hubspot.to_events(hubspot.parse(body("hubspot_deals.json")), CTX, options)
    types = [v.event.type for v in result.events if v.event.deal_id == "19883472001"]
    # closedwon is no longer a won stage for this tenant: just another stage.
    assert types == [EventType.DEAL_CREATED, EventType.DEAL_WON, EventType.DEAL_STAGE_CHANGED]


def test_same_delivery_twice_and_retries_give_the_same_ids() -> None:
    payload = hubspot.parse(body("hubspot_deals.json"))
    first = hubspot.to_events(payload, CTX)
    again = hubspot.to_events(hubspot.parse(body("hubspot_deals.json")), CTX)
    assert [v.event.event_id for v in first.events] == [v.event.event_id for v in again.events]
    retried = [{**item, "attemptNumber": item["attemptNumber"] + 3} for item in payload]
    assert [v.event for v in hubspot.to_events(retried, CTX).events] == [v.event for v in first.events]


def test_facts_a_record_has_once_are_named_by_the_record_whatever_notification_reports_them() -> None:
    # Each fact twice, by notifications of other ids and times (a deal won, reopened and won again;
    # an MQL set again by a workflow): one id per fact, the one `salesloop import` gives it.
    def notified(number: int, kind: str, action: str, **change: object) -> dict[str, object]:
        item = {**_change(kind, "x", "y"), "eventId": number, "subscriptionType": f"{kind}.{action}"}
        item["occurredAt"] = 1782900000000 + number * 60_000
        return {**item, **change}

    stage = {"propertyName": "dealstage"}
    lifecycle = {"propertyName": "lifecyclestage"}
    payload = [
        notified(10, "deal", "creation"),
        notified(11, "deal", "propertyChange", **stage, propertyValue="closedwon"),
        notified(12, "deal", "propertyChange", **stage, propertyValue="contractsent"),
        notified(13, "deal", "propertyChange", **stage, propertyValue="closedwon"),
        notified(14, "deal", "propertyChange", **stage, propertyValue="closedlost"),
        notified(15, "contact", "creation"),
        notified(16, "contact", "propertyChange", **lifecycle, propertyValue="marketingqualifiedlead"),
        notified(17, "contact", "propertyChange", **lifecycle, propertyValue="marketingqualifiedlead"),
        notified(18, "contact", "propertyChange", **lifecycle, propertyValue="salesqualifiedlead"),
    ]
    result = hubspot.to_events(payload, CTX)
    got = [(v.event.type, v.event.event_id, (v.event.attributes or {}).get("hubspot_notification_id"))
           for v in result.events]  # fmt: skip
    assert got == [
        ("deal.created", "hubspot:deal:5:deal.created", "hubspot:3:10:2:5"),
        ("deal.won", "hubspot:deal:5:deal.won", "hubspot:3:11:2:5"),
        # Entering any other stage is a change of its own, named by its notification.
        ("deal.stage_changed", "hubspot:3:12:2:5", "hubspot:3:12:2:5"),
        ("deal.won", "hubspot:deal:5:deal.won", "hubspot:3:13:2:5"),
        ("deal.lost", "hubspot:deal:5:deal.lost", "hubspot:3:14:2:5"),
        ("lead.created", "hubspot:contact:5:lead.created", "hubspot:3:15:2:5"),
        ("lead.qualified", "hubspot:contact:5:lead.qualified:mql", "hubspot:3:16:2:5"),
        ("lead.qualified", "hubspot:contact:5:lead.qualified:mql", "hubspot:3:17:2:5"),
        ("lead.qualified", "hubspot:contact:5:lead.qualified:sql", "hubspot:3:18:2:5"),
    ]
    # Each close is also the deal's stage update (its history keeps them all), and the contact's
    # lifecycle stages are property changes: each notification its own update.
    assert [u.event_id for u in result.entity_updates] == [
        "hubspot:3:11:2:5", "hubspot:3:13:2:5", "hubspot:3:14:2:5", "hubspot:3:16:2:5", "hubspot:3:17:2:5",
        "hubspot:3:18:2:5",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("source", "channel"),
    [
        ("ORGANIC_SEARCH", Channel.ORGANIC_SEARCH),
        ("PAID_SEARCH", Channel.PAID_SEARCH),
        ("PAID_SOCIAL", Channel.PAID_SOCIAL),
        ("SOCIAL_MEDIA", Channel.ORGANIC_SOCIAL),
        ("EMAIL_MARKETING", Channel.EMAIL_MARKETING),
        ("REFERRALS", Channel.REFERRAL),
        ("AI_REFERRALS", Channel.REFERRAL),
        ("DIRECT_TRAFFIC", Channel.DIRECT),
        ("OFFLINE", Channel.OUTBOUND),
        ("OTHER_CAMPAIGNS", Channel.OTHER),
        ("SOMETHING_NEW", Channel.OTHER),
    ],
)
def test_analytics_source_channels(source: str, channel: Channel) -> None:
    item = _change("contact", "hs_analytics_source", source)
    (update,) = hubspot.to_events([item], CTX).entity_updates
    assert (update.property, update.value) == ("channel", channel.value)


def test_tenant_channel_override() -> None:
    options = HubSpotOptions(channel_overrides={"offline": Channel.EVENTS})
    item = _change("contact", "hs_analytics_source", "OFFLINE")
    (update,) = hubspot.to_events([item], CTX, options).entity_updates
    assert update.value == "events"


def _deal_change(**changes: object) -> dict[str, object]:
    return {**_change("deal", "amount", "12"), **changes}


MALFORMED = {
    "object": (b'{"eventId": 1}', None, None),
    "not-object": (b"[1]", None, 0),
    "bad-json": (b"[{", None, None),
    "no-time": ([_deal_change(occurredAt=None)], "occurredAt", 0),
    "bad-time": ([_deal_change(occurredAt="yesterday")], "occurredAt", 0),
    "bad-amount": ([_deal_change(), _deal_change(propertyValue="lots")], "propertyValue", 1),
    "no-id": ([_deal_change(objectId=None)], "objectId", 0),
    "bad-close-date": (
        [_deal_change(propertyName="closedate", propertyValue="next week")],
        "propertyValue",
        0,
    ),
    "close-date-without-offset": (
        [_deal_change(), _deal_change(propertyName="closedate", propertyValue="2026-07-31T10:00:00")],
        "propertyValue",
        1,
    ),
    "close-date-year-9999": (
        [_deal_change(propertyName="closedate", propertyValue="253402214400000")],
        "propertyValue",
        0,
    ),
    "bad-forecast-category": (
        [_deal_change(propertyName="hs_forecast_category", propertyValue="MAYBE")],
        "propertyValue",
        0,
    ),
    "no-type": ([_deal_change(subscriptionType=None)], "subscriptionType", 0),
    "future": (
        [_deal_change(propertyName="dealstage", propertyValue="x", occurredAt=4102444800000)],
        "occurredAt",
        0,
    ),
}


@pytest.mark.parametrize(("payload", "field", "index"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_payload_names_the_field(payload: object, field: str | None, index: int | None) -> None:
    error = malformed(hubspot.VENDOR, payload)
    assert (error.field, error.index) == (field, index)


@pytest.mark.parametrize(
    ("association", "source", "target", "removed", "contact"),
    [
        ("DEAL_TO_CONTACT", 555, 901, False, "901"),
        ("CONTACT_TO_DEAL", 901, 555, False, "901"),
        ("DEAL_TO_CONTACT", 555, 901, True, None),
    ],
)
def test_deal_contact_associations_tell_which_contact_a_deal_belongs_to(
    association: str, source: int, target: int, removed: bool, contact: str | None
) -> None:
    item = {
        "eventId": 11,
        "subscriptionId": 3,
        "portalId": 7,
        "appId": 1,
        "occurredAt": 1790000000000,
        "subscriptionType": "deal.associationChange",
        "associationType": association,
        "fromObjectId": source,
        "toObjectId": target,
        "associationRemoved": removed,
        "isPrimaryAssociation": True,
        "attemptNumber": 0,
        "changeSource": "USER",
    }
    result = hubspot.to_events([item], CTX)
    assert result.events == []
    (update,) = result.entity_updates
    assert (update.entity, update.entity_id, update.property, update.value) == (
        "deal",
        "555",
        "contact",
        contact,
    )
    other = hubspot.to_events([{**item, "associationType": "COMPANY_TO_DEAL"}], CTX)
    assert (other.entity_updates, other.ignored) == ([], 1)
