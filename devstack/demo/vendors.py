"""Demo events in the wire formats of the vendors and of `/v1/events`, and their signatures. Pure.

Bodies are built once; signatures carry the current time and are made just before each request
(`sign`), so a slow run never sends a stale timestamp.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from standardwebhooks.webhooks import Webhook

from devstack.demo.simulate import (
    HUBSPOT_DEALSTAGE_SUBSCRIPTION,
    HUBSPOT_PORTAL,
    TWILIO_STATUS,
    DemoEvent,
    Via,
)
from services.ingest.sources import fathom, hubspot, sendgrid, twilio

VENDORS: tuple[Via, ...] = ("twilio", "aircall", "sendgrid", "hubspot", "fathom", "stripe")
# Requests per vendor batch, as the vendors send them: HubSpot up to 100 notifications, SendGrid
# a few hundred events; Twilio, Aircall and Fathom one call per request, Stripe one event.
BATCH = {"api": 500, "sendgrid": 500, "hubspot": 100, "twilio": 1, "aircall": 1, "fathom": 1, "stripe": 1}
# A canonical batch is cut before its body grows past this (transcripts are large; the ingest takes
# 1 MiB by default).
MAX_BATCH_BYTES = 512 * 1024
FATHOM_DOMAIN = "demo-sales.example"
HUBSPOT_APP_ID = 1_357_911
TWILIO_ACCOUNT = "AC" + "d3m0" * 8


@dataclass(frozen=True)
class Credentials:
    """What the demo signs with. A vendor without its secret is sent as canonical events instead."""

    ingest_key: str
    webhook_secret: str | None = None
    hubspot: str | None = None
    twilio: str | None = None
    aircall: str | None = None
    sendgrid: ec.EllipticCurvePrivateKey | None = None
    fathom: str | None = None
    stripe: str | None = None

    def has(self, via: Via) -> bool:
        return via == "api" or getattr(self, via) is not None


@dataclass(frozen=True)
class Payload:
    """One request: `path` under the ingest URL, its body, and how many events it carries."""

    via: Via
    path: str
    body: bytes
    content_type: str
    events: int


def payloads(
    events: Iterable[DemoEvent], tenant: str, creds: Credentials, routes: frozenset[Via]
) -> list[Payload]:
    """Every request of the load. Events of a vendor whose route or secret is missing go canonical.

    The kinds are interleaved so that every route is busy from the start to the end of the load.
    """
    by_via: dict[Via, list[DemoEvent]] = {}
    for e in events:
        via: Via = e.via if e.via in routes and creds.has(e.via) else "api"
        by_via.setdefault(via, []).append(e)
    queues = [list(_encode(via, batch, tenant, creds)) for via, batch in sorted(by_via.items())]
    out: list[Payload] = []
    # A proportional merge: after step k of n, every kind has sent about k/n of its requests.
    total = sum(len(q) for q in queues)
    cursors = [0] * len(queues)
    for step in range(1, total + 1):
        for i, queue in enumerate(queues):
            due = len(queue) * step // total
            while cursors[i] < due:
                out.append(queue[cursors[i]])
                cursors[i] += 1
    return out


def _encode(via: Via, events: Sequence[DemoEvent], tenant: str, creds: Credentials) -> Iterator[Payload]:
    size = BATCH[via]
    for i in range(0, len(events), size):
        chunk = events[i : i + size]
        if via == "twilio":
            body = urlencode(twilio_form(chunk[0])).encode()
            yield Payload(via, f"/webhooks/twilio/{tenant}", body, "application/x-www-form-urlencoded", 1)
        elif via == "aircall":
            body = orjson.dumps(aircall_body(chunk[0], creds.aircall or ""))
            yield Payload(via, f"/webhooks/aircall/{tenant}", body, "application/json", 1)
        elif via == "sendgrid":
            body = orjson.dumps([sendgrid_item(e) for e in chunk])
            yield Payload(via, f"/webhooks/sendgrid/{tenant}", body, "application/json", len(chunk))
        elif via == "hubspot":
            body = orjson.dumps([hubspot_item(e) for e in chunk])
            yield Payload(via, f"/webhooks/hubspot/{tenant}", body, "application/json", len(chunk))
        elif via == "fathom":
            body = orjson.dumps(fathom_meeting(chunk[0]))
            yield Payload(via, f"/webhooks/fathom/{tenant}", body, "application/json", 1)
        elif via == "stripe":
            body = orjson.dumps(chunk[0].extra["stripe"])
            yield Payload(via, f"/webhooks/stripe/{tenant}", body, "application/json; charset=utf-8", 1)
        else:
            yield from _canonical(chunk, tenant)


def _canonical(events: Sequence[DemoEvent], tenant: str) -> Iterator[Payload]:
    """/v1/events batches of `events`, each cut before it passes MAX_BATCH_BYTES."""
    encoded = [orjson.dumps(e.canonical()) for e in events]
    start, size = 0, 0
    for i, item in enumerate(encoded):
        if i > start and size + len(item) > MAX_BATCH_BYTES:
            yield _events_payload(encoded[start:i], tenant)
            start, size = i, 0
        size += len(item) + 1
    if start < len(encoded):
        yield _events_payload(encoded[start:], tenant)


def _events_payload(encoded: list[bytes], tenant: str) -> Payload:
    body = b'{"events":[' + b",".join(encoded) + b"]}"
    return Payload("api", f"/v1/events/{tenant}", body, "application/json", len(encoded))


def sign(payload: Payload, url: str, creds: Credentials, now: datetime) -> dict[str, str]:
    """The request headers, signatures included, for sending `payload` to `url` at `now`."""
    headers = {"Content-Type": payload.content_type}
    if payload.via == "twilio":
        params = list(twilio.parse(payload.body).items())
        headers[twilio.SIGNATURE] = twilio.sign(creds.twilio or "", url, params)
    elif payload.via == "hubspot":
        millis = str(int(now.timestamp() * 1000))
        headers[hubspot.TIMESTAMP] = millis
        headers[hubspot.SIGNATURE_V3] = hubspot.sign_v3(
            creds.hubspot or "", "POST", url, payload.body, millis
        )
    elif payload.via == "sendgrid" and creds.sendgrid is not None:
        seconds = str(int(now.timestamp()))
        headers[sendgrid.TIMESTAMP] = seconds
        headers[sendgrid.SIGNATURE] = sendgrid.sign(creds.sendgrid, seconds, payload.body)
    elif payload.via == "fathom":
        sent = int(now.timestamp())
        msg_id = "msg_" + hashlib.sha256(payload.body).hexdigest()[:24]
        headers[fathom.ID] = msg_id
        headers[fathom.TIMESTAMP] = str(sent)
        headers[fathom.SIGNATURE] = fathom.sign(creds.fathom or "", msg_id, sent, payload.body)
    elif payload.via == "stripe":
        headers["Stripe-Signature"] = stripe_signature(creds.stripe or "", payload.body, now)
    elif payload.via == "api":
        if creds.webhook_secret:
            msg_id = "msg_" + hashlib.sha256(payload.body).hexdigest()[:24]
            headers["webhook-id"] = msg_id
            headers["webhook-timestamp"] = str(int(now.timestamp()))
            headers["webhook-signature"] = Webhook(creds.webhook_secret).sign(
                msg_id, now, payload.body.decode()
            )
        else:
            headers["Authorization"] = f"Bearer {creds.ingest_key}"
    return headers


def stripe_signature(secret: str, body: bytes, now: datetime) -> str:
    """`Stripe-Signature` as Stripe makes it, by Stripe's own library (imported when first needed:
    it takes a second or two)."""
    from stripe import WebhookSignature

    header: str = WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=int(now.timestamp())
    )
    return header


# --- the vendors' formats -------------------------------------------------------------------------


def twilio_form(e: DemoEvent) -> list[tuple[str, str]]:
    """A Twilio Voice status callback for the call's final status."""
    status = TWILIO_STATUS[e.outcome or "no_answer"]
    form = [
        ("AccountSid", TWILIO_ACCOUNT),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", e.ref or ""),
        ("CallStatus", status),
        ("CallDuration", str(e.duration_s or 0)),
        ("CallbackSource", "call-progress-events"),
        ("Direction", "outbound-api"),
        ("From", e.extra["rep_phone"]),
        ("To", e.extra["buyer_phone"]),
        ("Timestamp", format_datetime(e.occurred_at)),
    ]
    if e.outcome in ("connected", "voicemail"):
        form.append(("AnsweredBy", "human" if e.outcome == "connected" else "machine_end_beep"))
    return form


