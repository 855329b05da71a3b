from __future__ import annotations

import time
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from decimal import Decimal

import pytest

from services.core.events import EventType, RepAlias
from services.ingest.sources import salesforce
from services.ingest.sources.common import InboundRequest, PayloadError, SignatureError
from services.ingest.sources.salesforce import SalesforceOptions
from tests.ingest.sources.support import CTX, NOW, at, body, expected

ORG = "00D5e000000KQ2eEAG"
URL = "https://hooks.salesloop.example/webhooks/salesforce/acme"
USER = RepAlias(kind="salesforce_user_id", value="0055e000003QwErAAK")


def request(payload: bytes, client_ip: str | None = None) -> InboundRequest:
    return InboundRequest("POST", URL, {"Content-Type": "text/xml; charset=utf-8"}, payload, NOW, client_ip)


def envelope(
    sobject: str, fields: Mapping[str, str | None], notification_id: str = "04l5e00000Gx7QzAAJ"
) -> bytes:
    values = "".join(
        f'<sf:{k} xsi:nil="true"/>' if v is None else f"<sf:{k}>{v}</sf:{k}>" for k, v in fields.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        f'<notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>{ORG}</OrganizationId>'
        f"<Notification><Id>{notification_id}</Id>"
        f'<sObject xsi:type="sf:{sobject}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"{values}</sObject>"
        "</Notification></notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


@pytest.mark.parametrize("org_id", [ORG, ORG[:15]], ids=["18-char", "15-char"])
def test_org_id_matches(org_id: str) -> None:
    salesforce.verify(request(body("salesforce_opportunities.xml")), org_id)


@pytest.mark.parametrize(
    ("payload", "org_id"),
    [
        (body("salesforce_opportunities.xml"), "00D5e000000KQ2fEAG"),
        (body("salesforce_opportunities.xml"), "00d5e000000kq2e"),
        (
            body("salesforce_opportunities.xml").replace(
                f"<OrganizationId>{ORG}</OrganizationId>".encode(), b""
            ),
            ORG,
        ),
        (body("salesforce_opportunities.xml").replace(ORG.encode(), b"00D5e000000XXXXEAG"), ORG),
    ],
    ids=["other-org", "case-changed", "no-org", "modified-body"],
)
def test_other_org_is_refused(payload: bytes, org_id: str) -> None:
    with pytest.raises(SignatureError, match="OrganizationId"):
        salesforce.verify(request(payload), org_id)


def test_ip_allow_list() -> None:
    payload = body("salesforce_leads.xml")
    options = SalesforceOptions(allowed_networks=("13.108.0.0/14", "2a01:111::/32"))
    salesforce.verify(request(payload, "13.110.54.9"), ORG, options)
    salesforce.verify(request(payload, "2a01:111:f400::1"), ORG, options)
    for ip in ("203.0.113.7", None, "not-an-ip"):
        with pytest.raises(SignatureError, match="allowed networks"):
            salesforce.verify(request(payload, ip), ORG, options)


def test_ack_is_the_notifications_response_salesforce_expects() -> None:
    root = ET.fromstring(salesforce.ack_response())
    assert root.tag == "{http://schemas.xmlsoap.org/soap/envelope/}Envelope"
    ack = root.find(
        "{http://schemas.xmlsoap.org/soap/envelope/}Body"
        "/{http://soap.sforce.com/2005/09/outbound}notificationsResponse"
        "/{http://soap.sforce.com/2005/09/outbound}Ack"
    )
    assert ack is not None
    assert ack.text == "true"
    assert salesforce.ACK_CONTENT_TYPE.startswith("text/xml")


@pytest.mark.parametrize("name", ["salesforce_billion_laughs.xml", "salesforce_external_entity.xml"])
def test_entity_attacks_are_refused_fast_without_expansion(name: str) -> None:
    payload = body(name)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(PayloadError, match="DTD or entity") as caught:
            salesforce.verify(request(payload), ORG)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.field is None
    assert elapsed < 0.5
    # Expanding &lol9; alone would take 3 GB; anything near the body size means nothing was expanded.
    assert peak < 2_000_000
    with pytest.raises(PayloadError, match="DTD or entity"):
        salesforce.parse(payload)


def test_opportunities() -> None:
    result = salesforce.to_events(salesforce.parse(body("salesforce_opportunities.xml")), CTX)
    open_deal = {
        "deal_id": "0065e00000AbCdEAAV",
        "account_id": "0015e00000ZkM3hAAF",
        "channel": "partner",
        "amount": Decimal("48000.0"),
        "currency": "USD",
        "attributes": {
            "salesforce_notification_id": "04l5e00000Gx7QzAAJ",
            "salesforce_sobject": "Opportunity",
            "close_date": "2026-07-31",
        },
    }
    won_deal = {
        "deal_id": "0065e00000AbCdFAAV",
        "account_id": "0015e00000ZkM3iAAF",
        "channel": "direct",
        "amount": Decimal("12500.5"),
        "currency": "USD",
        "attributes": {
            "salesforce_notification_id": "04l5e00000Gx7R0AAJ",
            "salesforce_sobject": "Opportunity",
            "close_date": "2026-07-06",
        },
    }
    lost_deal = {
        "deal_id": "0065e00000AbCdGAAV",
        "attributes": {
            "salesforce_notification_id": "04l5e00000Gx7R1AAJ",
            "salesforce_sobject": "Opportunity",
        },
    }
    assert [(v.event, v.rep_alias) for v in result.events] == [
        (
            expected(
                event_id="salesforce:0065e00000AbCdEAAV:deal.created",
                type="deal.created",
                occurred_at=at("2026-07-01T09:15:00Z"),
                **open_deal,
            ),
            USER,
        ),
        (
            expected(
                event_id="salesforce:0065e00000AbCdEAAV:stage:Qualification",
                type="deal.stage_changed",
                stage="Qualification",
                occurred_at=at("2026-07-03T11:00:00Z"),
                **open_deal,
            ),
            USER,
        ),
        (
            expected(
                event_id="salesforce:0065e00000AbCdFAAV:deal.created",
                type="deal.created",
                occurred_at=at("2026-06-10T14:00:00Z"),
                **won_deal,
            ),
            USER,
        ),
        (
            expected(
                event_id="salesforce:0065e00000AbCdFAAV:deal.won",
                type="deal.won",
                stage="Closed Won",
                occurred_at=at("2026-07-06T16:45:00Z"),
                **won_deal,
            ),
            USER,
        ),
        (
            expected(
                event_id="salesforce:0065e00000AbCdGAAV:deal.created",
                type="deal.created",
                occurred_at=at("2026-05-02T08:00:00Z"),
                **lost_deal,
            ),
            None,  # owned by a queue (00G...), not a user
        ),
        (
            expected(
                event_id="salesforce:0065e00000AbCdGAAV:deal.lost",
                type="deal.lost",
                stage="Closed Lost",
                occurred_at=at("2026-07-05T10:30:00Z"),
                **lost_deal,
            ),
            None,
        ),
    ]
    assert [(u.entity, u.entity_id, u.property, u.value, u.event_id) for u in result.entity_updates] == [
        ("deal", "0065e00000AbCdEAAV", "amount", "48000.0", "salesforce:04l5e00000Gx7QzAAJ"),
        ("deal", "0065e00000AbCdEAAV", "owner", "0055e000003QwErAAK", "salesforce:04l5e00000Gx7QzAAJ"),
        ("deal", "0065e00000AbCdEAAV", "stage", "Qualification", "salesforce:04l5e00000Gx7QzAAJ"),
        ("deal", "0065e00000AbCdFAAV", "amount", "12500.5", "salesforce:04l5e00000Gx7R0AAJ"),
        ("deal", "0065e00000AbCdFAAV", "owner", "0055e000003QwErAAK", "salesforce:04l5e00000Gx7R0AAJ"),
        ("deal", "0065e00000AbCdFAAV", "stage", "Closed Won", "salesforce:04l5e00000Gx7R0AAJ"),
        ("deal", "0065e00000AbCdGAAV", "stage", "Closed Lost", "salesforce:04l5e00000Gx7R1AAJ"),
    ]
    assert result.entity_updates[1].rep_alias == USER
    assert result.entity_updates[0].occurred_at == at("2026-07-03T11:00:00Z")
    assert result.ignored == 0


def test_leads() -> None:
    result = salesforce.to_events(salesforce.parse(body("salesforce_leads.xml")), CTX)
    other_user = RepAlias(kind="salesforce_user_id", value="0055e000003QwEsAAK")
    lead = "salesforce_notification_id", "salesforce_sobject"
    assert [(v.event, v.rep_alias) for v in result.events] == [
        (
            expected(
                event_id="salesforce:00Q5e00000LeAd1EAB:lead.created",
                type="lead.created",
                occurred_at=at("2026-07-07T08:00:00Z"),
                contact_id="00Q5e00000LeAd1EAB",
                channel="events",
                attributes=dict(zip(lead, ("04l5e00000Gx8AAAAZ", "Lead"), strict=True)),
            ),
            None,
        ),
        (
            expected(
                event_id="salesforce:00Q5e00000LeAd2EAB:lead.created",
                type="lead.created",
                occurred_at=at("2026-07-02T10:00:00Z"),
                contact_id="00Q5e00000LeAd2EAB",
                channel="paid_search",
                attributes=dict(zip(lead, ("04l5e00000Gx8ABAAZ", "Lead"), strict=True)),
            ),
            USER,
        ),
        (
            expected(
                event_id="salesforce:00Q5e00000LeAd2EAB:lead.qualified:mql",
                type="lead.qualified",
                stage="mql",
                occurred_at=at("2026-07-07T09:30:00Z"),
                contact_id="00Q5e00000LeAd2EAB",
                channel="paid_search",
                attributes=dict(zip(lead, ("04l5e00000Gx8ABAAZ", "Lead"), strict=True)),
            ),
            USER,
        ),
        (
            expected(
                event_id="salesforce:00Q5e00000LeAd3EAB:lead.created",
                type="lead.created",
                occurred_at=at("2026-06-20T12:00:00Z"),
                contact_id="00Q5e00000LeAd3EAB",
                channel="outbound",
                attributes={
                    **dict(zip(lead, ("04l5e00000Gx8ACAAZ", "Lead"), strict=True)),
                    "converted_contact_id": "0035e00000CoNtAAAT",
                    "converted_opportunity_id": "0065e00000AbCdHAAV",
                },
            ),
            other_user,
        ),
        (
            expected(
                event_id="salesforce:00Q5e00000LeAd3EAB:lead.qualified:sql",
                type="lead.qualified",
                stage="sql",
                occurred_at=at("2026-07-06T13:00:00Z"),
                contact_id="00Q5e00000LeAd3EAB",
                channel="outbound",
                attributes={
                    **dict(zip(lead, ("04l5e00000Gx8ACAAZ", "Lead"), strict=True)),
                    "converted_contact_id": "0035e00000CoNtAAAT",
                    "converted_opportunity_id": "0065e00000AbCdHAAV",
                },
            ),
            other_user,
        ),
    ]
    assert [(u.entity_id, u.property, u.value) for u in result.entity_updates] == [
        ("00Q5e00000LeAd1EAB", "channel", "events"),
        ("00Q5e00000LeAd1EAB", "lifecycle_stage", "Open - Not Contacted"),
        ("00Q5e00000LeAd2EAB", "owner", "0055e000003QwErAAK"),
        ("00Q5e00000LeAd2EAB", "channel", "paid_search"),
        ("00Q5e00000LeAd2EAB", "lifecycle_stage", "Marketing Qualified"),
        ("00Q5e00000LeAd3EAB", "owner", "0055e000003QwEsAAK"),
        ("00Q5e00000LeAd3EAB", "channel", "outbound"),
        ("00Q5e00000LeAd3EAB", "lifecycle_stage", "Closed - Converted"),
    ]
    assert {u.entity for u in result.entity_updates} == {"contact"}


def test_activities() -> None:
    result = salesforce.to_events(salesforce.parse(body("salesforce_activities.xml")), CTX)

    def attrs(notification: str, sobject: str, **more: str) -> dict[str, str]:
        return {"salesforce_notification_id": notification, "salesforce_sobject": sobject, **more}

    who, opp = "0035e00000CoNtBAAT", "0065e00000AbCdEAAV"
    assert [v.event for v in result.events] == [
        expected(
            event_id="salesforce:00T5e00000TaSk1EAB:call.completed",
            type="call.completed",
            occurred_at=at("2026-07-07T10:04:05Z"),
            direction="outbound",
            outcome="connected",
            duration_s=245,
            contact_id=who,
            deal_id=opp,
            attributes=attrs("04l5e00000Gx9AAAAZ", "Task", call_disposition="Connected - interested"),
        ),
        expected(
            event_id="salesforce:00T5e00000TaSk2EAB:email.sent",
            type="email.sent",
            occurred_at=at("2026-07-07T10:30:00Z"),
            direction="outbound",
            contact_id=who,
            account_id="0015e00000ZkM3hAAF",
            attributes=attrs("04l5e00000Gx9ABAAZ", "Task"),
        ),
        expected(
            event_id="salesforce:00U5e00000EvNt1EAB:meeting.booked",
            type="meeting.booked",
            occurred_at=at("2026-07-01T09:00:00Z"),
            duration_s=1800,
            contact_id=who,
            deal_id=opp,
            attributes=attrs("04l5e00000Gx9ADAAZ", "Event"),
        ),
        expected(
            event_id="salesforce:00U5e00000EvNt1EAB:meeting.held",
            type="meeting.held",
            occurred_at=at("2026-07-06T15:00:00Z"),
            duration_s=1800,
            contact_id=who,
            deal_id=opp,
            attributes=attrs("04l5e00000Gx9ADAAZ", "Event"),
        ),
        expected(
            event_id="salesforce:00U5e00000EvNt2EAB:meeting.booked",
            type="meeting.booked",
            occurred_at=at("2026-07-07T12:00:00Z"),
            duration_s=2700,
            contact_id="00Q5e00000LeAd2EAB",
            attributes=attrs("04l5e00000Gx9AEAAZ", "Event"),
        ),
    ]
    assert all(v.rep_alias == USER for v in result.events)
    # The call task still to do and the Account notification map to nothing.
    assert result.ignored == 2


@pytest.mark.parametrize(
    ("disposition", "outcome"),
    [
        ("Left Voicemail", "voicemail"),
        ("No Answer", "no_answer"),
        ("Busy", "busy"),
        ("Wrong number", "failed"),
        ("Spoke with decision maker", "connected"),
        ("Gatekeeper", None),
        (None, None),
    ],
)
def test_call_dispositions(disposition: str | None, outcome: str | None) -> None:
    fields = {"Id": "00T5e00000TaSk9EAB", "TaskSubtype": "Call", "CallType": "Inbound", "IsClosed": "true"}
    if disposition:
        fields["CallDisposition"] = disposition
    (vendor_event,) = salesforce.to_events(salesforce.parse(envelope("Task", fields)), CTX).events
    assert (vendor_event.event.outcome, vendor_event.event.direction) == (outcome, "inbound")
    assert vendor_event.event.occurred_at == NOW  # no dates in the message: the time it was received


def test_a_won_deal_is_counted_once_whichever_notification_shows_it() -> None:
    fields = {"Id": "0065e00000AbCdFAAV", "StageName": "Closed Won", "IsWon": "true", "IsClosed": "true"}
    first = salesforce.to_events(salesforce.parse(envelope("Opportunity", fields, "04l5e00000Gx7R0AAJ")), CTX)
    edited = {**fields, "Amount": "13000", "LastModifiedDate": "2026-07-07T09:00:00.000Z"}
    later = salesforce.to_events(salesforce.parse(envelope("Opportunity", edited, "04l5e00000Gx7R9AAJ")), CTX)
    ids = [v.event.event_id for v in first.events]
    assert ids == [v.event.event_id for v in later.events]
    assert ids == ["salesforce:0065e00000AbCdFAAV:deal.created", "salesforce:0065e00000AbCdFAAV:deal.won"]
    assert later.entity_updates[0].event_id == "salesforce:04l5e00000Gx7R9AAJ"


def test_same_delivery_twice_gives_identical_events() -> None:
    for name in ("salesforce_opportunities.xml", "salesforce_leads.xml", "salesforce_activities.xml"):
        first = salesforce.to_events(salesforce.parse(body(name)), CTX)
        again = salesforce.to_events(salesforce.parse(body(name)), CTX)
        assert first == again


def test_stage_names_without_flags_and_other_currencies() -> None:
    fields = {
        "Id": "0065e00000AbCdJAAV",
        "StageName": "Closed Won",
        "Amount": "900",
        "CurrencyIsoCode": "EUR",
    }
    result = salesforce.to_events(salesforce.parse(envelope("Opportunity", fields)), CTX)
    won = result.events[1].event
    assert won.type is EventType.DEAL_WON
    assert (won.amount, won.currency) == (None, None)
    assert won.attributes is not None
    assert (won.attributes["amount_original"], won.attributes["currency_original"]) == ("900", "EUR")


@pytest.mark.parametrize(
    ("payload", "field", "index"),
    [
        (b"not xml at all", None, None),
        (b"<a><b></a>", None, None),
        (b'<Envelope xmlns="urn:other"/>', "Envelope", None),
        (
            b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body/></soapenv:Envelope>',
            "notifications",
            None,
        ),
        (envelope("Lead", {"Id": "00Q1"}).replace(b"<Id>04l5e00000Gx7QzAAJ</Id>", b""), "Notification.Id", 0),
        (envelope("Lead", {"Status": "Open"}), "sObject.Id", 0),
        (envelope("Lead", {"Id": "00Q1", "CreatedDate": "last week"}), "sObject.CreatedDate", 0),
        (envelope("Opportunity", {"Id": "0061", "Amount": "a lot"}), "sObject.Amount", 0),
        (
            envelope("Opportunity", {"Id": "0061", "CreatedDate": "2100-01-01T00:00:00Z"}),
            "sObject.CreatedDate",
            0,
        ),
    ],
    ids=[
        "not-xml",
        "unbalanced",
        "not-soap",
        "no-notifications",
        "no-id",
        "no-sobject-id",
        "bad-date",
        "bad-amount",
        "future",
    ],
)
def test_malformed_message_names_the_field(payload: bytes, field: str | None, index: int | None) -> None:
    with pytest.raises(PayloadError) as caught:
        salesforce.to_events(salesforce.parse(payload), CTX)
    assert (caught.value.field, caught.value.index) == (field, index)
