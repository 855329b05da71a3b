from __future__ import annotations

import string
import time
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from services.core.crm import update_id
from services.core.events import EventType, RepAlias
from services.ingest.sources import salesforce
from services.ingest.sources.common import InboundRequest, Normalised, PayloadError, SignatureError
from services.ingest.sources.outbound_message import canonical_org_id, check_secret, url_secret
from services.ingest.sources.salesforce import SalesforceOptions
from tests.ingest.sources.support import CTX, NOW, at, body, malformed, mapped, maps

ORG = "00D5e000000KQ2eEAG"
TOKEN = "Zk3q9VbX1mWc7RtY5uPa2sLd8fGh4jNe6oQi0yTb3vC"  # the endpoint token, as set-secret generates them
SECRET = f"{ORG}:{TOKEN}"
URL = f"https://hooks.salesloop.example/webhooks/salesforce/acme?token={TOKEN}"
USER = RepAlias(kind="salesforce_user_id", value="0055e000003QwErAAK")


def request(payload: bytes, client_ip: str | None = None, url: str = URL) -> InboundRequest:
    return InboundRequest("POST", url, {"Content-Type": "text/xml; charset=utf-8"}, payload, NOW, client_ip)


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


def suffix(org15: str) -> str:
    """The 18-character id's last three characters, as Salesforce documents them: for each five
    characters, the positions of the capital letters as a binary number read right to left, written
    as a character of A-Z0-5. (An independent reading of the rule, to check the adapter's.)"""
    alphabet = string.ascii_uppercase + "012345"
    chunks = [org15[i : i + 5] for i in (0, 5, 10)]
    return "".join(
        alphabet[int("".join("1" if c.isupper() else "0" for c in reversed(ch)), 2)] for ch in chunks
    )


def test_the_18_character_form_is_the_15_with_its_case_checksum() -> None:
    assert suffix("001A0000006Vm9r") == "IAC"  # the example commonly quoted for the algorithm
    assert suffix(ORG[:15]) == ORG[15:]
    for org15 in ("00D5e000000KQ2e", "00DAB00000ZZzzY", "00d000000000000", "00DABCDEFGHIJKL"):
        assert canonical_org_id(org15) == org15 + suffix(org15)
        assert canonical_org_id(org15 + suffix(org15)) == org15 + suffix(org15)
    for bad in ("00D5e000000KQ2eAAG", "00D5e000000KQ2eeag", "00D5e000000KQ2", "00D5e000000KQ2e!", ""):
        with pytest.raises(ValueError, match="Organization ID"):
            canonical_org_id(bad)


@pytest.mark.parametrize(
    ("configured", "sent"),
    [(ORG, ORG), (ORG[:15], ORG), (ORG, ORG[:15]), (ORG[:15], ORG[:15])],
    ids=["18-sent-18", "15-sent-18", "18-sent-15", "15-sent-15"],
)
def test_org_id_matches_in_either_form(configured: str, sent: str) -> None:
    payload = body("salesforce_opportunities.xml").replace(ORG.encode(), sent.encode())
    salesforce.verify(request(payload), f"{configured}:{TOKEN}")


@pytest.mark.parametrize("configured", [ORG, ORG[:15]], ids=["18-char", "15-char"])
@pytest.mark.parametrize(
    "sent",
    [
        ORG[:15] + "AAG",
        ORG[:15] + "eag",
        ORG.lower(),
        ORG[:15].lower(),
        "00D5e000000KQ2f" + suffix("00D5e000000KQ2f"),
    ],
    ids=["other-checksum", "checksum-lower-case", "all-lower-case", "15-lower-case", "other-org"],
)
def test_an_org_id_of_another_org_or_checksum_is_refused(configured: str, sent: str) -> None:
    payload = body("salesforce_opportunities.xml").replace(ORG.encode(), sent.encode())
    with pytest.raises(SignatureError, match="OrganizationId"):
        salesforce.verify(request(payload), f"{configured}:{TOKEN}")