def aircall_body(e: DemoEvent, token: str) -> dict[str, Any]:
    """Aircall's `call.ended` webhook."""
    ended = int(e.occurred_at.timestamp())
    answered = ended - e.duration_s if e.outcome == "connected" and e.duration_s is not None else None
    started = (answered or ended - 30) - int(e.extra.get("ring_s", 12))
    call_id = int(e.ref or 0)
    return {
        "resource": "call",
        "event": "call.ended",
        "timestamp": ended + 30,
        "token": token,
        "data": {
            "id": call_id,
            "direct_link": f"https://api.aircall.io/v1/calls/{call_id}",
            "started_at": started,
            "answered_at": answered,
            "ended_at": ended,
            "duration": ended - started,
            "status": "done",
            "direction": e.direction or "outbound",
            "raw_digits": e.extra["buyer_phone"],
            "voicemail": f"https://recordings.example/vm/{call_id}.mp3" if e.outcome == "voicemail" else None,
            "user": {"id": int(e.extra["aircall_user_id"])},
        },
    }


def sendgrid_item(e: DemoEvent) -> dict[str, Any]:
    """One SendGrid Event Webhook event; `rep_id` and `contact_id` are the message's custom args."""
    name = {"email.sent": "processed", "email.opened": "open", "email.clicked": "click"}[e.type]
    item: dict[str, Any] = {
        "email": e.extra["buyer_email"],
        "timestamp": int(e.occurred_at.timestamp()),
        "event": name,
        "sg_event_id": e.ref,
        "sg_message_id": e.extra["sg_message_id"],
        "category": ["salesloop-demo"],
        "rep_id": e.rep_id,
        "contact_id": e.contact_id,
    }
    if name == "open":
        item["sg_machine_open"] = False
    elif name == "click":
        item["url"] = "https://demo-sales.example/pricing"
    return item


