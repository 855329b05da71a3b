"""SendGrid (Twilio) signed Event Webhook: ECDSA P-256 over timestamp + raw body, and email events.

The tenant's secret is the verification key exactly as SendGrid shows it (base64 DER
SubjectPublicKeyInfo); a PEM block is accepted too. SendGrid documents no replay window, so the
common 5-minute one applies to `X-Twilio-Email-Event-Webhook-Timestamp` (Unix seconds); SendGrid signs
every delivery attempt afresh, and a replayed event is dropped by its id anyway.

processed -> email.sent, open -> email.opened, click -> email.clicked, bounce / dropped ->
email.bounced; every other event is ignored, and so are opens SendGrid flags as machine opens
(`sg_machine_open`: mail privacy proxies fetch every image, which says nothing about the buyer).
Rep, contact, deal and account come from the custom args `rep_id`, `contact_id`, `deal_id` and
`account_id`, which SendGrid copies to the top level of each event.
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.core.events import EventType, Source

from .common import InboundRequest, MappingContext, Normalised, PayloadError, SignatureError, VendorEvent
from .kit import (
    check_signed_time,
    fingerprint,
    from_epoch,
    header,
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
    sent_at = header(request.headers, TIMESTAMP)
    timestamp = check_signed_time(sent_at, TIMESTAMP, request.now, unit="s")
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


def parse(body: bytes) -> list[dict[str, Any]]:
    return json_objects(body, "SendGrid events")


def to_events(payload: list[dict[str, Any]], ctx: MappingContext, options: None = None) -> Normalised:
    events: list[VendorEvent] = []
    ignored = 0
    for i, item in enumerate(payload):
        name = required(item, "event", i)
        type_ = _TYPES.get(name)
        if type_ is None or (name == "open" and item.get("sg_machine_open") is True):
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
