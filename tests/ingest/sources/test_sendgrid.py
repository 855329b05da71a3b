from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader

from services.core.events import EventType
from services.ingest.sources import sendgrid
from services.ingest.sources.common import InboundRequest, Normalised, SignatureError
from services.ingest.sources.kit import fingerprint
from tests.ingest.sources.support import CTX, NOW, body, malformed, mapped, maps, refused, with_header

URL = "https://hooks.salesloop.example/webhooks/sendgrid/acme"
_KEY = ec.generate_private_key(ec.SECP256R1())
# The verification key as SendGrid's settings page shows it: base64 DER SubjectPublicKeyInfo.
PUBLIC_KEY = base64.b64encode(
    _KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()


def signed(
    payload: bytes, *, sent_at: datetime = NOW, key: ec.EllipticCurvePrivateKey = _KEY
) -> InboundRequest:
    timestamp = str(int(sent_at.timestamp()))
    headers = {
        EventWebhookHeader.SIGNATURE: sendgrid.sign(key, timestamp, payload),
        EventWebhookHeader.TIMESTAMP: timestamp,
    }
    return InboundRequest("POST", URL, headers, payload, NOW)


def test_vector_signed_by_sendgrid() -> None:
    # sendgrid-python test/unit/test_eventwebhook.py: a payload, key and signature SendGrid published.
    public_key = (
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpig"
        "lSI8eNEc6wEA3F+g=="
    )
    signature = (
        "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
    )
    payload = (
        json.dumps(
            [
                {
                    "email": "hello@world.com",
                    "event": "dropped",
                    "reason": "Bounced Address",
                    "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
                    "sg_message_id": (
                        "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0"
                    ),
                    "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
                    "timestamp": 1600112492,
                }
            ],
            sort_keys=True,
            separators=(",", ":"),
        )
        + "\r\n"
    ).encode()
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": signature,
        "X-Twilio-Email-Event-Webhook-Timestamp": "1600112502",
    }
    received = datetime.fromtimestamp(1600112502, UTC) + timedelta(seconds=2)
    sendgrid.verify(InboundRequest("POST", URL, headers, payload, received), public_key)
    with pytest.raises(SignatureError, match="does not match"):
        sendgrid.verify(
            InboundRequest("POST", URL, headers, payload.replace(b"dropped", b"bounce"), received), public_key
        )


def test_our_signature_is_what_sendgrids_library_accepts() -> None:
    request = signed(body("sendgrid_events.json"))
    headers = request.headers
    assert EventWebhook(PUBLIC_KEY).verify_signature(
        request.body.decode(), headers[EventWebhookHeader.SIGNATURE], headers[EventWebhookHeader.TIMESTAMP]
    )
    sendgrid.verify(request, PUBLIC_KEY)
    sendgrid.verify(
        dataclasses.replace(request, headers={k.lower(): v for k, v in headers.items()}), PUBLIC_KEY
    )


def test_key_may_be_pasted_as_pem() -> None:
    pem = _KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sendgrid.verify(signed(body("sendgrid_events.json")), pem.decode())


def test_a_retry_signed_up_to_25_hours_ago_verifies_the_future_only_within_5_minutes() -> None:
    # SendGrid retries for up to 24 hours and does not say whether a retry is signed afresh.
    payload = body("sendgrid_events.json")
    for age in (timedelta(minutes=6), timedelta(hours=24), timedelta(hours=25)):
        sendgrid.verify(signed(payload, sent_at=NOW - age), PUBLIC_KEY)
    with pytest.raises(SignatureError, match="older than"):
        sendgrid.verify(signed(payload, sent_at=NOW - timedelta(hours=25, seconds=1)), PUBLIC_KEY)
    sendgrid.verify(signed(payload, sent_at=NOW + timedelta(minutes=5)), PUBLIC_KEY)
    for ahead in (timedelta(minutes=5, seconds=1), timedelta(hours=24), timedelta(days=3)):
        with pytest.raises(SignatureError, match="more than 5 minutes in the future"):
            sendgrid.verify(signed(payload, sent_at=NOW + ahead), PUBLIC_KEY)