@pytest.mark.parametrize(
    ("payload", "org_id"),
    [
        (body("salesforce_opportunities.xml"), f"00D5e000000KQ2fEAG:{TOKEN}"),
        (body("salesforce_opportunities.xml"), f"00d5e000000kq2e:{TOKEN}"),
        (
            body("salesforce_opportunities.xml").replace(
                f"<OrganizationId>{ORG}</OrganizationId>".encode(), b""
            ),
            SECRET,
        ),
        (body("salesforce_opportunities.xml").replace(ORG.encode(), b"00D5e000000XXXXEAG"), SECRET),
    ],
    ids=["other-org", "case-changed", "no-org", "modified-body"],
)
def test_other_org_is_refused(payload: bytes, org_id: str) -> None:
    with pytest.raises(SignatureError, match="OrganizationId"):
        salesforce.verify(request(payload), org_id)


def test_ip_allow_list() -> None:
    payload = body("salesforce_leads.xml")
    options = SalesforceOptions(allowed_networks=("13.108.0.0/14", "2a01:111::/32"))
    salesforce.verify(request(payload, "13.110.54.9"), SECRET, options)
    salesforce.verify(request(payload, "2a01:111:f400::1"), SECRET, options)
    for ip in ("203.0.113.7", None, "not-an-ip"):
        with pytest.raises(SignatureError, match="allowed networks"):
            salesforce.verify(request(payload, ip), SECRET, options)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (URL.partition("?")[0], "missing token"),
        (URL.partition("?")[0] + "?token=", "missing token"),
        (URL.replace(TOKEN, TOKEN[:-1] + "X"), "does not match"),
        (URL + f"&token={TOKEN}", "does not match"),
        (
            URL.partition("?")[0] + "?" + "&".join(f"f{i}=1" for i in range(30)) + f"&token={TOKEN}",
            "does not match",
        ),
    ],
    ids=["no-token", "empty-token", "wrong-token", "two-tokens", "many-fields"],
)
def test_the_endpoint_token_must_match(url: str, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        salesforce.verify(request(body("salesforce_leads.xml"), url=url), SECRET)


def test_a_secret_without_token_is_refused_unless_the_tenant_opted_in() -> None:
    payload = body("salesforce_leads.xml")
    bare = URL.partition("?")[0]
    for url in (bare, URL):
        with pytest.raises(SignatureError, match="token"):
            salesforce.verify(request(payload, url=url), ORG)
    opted_in = SalesforceOptions(accept_without_token=True)
    salesforce.verify(request(payload, url=bare), ORG, opted_in)
    salesforce.verify(request(payload, url=bare), SECRET, opted_in)  # once the token is set too
    with pytest.raises(SignatureError, match="does not match"):
        salesforce.verify(request(payload, url=URL.replace(TOKEN, "x" * 43)), SECRET, opted_in)
    with pytest.raises(SignatureError, match="OrganizationId"):
        salesforce.verify(request(payload, url=bare), "00D5e000000ZZZZEAG", opted_in)


def test_set_secret_generates_a_token_and_checks_the_format() -> None:
    assert (salesforce.VENDOR.url_secret, salesforce.VENDOR.check_secret) == (url_secret, check_secret)
    stored, query = url_secret(ORG[:15])
    org, _, token = stored.partition(":")
    assert (org, query) == (ORG, f"token={token}")  # kept in the 18-character form
    assert len(token) >= 43
    assert url_secret(SECRET) == (SECRET, f"token={TOKEN}")
    assert url_secret(f"{ORG[:15]}:{TOKEN}") == (SECRET, f"token={TOKEN}")
    for good in (ORG, ORG[:15], SECRET, f"{ORG[:15]}:{TOKEN}", salesforce.VENDOR.decoy()):
        check_secret(good)
    for bad in ("", "00D5e0", "00D5e000000KQ2e!!!", f"{ORG}:short", f"{ORG}:{TOKEN[:-1]}+"):
        with pytest.raises(ValueError, match=r"Organization ID|endpoint token"):
            check_secret(bad)
    # An 18-character id whose last three characters are not its checksum was mistyped.
    with pytest.raises(ValueError, match="checksum"):
        check_secret(f"{ORG[:15]}AAG:{TOKEN}")


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
            salesforce.verify(request(payload), SECRET)
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
    # deal.created, then a stage change, a win or a loss; amount, owner, stage and close date as entity
    # updates named by the notification; the lost deal is owned by a queue (00G...), not a user.
    assert maps(salesforce.VENDOR, "salesforce_opportunities.xml") == mapped("salesforce_opportunities.xml")


OPP = "0065e00000AbCdHAAV"
NOTES = [f"04l5e00000Gx7S{n}AAJ" for n in range(5)]
OTHER_USER = "0055e000004XyZaAAB"


def test_an_opportunity_through_its_stages_close_dates_and_forecast_categories_to_its_win() -> None:
    # Five snapshots of one opportunity, as Salesforce queues them: created in Prospecting, moved on,
    # its close date pushed a month and its category raised to Best Case while handed to another rep,
    # committed at a larger amount, won (Salesforce sets the close date to the day of the win).
    result = maps(salesforce.VENDOR, "salesforce_opportunity_history.xml")
    times = [
        at(f"2026-{t}Z") for t in ("06-01T09:00", "06-10T14:00", "06-28T15:20", "07-02T10:00", "07-06T16:45")
    ]
    created = (f"salesforce:{OPP}:deal.created", EventType.DEAL_CREATED, None, times[0])
    moved = EventType.DEAL_STAGE_CHANGED
    # Every snapshot shows the creation again, and its stage: the same ids, so the aggregator keeps one.
    assert [(v.event.event_id, v.event.type, v.event.stage, v.event.occurred_at) for v in result.events] == [
        created,
        (f"salesforce:{OPP}:stage:Prospecting", moved, "Prospecting", times[0]),
        created,
        (f"salesforce:{OPP}:stage:Needs Analysis", moved, "Needs Analysis", times[1]),
        created,
        (f"salesforce:{OPP}:stage:Needs Analysis", moved, "Needs Analysis", times[2]),
        created,
        (f"salesforce:{OPP}:stage:Negotiation/Review", moved, "Negotiation/Review", times[3]),
        created,
        (f"salesforce:{OPP}:deal.won", EventType.DEAL_WON, "Closed Won", times[4]),
    ]
    owners = [USER.value, USER.value, OTHER_USER, OTHER_USER, OTHER_USER]
    snapshots = [  # amount, owner, stage, close date, forecast category
        ("30000.0", owners[0], "Prospecting", "2026-06-30", "pipeline"),
        ("30000.0", owners[1], "Needs Analysis", "2026-06-30", "pipeline"),
        ("30000.0", owners[2], "Needs Analysis", "2026-07-31", "best_case"),
        ("32500.0", owners[3], "Negotiation/Review", "2026-07-31", "commit"),
        ("32500.0", owners[4], "Closed Won", "2026-07-06", "closed"),
    ]
    properties = ("amount", "owner", "stage", "close_date", "forecast_category")
    assert [(u.property, u.value, u.occurred_at, u.event_id) for u in result.entity_updates] == [
        (prop, value, times[i], f"salesforce:{NOTES[i]}")
        for i, snapshot in enumerate(snapshots)
        for prop, value in zip(properties, snapshot, strict=True)
    ]
    assert {u.entity_id for u in result.entity_updates} == {OPP}
    assert [u.rep_alias for u in result.entity_updates if u.property == "owner"] == [
        RepAlias(kind="salesforce_user_id", value=owner) for owner in owners
    ]


def test_an_opportunitys_history_is_the_same_however_its_snapshots_are_delivered() -> None:
    # Redelivered, or delivered one snapshot a message in reverse order: the same facts under the same ids.
    message = salesforce.parse(body("salesforce_opportunity_history.xml"))
    together = salesforce.to_events(message, CTX)
    alone = [salesforce.to_events(replace(message, notifications=[n]), CTX) for n in message.notifications]

    def facts(results: list[Normalised]) -> tuple[set[Any], set[Any]]:
        events = {(v.event.event_id, v.event.type, v.event.stage) for r in results for v in r.events}
        updates = {
            (update_id(u.event_id, u.property), u.property, u.value, u.occurred_at)
            for r in results
            for u in r.entity_updates
        }
        return events, updates

    assert facts([together]) == facts(alone[::-1])
    assert salesforce.to_events(salesforce.parse(body("salesforce_opportunity_history.xml")), CTX) == together
    _, updates = facts([together])
    assert len(updates) == 25  # five properties of five snapshots, each once


FIELDS = {
    "nil-clears": (
        {"CloseDate": None, "ForecastCategoryName": None},
        [("close_date", None), ("forecast_category", None)],
    ),
    "values": (
        {"CloseDate": "2026-02-28", "ForecastCategoryName": "Best Case"},
        [("close_date", "2026-02-28"), ("forecast_category", "best_case")],
    ),
    "most-likely": (
        {"ForecastCategoryName": "Most Likely", "ForecastCategory": "MostLikely"},
        [("forecast_category", "best_case")],
    ),
    "omitted": (
        {"ForecastCategoryName": "Omitted", "ForecastCategory": "Omitted"},
        [("forecast_category", "omitted")],
    ),
    "api-name-forecast": ({"ForecastCategory": "Forecast"}, [("forecast_category", "commit")]),
    "api-name-best-case": ({"ForecastCategory": "BestCase"}, [("forecast_category", "best_case")]),
    "absent": ({}, []),  # fields the Outbound Message does not send tell nothing
}


@pytest.mark.parametrize(("fields", "updates"), FIELDS.values(), ids=FIELDS.keys())
def test_close_date_and_forecast_category_fields(
    fields: Mapping[str, str | None], updates: list[tuple[str, str | None]]
) -> None:
    record = {"Id": "0065e00000AbCdKAAV", "LastModifiedDate": "2026-07-07T09:00:00.000Z", **fields}
    result = salesforce.to_events(salesforce.parse(envelope("Opportunity", record)), CTX)
    assert [(u.property, u.value) for u in result.entity_updates] == updates
    assert {(u.occurred_at, u.event_id) for u in result.entity_updates} <= {
        (at("2026-07-07T09:00Z"), "salesforce:04l5e00000Gx7QzAAJ")
    }


def test_leads() -> None:
    # lead.created and lead.qualified by Status or IsConverted, channels from LeadSource; owner,
    # channel and status as the contact's entity updates.
    assert maps(salesforce.VENDOR, "salesforce_leads.xml") == mapped("salesforce_leads.xml")


def test_activities() -> None:
    # A call and an email Task, an Event booked and, being over, held; the call task still to do and
    # the Account notification map to nothing.
    assert maps(salesforce.VENDOR, "salesforce_activities.xml") == mapped("salesforce_activities.xml")


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


SOAP_BODY = b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body/></soapenv:Envelope>'
MALFORMED = {
    "not-xml": (b"not xml at all", None, None),
    "unbalanced": (b"<a><b></a>", None, None),
    "not-soap": (b'<Envelope xmlns="urn:other"/>', "Envelope", None),
    "no-notifications": (SOAP_BODY, "notifications", None),
    "no-id": (
        envelope("Lead", {"Id": "00Q1"}).replace(b"<Id>04l5e00000Gx7QzAAJ</Id>", b""),
        "Notification.Id",
        0,
    ),
    "no-sobject-id": (envelope("Lead", {"Status": "Open"}), "sObject.Id", 0),
    "bad-date": (envelope("Lead", {"Id": "00Q1", "CreatedDate": "last week"}), "sObject.CreatedDate", 0),
    "bad-amount": (envelope("Opportunity", {"Id": "0061", "Amount": "a lot"}), "sObject.Amount", 0),
    "bad-close-date": (
        envelope("Opportunity", {"Id": "0061", "CloseDate": "31/07/2026"}),
        "sObject.CloseDate",
        0,
    ),
    "close-date-year-1": (
        envelope("Opportunity", {"Id": "0061", "CloseDate": "0001-01-01"}),
        "sObject.CloseDate",
        0,
    ),
    "close-date-with-time": (
        envelope("Opportunity", {"Id": "0061", "CloseDate": "2026-07-31T00:00:00Z"}),
        "sObject.CloseDate",
        0,
    ),
    "bad-forecast-category": (
        envelope("Opportunity", {"Id": "0061", "ForecastCategoryName": "Maybe"}),
        "sObject.ForecastCategoryName",
        0,
    ),
    "bad-forecast-category-api-name": (
        envelope("Opportunity", {"Id": "0061", "ForecastCategory": "Upside"}),
        "sObject.ForecastCategory",
        0,
    ),
    "future": (
        envelope("Opportunity", {"Id": "0061", "CreatedDate": "2100-01-01T00:00:00Z"}),
        "sObject.CreatedDate",
        0,
    ),
}


@pytest.mark.parametrize(("payload", "field", "index"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_message_names_the_field(payload: bytes, field: str | None, index: int | None) -> None:
    error = malformed(salesforce.VENDOR, payload)
    assert (error.field, error.index) == (field, index)