def hubspot_item(e: DemoEvent) -> dict[str, Any]:
    """A HubSpot `deal.propertyChange` notification of the deal stage."""
    return {
        "eventId": int(e.ref or 0),
        "subscriptionId": HUBSPOT_DEALSTAGE_SUBSCRIPTION,
        "portalId": HUBSPOT_PORTAL,
        "appId": HUBSPOT_APP_ID,
        "occurredAt": int(e.occurred_at.timestamp() * 1000),
        "subscriptionType": "deal.propertyChange",
        "attemptNumber": 0,
        "objectId": int(e.deal_id or 0),
        "propertyName": "dealstage",
        "propertyValue": e.stage,
        "changeSource": "CRM_UI",
    }


def fathom_meeting(e: DemoEvent) -> dict[str, Any]:
    """Fathom's "new meeting content ready" webhook: the recording, its invitees and transcript."""
    started = e.occurred_at
    rep = {"name": e.extra["rep_name"], "email": e.extra["rep_email"]}
    buyer = {"name": e.extra["buyer_name"], "email": e.extra["buyer_email"]}
    speakers = {
        side: {"display_name": who["name"], "matched_calendar_invitee_email": who["email"]}
        for side, who in (("rep", rep), ("buyer", buyer))
    }
    return {
        "title": f"Demo Sales / {buyer['name']}",
        "meeting_title": f"Discovery call: Demo Sales and {buyer['name']}",
        "url": f"https://fathom.video/calls/{e.ref}",
        "recording_id": int(e.ref or 0),
        "recording_start_time": started.isoformat(),
        "recording_end_time": (started + timedelta(seconds=e.duration_s or 0)).isoformat(),
        "calendar_invitees_domains_type": "one_or_more_external",
        "recorded_by": {**rep, "email_domain": FATHOM_DOMAIN},
        "calendar_invitees": [{**rep, "is_external": False}, {**buyer, "is_external": True}],
        "transcript": [
            {"speaker": speakers[s.speaker], "text": s.text, "timestamp": _offset(s.start_s)}
            for s in e.transcript or ()
        ],
    }


def _offset(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def sendgrid_public_key(private_key: ec.EllipticCurvePrivateKey) -> str:
    """The verification key as SendGrid shows it: base64 DER SubjectPublicKeyInfo."""
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()
