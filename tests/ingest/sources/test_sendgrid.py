from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader

from services.core.events import EventType
from services.ingest.sources import sendgrid
from services.ingest.sources.common import InboundRequest, SignatureError
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


def test_timestamp_tolerance() -> None:
    payload = body("sendgrid_events.json")
    sendgrid.verify(signed(payload, sent_at=NOW - timedelta(minutes=5)), PUBLIC_KEY)
    with pytest.raises(SignatureError, match="older than 5 minutes"):
        sendgrid.verify(signed(payload, sent_at=NOW - timedelta(minutes=5, seconds=1)), PUBLIC_KEY)
    with pytest.raises(SignatureError, match="in the future"):
        sendgrid.verify(signed(payload, sent_at=NOW + timedelta(minutes=5, seconds=1)), PUBLIC_KEY)


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


MALFORMED = {
    "object": (b'{"event": "open"}', None, None),
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
