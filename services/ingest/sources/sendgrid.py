"""SendGrid (Twilio) signed Event Webhook: ECDSA P-256 over timestamp + raw body, and email events.

The tenant's secret is the verification key exactly as SendGrid shows it (base64 DER
SubjectPublicKeyInfo); a PEM block is accepted too. `X-Twilio-Email-Event-Webhook-Timestamp` (Unix
seconds) may be up to 25 hours old and at most 5 minutes ahead: SendGrid retries a delivery for up to
24 hours after the event and does not document whether a retry is signed afresh, so a retry signed
at its first attempt must still verify. A replay inside that window names the same events (their ids
come from `sg_event_id`, else from the event itself), which the archive keeps once
(docs/vendors/sendgrid.md).

processed -> email.sent, open -> email.opened, click -> email.clicked, bounce / dropped ->
email.bounced; every other event is ignored, and so are opens SendGrid flags as machine opens
(`sg_machine_open`: mail privacy proxies fetch every image, which says nothing about the buyer) and
bounces of type `blocked` (the receiving server refused the message for now, which is no bounce).
Rep, contact, deal and account come from the custom args `rep_id`, `contact_id`, `deal_id` and
`account_id`, which SendGrid copies to the top level of each event. SendGrid posts arrays; one event
object on its own (the shape SendGrid's libraries sign in their tests) is read as a batch of one.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.core.events import EventType, Source

from .common import InboundRequest, MappingContext, Normalised, PayloadError, SignatureError, VendorEvent
from .kit import (
    DEFAULT_TOLERANCE,
    check_signed_time,
    fingerprint,
    from_epoch,
    header,
    json_object,
    json_objects,
    make_event,
    required,
    text,
)
from .registry import Vendor

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
_TYPES = {
    "processed": EventType.EMAIL_SENT,
    "open": EventType.EMAIL_OPENED,
    "click": EventType.EMAIL_CLICKED,
    "bounce": EventType.EMAIL_BOUNCED,
    "dropped": EventType.EMAIL_BOUNCED,
}
_NAMES = {"occurred_at": "timestamp", "event_id": "sg_event_id"}
# SendGrid's 24 hours of retries, and an hour for clocks and the last retry's back-off.
MAX_AGE = timedelta(hours=25)


# Every delivery is verified with its tenant's key: parse each key once.
@lru_cache(maxsize=256)
def load_public_key(key: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it; ValueError if it is not a P-256 public key."""
    try:
        if "BEGIN PUBLIC KEY" in key:
            loaded = serialization.load_pem_public_key(key.encode())
        else:
            loaded = serialization.load_der_public_key(base64.b64decode("".join(key.split()), validate=True))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ValueError("not a base64 DER or PEM public key") from exc
    if not isinstance(loaded, ec.EllipticCurvePublicKey) or loaded.curve.name != "secp256r1":
        raise ValueError("not an ECDSA P-256 public key")
    return loaded


def sign(private_key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    """What SendGrid does with its private key; for tests and the demo loader."""
    return base64.b64encode(private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


def verify(request: InboundRequest, secret: str, options: None = None) -> None:
    signature = header(request.headers, SIGNATURE)
    if not signature:
        raise SignatureError(f"missing {SIGNATURE} header")
    timestamp = _check_signed_time(header(request.headers, TIMESTAMP), request.now)
    try:
        key = load_public_key(secret)
    except ValueError:
        raise SignatureError(
            "the tenant's SendGrid verification key is not an ECDSA P-256 public key"
        ) from None
    try:
        decoded = base64.b64decode(signature.strip(), validate=True)
    except binascii.Error:
        raise SignatureError("signature is not base64") from None
    try:
        key.verify(decoded, timestamp.encode() + request.body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("signature does not match") from None


def _check_signed_time(value: str | None, now: datetime) -> str:
    """The signed timestamp as sent, if at most MAX_AGE old and DEFAULT_TOLERANCE ahead."""
    # The kit reads it (missing or malformed: refused); the window is not the kit's symmetric one.
    timestamp = check_signed_time(value, TIMESTAMP, now, unit="s", tolerance=timedelta.max)
    sent_at = from_epoch(timestamp, unit="s", field=TIMESTAMP)
    if now - sent_at > MAX_AGE:
        raise SignatureError(f"timestamp is older than {MAX_AGE // timedelta(hours=1)} hours")
    if sent_at - now > DEFAULT_TOLERANCE:
        raise SignatureError(
            f"timestamp is more than {DEFAULT_TOLERANCE // timedelta(minutes=1)} minutes in the future"
        )
    return timestamp


def parse(body: bytes) -> list[dict[str, Any]]:
    if body.lstrip()[:1] == b"{":
        return [json_object(body, "a SendGrid event")]
    return json_objects(body, "SendGrid events")


def _counted(name: str, item: dict[str, Any]) -> bool:
    """False for events that say nothing about the buyer: machine opens, temporary rejections."""
    if name == "open":
        return item.get("sg_machine_open") is not True
    if name == "bounce":
        return (text(item.get("type")) or "").lower() != "blocked"
    return True


def to_events(payload: list[dict[str, Any]], ctx: MappingContext, options: None = None) -> Normalised:
    events: list[VendorEvent] = []
    ignored = 0
    for i, item in enumerate(payload):
        name = required(item, "event", i)
        type_ = _TYPES.get(name)
        if type_ is None or not _counted(name, item):
            ignored += 1
            continue
        if item.get("timestamp") is None:
            raise PayloadError("timestamp", "is required", i)
        # Without sg_event_id, the event itself (which SendGrid resends unchanged) names it.
        vendor_id = text(item.get("sg_event_id")) or fingerprint(item)
        attributes = {
            "sendgrid_event": name,
            "sg_message_id": text(item.get("sg_message_id")),
            "sendgrid_bounce_type": text(item.get("type")) if name == "bounce" else None,
            "sendgrid_category": item.get("category")
            if isinstance(item.get("category"), str | list)
            else None,
        }
        event = make_event(
            ctx,
            index=i,
            names=_NAMES,
            event_id=f"sendgrid:{vendor_id}",
            type=type_,
            occurred_at=from_epoch(item["timestamp"], unit="s", field="timestamp", index=i),
            rep_id=text(item.get("rep_id")),
            contact_id=text(item.get("contact_id")),
            deal_id=text(item.get("deal_id")),
            account_id=text(item.get("account_id")),
            direction="outbound",
            attributes={k: v for k, v in attributes.items() if v is not None},
        )
        events.append(event)
    return Normalised(events=events, ignored=ignored)


def check_key(secret: str) -> None:
    """ValueError, saying what the secret should be, unless it is a verification key."""
    try:
        load_public_key(secret)
    except ValueError as exc:
        raise ValueError(
            "the SendGrid secret is the Event Webhook verification key as SendGrid shows it"
            f" (base64, or a PEM block): {exc}"
        ) from None


def _key_decoy() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


VENDOR = Vendor(
    Source.SENDGRID, "SendGrid", __doc__, verify, parse, to_events, decoy=_key_decoy, check_secret=check_key
)