def test_a_replayed_delivery_names_the_same_events() -> None:
    # A retry (or a replay) inside the window is the same body: the same event ids, which the archive
    # keeps once per tenant, so it counts once.
    payload = body("sendgrid_events.json")
    first, replay = signed(payload), signed(payload, sent_at=NOW - timedelta(hours=24))
    for request in (first, replay):
        sendgrid.verify(request, PUBLIC_KEY)
    ids = [
        [v.event.event_id for v in sendgrid.to_events(sendgrid.parse(r.body), CTX).events]
        for r in (first, replay)
    ]
    assert ids[0] == ids[1]
    assert ids[0] == [
        "sendgrid:rbtnWrG1DVDGGGFHFyun0A",
        "sendgrid:FOTFFO0ecsBE-zxFXfs6WA",
        "sendgrid:kCAi1KttyQdEKHhdC-nuEA",
        "sendgrid:6g4ZI7SA-xmRDv57GoPIPw",
        f"sendgrid:{fingerprint(orjson.loads(payload)[6])}",  # the dropped event carries no sg_event_id
    ]


SIGNATURE, TIMESTAMP = EventWebhookHeader.SIGNATURE, EventWebhookHeader.TIMESTAMP
REFUSED = {
    "other-key": (lambda r: signed(r.body, key=ec.generate_private_key(ec.SECP256R1())), "does not match"),
    "modified-body": (lambda r: replace(r, body=r.body.replace(b"r-dana", b"r-mallory")), "does not match"),
    "other-timestamp": (lambda r: with_header(r, TIMESTAMP, str(int(NOW.timestamp()) - 1)), "does not match"),
    "bad-signature": (lambda r: with_header(r, SIGNATURE, "not base64!"), "not base64"),
    "bad-timestamp": (lambda r: with_header(r, TIMESTAMP, "now"), "not a Unix timestamp"),
    "no-sig": (lambda r: with_header(r, SIGNATURE, None), f"missing {SIGNATURE}"),
    "no-ts": (lambda r: with_header(r, TIMESTAMP, None), f"missing {TIMESTAMP}"),
}


