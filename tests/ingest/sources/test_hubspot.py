from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import orjson
import pytest
from hubspot.utils.signature import Signature

from services.core.events import Channel, EventType, RepAlias
from services.ingest.sources import hubspot
from services.ingest.sources.common import (
    EntityProperty,
    EntityUpdate,
    InboundRequest,
    PayloadError,
    SignatureError,
)
from services.ingest.sources.hubspot import HubSpotOptions
from tests.ingest.sources.support import CTX, NOW, at, body, expected

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


def _without(request: InboundRequest, name: str) -> InboundRequest:
    return dataclasses.replace(request, headers={k: v for k, v in request.headers.items() if k != name})


def _with(request: InboundRequest, name: str, value: str) -> InboundRequest:
    return dataclasses.replace(request, headers={**request.headers, name: value})


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


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda r: signed(r.body, secret="wrong-secret"), "does not match"),
        (lambda r: dataclasses.replace(r, body=r.body.replace(b"closedwon", b"closedlos")), "does not match"),
        (lambda r: dataclasses.replace(r, method="PUT"), "does not match"),
        (lambda r: dataclasses.replace(r, url=URL.replace("acme", "globex")), "does not match"),
        (lambda r: _without(r, "X-HubSpot-Signature-v3"), "missing X-HubSpot-Signature-v3"),
        (lambda r: _without(r, "X-HubSpot-Request-Timestamp"), "missing X-HubSpot-Request-Timestamp"),
        (lambda r: _with(r, "X-HubSpot-Request-Timestamp", "soon"), "not a millisecond"),
    ],
    ids=[
        "wrong-secret",
        "modified-body",
        "other-method",
        "other-url",
        "no-signature",
        "no-timestamp",
        "bad-ts",
    ],
)
def test_refused(tamper: object, reason: str) -> None:
    request = tamper(signed(body("hubspot_deals.json")))  # type: ignore[operator]
    with pytest.raises(SignatureError, match=reason):
        hubspot.verify(request, SECRET)


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
    result = hubspot.to_events(hubspot.parse(body("hubspot_contacts.json")), CTX)
    prefix = "hubspot:891472211"
    assert [(v.event, v.rep_alias) for v in result.events] == [
        (
            expected(
                event_id=f"{prefix}:3029365631:686627:847297356",
                type="lead.created",
                occurred_at=at("2026-07-01T10:00:00Z"),
                contact_id="847297356",
                attributes={
                    "hubspot_subscription_type": "contact.creation",
                    "hubspot_change_source": "CRM_UI",
                    "hubspot_source_id": "userId:882761034",
                },
            ),
            None,
        ),
        (
            expected(
                event_id=f"{prefix}:3029365633:686629:847297356",
                type="lead.qualified",
                stage="mql",
                occurred_at=at("2026-07-01T10:02:00Z"),
                contact_id="847297356",
                attributes={
                    "hubspot_subscription_type": "contact.propertyChange",
                    "hubspot_change_source": "AUTOMATION_PLATFORM",
                },
            ),
            None,
        ),
        (
            expected(
                event_id=f"{prefix}:3029365635:686629:847297356",
                type="lead.qualified",
                stage="sql",
                occurred_at=at("2026-07-01T11:00:00Z"),
                contact_id="847297356",
                attributes={
                    "hubspot_subscription_type": "contact.propertyChange",
                    "hubspot_change_source": "CRM_UI",
                },
            ),
            None,
        ),
    ]
    owner = RepAlias(kind="hubspot_owner_id", value="58210455")

    def update(
        prop: EntityProperty, value: str, time: str, number: int, sub: int, alias: RepAlias | None = None
    ) -> EntityUpdate:
        event_id = f"{prefix}:{number}:{sub}:847297356"
        return EntityUpdate("contact", "847297356", prop, value, at(time), event_id, alias)

    assert result.entity_updates == [
        update("channel", "paid_social", "2026-07-01T10:01:00Z", 3029365632, 686628),
        update("lifecycle_stage", "marketingqualifiedlead", "2026-07-01T10:02:00Z", 3029365633, 686629),
        update("owner", "58210455", "2026-07-01T10:03:00Z", 3029365634, 686630, owner),
        update("lifecycle_stage", "salesqualifiedlead", "2026-07-01T11:00:00Z", 3029365635, 686629),
        update("lifecycle_stage", "opportunity", "2026-07-01T12:00:00Z", 3029365636, 686629),
    ]
    # firstname change, contact.deletion and company.creation map to nothing.
    assert result.ignored == 3