@pytest.mark.parametrize(("tamper", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_refused(tamper: Callable[[InboundRequest], InboundRequest], reason: str) -> None:
    refused(sendgrid.VENDOR, tamper(signed(body("sendgrid_events.json"))), PUBLIC_KEY, reason)


def test_a_key_that_is_not_p256_is_refused() -> None:
    rsa_like = base64.b64encode(
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).decode()
    for key in (rsa_like, "not a key", ""):
        with pytest.raises(ValueError, match="public key"):
            sendgrid.load_public_key(key)
        with pytest.raises(SignatureError, match="verification key"):
            sendgrid.verify(signed(body("sendgrid_events.json")), key)


def test_event_mapping() -> None:
    # processed, open, click, bounce and dropped, all outbound, rep and contact from the custom args;
    # delivered, the machine open, unsubscribe and spamreport map to nothing.
    assert maps(sendgrid.VENDOR, "sendgrid_events.json") == mapped("sendgrid_events.json")


def test_event_without_sg_event_id_gets_a_fingerprint_of_itself() -> None:
    events = sendgrid.parse(body("sendgrid_events.json"))
    dropped = next(e for e in events if e["event"] == "dropped")
    (first,) = sendgrid.to_events([dropped], CTX).events
    assert first.event.event_id == f"sendgrid:{fingerprint(dropped)}"
    (again,) = sendgrid.to_events([json.loads(json.dumps(dropped))], CTX).events
    assert again.event.event_id == first.event.event_id
    (other,) = sendgrid.to_events([{**dropped, "timestamp": dropped["timestamp"] + 1}], CTX).events
    assert other.event.event_id != first.event.event_id


def test_same_delivery_twice_gives_identical_events() -> None:
    first = sendgrid.to_events(sendgrid.parse(body("sendgrid_events.json")), CTX)
    again = sendgrid.to_events(sendgrid.parse(body("sendgrid_events.json")), CTX)
    assert first == again
    assert len({v.event.event_id for v in first.events}) == len(first.events)


def test_machine_open_is_ignored_but_human_open_counts() -> None:
    events = [e for e in sendgrid.parse(body("sendgrid_events.json")) if e["event"] == "open"]
    assert [v.event.type for v in sendgrid.to_events(events, CTX).events] == [EventType.EMAIL_OPENED]


# What SendGrid's documentation shows for a permanent and a temporary rejection: both are `bounce`
# events, told apart by `type`.
BOUNCE = {
    "email": "example@test.com",
    "timestamp": 1783440800,
    "event": "bounce",
    "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw",
    "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
    "reason": "500 unknown recipient",
    "status": "5.0.0",
    "type": "bounce",
    "rep_id": "r-dana",
}
BLOCKED = {**BOUNCE, "sg_event_id": "bLoCkEd7SA-xmRDv57GoPIP", "type": "blocked", "reason": "451 try later"}


def test_a_blocked_message_is_a_temporary_rejection_not_a_bounce() -> None:
    result = sendgrid.to_events([BLOCKED, BOUNCE, {**BLOCKED, "type": "Blocked"}], CTX)
    assert [(v.event.event_id, v.event.type) for v in result.events] == [
        ("sendgrid:6g4ZI7SA-xmRDv57GoPIPw", EventType.EMAIL_BOUNCED)
    ]
    assert result.ignored == 2
    # A bounce without a type is what SendGrid sent before it classified bounces: permanent.
    untyped = {k: v for k, v in BOUNCE.items() if k != "type"}
    assert [v.event.type for v in sendgrid.to_events([untyped], CTX).events] == [EventType.EMAIL_BOUNCED]


def test_the_object_sendgrids_own_library_tests_sign_is_acknowledged() -> None:
    # sendgrid-python test/test_eventwebhook.py: one JSON object, not an array, signed by SendGrid.
    public_key = (
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu"
        "/1FwCM/QmGUhA=="
    )
    signature = (
        "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0="
    )
    payload = json.dumps(
        {"event": "test_event", "category": "example_payload", "message_id": "message_id"},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    assert EventWebhook(public_key).verify_signature(payload.decode(), signature, "1588788367")
    headers = {SIGNATURE: signature, TIMESTAMP: "1588788367"}
    received = datetime.fromtimestamp(1588788367, UTC) + timedelta(seconds=3)
    sendgrid.verify(InboundRequest("POST", URL, headers, payload, received), public_key)
    # An event type salesloop does not count: acknowledged, so SendGrid does not retry it for a day.
    ctx = replace(CTX, received_at=received)
    assert sendgrid.to_events(sendgrid.parse(payload), ctx) == Normalised(events=[], ignored=1)


def test_one_event_object_is_a_batch_of_one() -> None:
    item = orjson.loads(body("sendgrid_events.json"))[2]  # the human open
    request = signed(orjson.dumps(item))
    assert EventWebhook(PUBLIC_KEY).verify_signature(
        request.body.decode(), request.headers[SIGNATURE], request.headers[TIMESTAMP]
    )
    sendgrid.verify(request, PUBLIC_KEY)
    assert sendgrid.parse(b" \n" + request.body) == [item]
    assert sendgrid.to_events(sendgrid.parse(request.body), CTX) == sendgrid.to_events([item], CTX)
    (opened,) = sendgrid.to_events(sendgrid.parse(request.body), CTX).events
    assert (opened.event.event_id, opened.event.type) == (
        "sendgrid:FOTFFO0ecsBE-zxFXfs6WA",
        EventType.EMAIL_OPENED,
    )


MALFORMED = {
    # A single object is read as a batch of one, with the same rules.
    "object-without-time": (b'{"event": "open"}', "timestamp", 0),
    "object-without-event": (b'{"timestamp": 1783440600}', "event", 0),
    "scalar": (b"7", None, None),
    "string": (b'"open"', None, None),
    "not-object": (b'[{"event": "open", "timestamp": 1783440600}, 7]', None, 1),
    "no-event": (b'[{"timestamp": 1783440600}]', "event", 0),
    "no-time": (b'[{"event": "open"}]', "timestamp", 0),
    "bad-time": (b'[{"event": "click", "timestamp": "noon"}]', "timestamp", 0),
    "future": (
        b'[{"event": "click", "timestamp": 1783440600}, {"event": "open", "timestamp": 4102444800}]',
        "timestamp",
        1,
    ),
    "nul": (b'[{"event": "processed", "timestamp": 1783440600, "contact_id": "a\\u0000b"}]', "contact_id", 0),
}


@pytest.mark.parametrize(("payload", "field", "index"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_payload_names_the_field(payload: bytes, field: str | None, index: int | None) -> None:
    error = malformed(sendgrid.VENDOR, payload)
    assert (error.field, error.index) == (field, index)