def test_deal_notifications() -> None:
    result = hubspot.to_events(hubspot.parse(body("hubspot_deals.json")), CTX)
    p = "hubspot:891472211"
    crm = {"hubspot_subscription_type": "deal.propertyChange", "hubspot_change_source": "CRM_UI"}
    assert [v.event for v in result.events] == [
        expected(
            event_id=f"{p}:4100000001:700001:19883472001",
            type="deal.created",
            occurred_at=at("2026-07-01T12:46:40Z"),
            deal_id="19883472001",
            attributes={**crm, "hubspot_subscription_type": "deal.creation"},
        ),
        expected(
            event_id=f"{p}:4100000004:700004:19883472001",
            type="deal.stage_changed",
            stage="presentationscheduled",
            occurred_at=at("2026-07-01T13:46:40Z"),
            deal_id="19883472001",
            attributes=crm,
        ),
        expected(
            event_id=f"{p}:4100000005:700004:19883472001",
            type="deal.won",
            stage="closedwon",
            occurred_at=at("2026-07-02T13:30:00Z"),
            deal_id="19883472001",
            attributes=crm,
        ),
        expected(
            event_id=f"{p}:4100000006:700004:19883472002",
            type="deal.lost",
            stage="closedlost",
            occurred_at=at("2026-07-02T13:31:00Z"),
            deal_id="19883472002",
            attributes=crm,
        ),
        expected(
            event_id=f"{p}:4100000007:700010:19883472003",
            type="deal.created",
            occurred_at=at("2026-07-02T13:32:00Z"),
            deal_id="19883472003",
            attributes={
                "hubspot_subscription_type": "object.creation",
                "hubspot_change_source": "INTEGRATION",
                "hubspot_source_id": "9876",
            },
        ),
        expected(
            event_id=f"{p}:4100000008:700011:847297357",
            type="lead.qualified",
            stage="sql",
            occurred_at=at("2026-07-02T13:33:00Z"),
            contact_id="847297357",
            attributes={
                "hubspot_subscription_type": "object.propertyChange",
                "hubspot_change_source": "CRM_UI",
            },
        ),
    ]
    assert [(u.entity, u.entity_id, u.property, u.value) for u in result.entity_updates] == [
        ("deal", "19883472001", "amount", "24000.50"),
        ("deal", "19883472001", "owner", "58210455"),
        ("contact", "847297357", "lifecycle_stage", "salesqualifiedlead"),
    ]
    assert result.entity_updates[1].rep_alias == RepAlias(kind="hubspot_owner_id", value="58210455")
    assert result.ignored == 0


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


@pytest.mark.parametrize(
    ("payload", "field", "index"),
    [
        (b'{"eventId": 1}', None, None),
        (b"[1]", None, 0),
        (b"[{", None, None),
        (orjson.dumps([{**_change("deal", "amount", "12"), "occurredAt": None}]), "occurredAt", 0),
        (orjson.dumps([{**_change("deal", "amount", "12"), "occurredAt": "yesterday"}]), "occurredAt", 0),
        (
            orjson.dumps([_change("deal", "amount", "12"), _change("deal", "amount", "lots")]),
            "propertyValue",
            1,
        ),
        (orjson.dumps([{**_change("deal", "amount", "1"), "objectId": None}]), "objectId", 0),
        (orjson.dumps([{**_change("deal", "amount", "1"), "subscriptionType": None}]), "subscriptionType", 0),
        (orjson.dumps([{**_change("deal", "dealstage", "x"), "occurredAt": 4102444800000}]), "occurredAt", 0),
    ],
    ids=[
        "object",
        "not-object",
        "bad-json",
        "no-time",
        "bad-time",
        "bad-amount",
        "no-id",
        "no-type",
        "future",
    ],
)
def test_malformed_payload_names_the_field(payload: bytes, field: str | None, index: int | None) -> None:
    with pytest.raises(PayloadError) as caught:
        hubspot.to_events(hubspot.parse(payload), CTX)
    assert (caught.value.field, caught.value.index) == (field, index)
    assert caught.value.reason


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
