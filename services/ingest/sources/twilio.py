"""Twilio Voice status callbacks: `X-Twilio-Signature` and call statuses.

The signature is base64(HMAC-SHA1(auth token, URL + every POST parameter, sorted by name, as name +
value)), over the URL Twilio called. Twilio signs that URL with or without the default port
depending on the path the request took, and a ' in its query may arrive as %27 or the reverse, so
those forms are tried, as Twilio's own validators do (`_url_forms`).
An `X-Twilio-Webhooks-Signature-Settings` header naming HMAC_SHA256 selects SHA-256 (shared keys).
A JSON webhook (the body's SHA-256 as `bodySHA256` in the URL, the signature over the URL alone) is
verified, then refused with 422: Twilio posts call status callbacks as forms only.

Terminal statuses become `call.completed`; ringing, in-progress, queued and initiated are ignored.
Outcomes: completed -> connected (voicemail when answering-machine detection says a machine answered,
failed for a fax), busy -> busy, no-answer -> no_answer, failed -> failed, and canceled -> no_answer:
the caller hung up while it was still ringing, which for a dial means nobody picked up.
The rep is the side of the leg that is the team's, and the direction the conversation's (`_sides`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit, urlunsplit

from services.core.events import EventType, Source

from .common import InboundRequest, MappingContext, Normalised, PayloadError, SignatureError
from .kit import equal, header, make_event, rep_identity, required, text
from .registry import JSON, Vendor

FORM = "application/x-www-form-urlencoded"
SIGNATURE = "X-Twilio-Signature"
SIGNATURE_SETTINGS = "X-Twilio-Webhooks-Signature-Settings"
_DIGESTS = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_OUTCOMES = {
    "completed": "connected",
    "busy": "busy",
    "no-answer": "no_answer",
    "failed": "failed",
    "canceled": "no_answer",
}
_MAX_FIELDS = 500
_NAMES = {"occurred_at": "Timestamp", "duration_s": "CallDuration", "event_id": "CallSid"}
_NOT_A_STATUS_CALLBACK = (
    "a JSON webhook (signed with bodySHA256) is no call status callback, and Twilio's status callbacks are"
    " form posts: give this URL as a call's StatusCallback, not to Event Streams or a Studio HTTP request"
)


def sign(secret: str, url: str, params: Sequence[tuple[str, str]], algorithm: str = "HMAC_SHA1") -> str:
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    message = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    digest = hmac.new(secret.encode(), message.encode(), _DIGESTS[algorithm]).digest()
    return base64.b64encode(digest).decode()


def verify(request: InboundRequest, secret: str, options: None = None) -> None:
    signature = header(request.headers, SIGNATURE)
    if not signature:
        raise SignatureError(f"missing {SIGNATURE} header")
    algorithm = _algorithm(header(request.headers, SIGNATURE_SETTINGS))
    query_string = urlsplit(request.url).query
    body_hash = (parse_qs(query_string) if query_string else {}).get("bodySHA256")
    if body_hash:
        # JSON webhooks sign the URL only; the body is bound by its hash in the query string.
        if not equal(hashlib.sha256(request.body).hexdigest(), body_hash[0]):
            raise SignatureError("body does not match bodySHA256")
        params: Sequence[tuple[str, str]] = ()
    elif _media_type(request.headers) == JSON:
        raise SignatureError("missing bodySHA256: Twilio signs a JSON body by its hash in the URL")
    else:
        params = _form(request.body)
    if not any(
        equal(sign(secret, url, params, algorithm), signature.strip()) for url in _url_forms(request.url)
    ):
        raise SignatureError("signature does not match")
    if body_hash:
        raise PayloadError(None, _NOT_A_STATUS_CALLBACK)


def parse(body: bytes) -> dict[str, str]:
    return dict(_form(body))


def to_events(payload: Mapping[str, str], ctx: MappingContext, options: None = None) -> Normalised:
    call_sid = required(payload, "CallSid")
    status = required(payload, "CallStatus").lower()
    if status not in _OUTCOMES:
        return Normalised(events=[], ignored=1)

    direction, rep_number, buyer_number = _sides(payload)
    answered_by = (text(payload.get("AnsweredBy")) or "").lower()
    outcome = _OUTCOMES[status]
    if status == "completed" and answered_by.startswith("machine"):
        outcome = "voicemail"
    elif status == "completed" and answered_by == "fax":
        outcome = "failed"
    attributes = {
        "buyer_phone": buyer_number,
        "twilio_call_status": status,
        "twilio_direction": text(payload.get("Direction")),
        "twilio_answered_by": answered_by or None,
        "twilio_parent_call_sid": text(payload.get("ParentCallSid")),
    }
    event = make_event(
        ctx,
        names=_NAMES,
        rep_alias=rep_identity("phone", rep_number),
        event_id=f"twilio:{call_sid}:{status}",
        type=EventType.CALL_COMPLETED,
        occurred_at=_timestamp(payload.get("Timestamp"), ctx),
        direction=direction,
        outcome=outcome,
        duration_s=_duration(payload.get("CallDuration")),
        attributes={k: v for k, v in attributes.items() if v is not None},
    )
    return Normalised(events=[event], ignored=0)


def _media_type(headers: Mapping[str, str]) -> str:
    return (header(headers, "Content-Type") or "").partition(";")[0].strip().lower()


def _algorithm(settings: str | None) -> str:
    """`key=<shared key id>,algorithm=<name>`; absent means the auth-token signature, HMAC-SHA1."""
    for part in (settings or "").split(","):
        name, _, value = part.partition("=")
        if name.strip().lower() == "algorithm" and value.strip():
            algorithm = value.strip().upper()
            if algorithm not in _DIGESTS:
                raise SignatureError(f"unsupported signature algorithm {algorithm[:20]!r}")
            return algorithm
    return "HMAC_SHA1"


def _url_forms(url: str) -> list[str]:
    """The URLs Twilio may have signed for the one requested, as its own validators try them: with and
    without the scheme's default port (twilio-python, twilio-node), each with the query as received,
    with every ' in it as %27 and with every %27 as ' (twilio-node, whose WHATWG parsing escapes ' and
    whose legacy parsing does not: Twilio signs ' unescaped, an HTTP client between may escape it)."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    without = parts._replace(netloc=prefix + host)
    port = parts.port or default
    with_port = parts._replace(netloc=f"{prefix}{host}:{port}") if port else without
    forms = [url]
    for form in (without, with_port):
        queries = (form.query, form.query.replace("'", "%27"), form.query.replace("%27", "'"))
        forms += [urlunsplit(form._replace(query=query)) for query in queries]
    return list(dict.fromkeys(forms))


# The webhook route verifies a body and then parses the same body: one parse serves both.
@lru_cache(maxsize=1)
def _form(body: bytes) -> tuple[tuple[str, str], ...]:
    try:
        return tuple(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=_MAX_FIELDS))
    except UnicodeDecodeError:
        raise PayloadError(None, "must be a UTF-8 form (application/x-www-form-urlencoded)") from None
    except ValueError:
        raise PayloadError(None, f"must hold at most {_MAX_FIELDS} form fields") from None


def _sides(payload: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    """(the conversation's direction, the rep's side of the leg, the buyer's) by the leg's Direction.

    inbound: someone called a number of the team's (From, the buyer) and To is the rep's number;
    except that a call a rep places from a Voice SDK device reaches Twilio as an inbound leg from
    `client:<identity>`, an outbound conversation to To. outbound-api: the REST API called To from
    the rep's caller ID (From). outbound-dial: a child leg <Dial> placed to the rep's phone or client
    (To); From is the parent call's caller, the buyer, so the conversation is inbound for the rep.
    """
    leg = (text(payload.get("Direction")) or "").lower()
    caller, called = text(payload.get("From")), text(payload.get("To"))
    if leg == "inbound" and (caller or "").lower().startswith("client:"):
        return "outbound", caller, called
    if leg in ("inbound", "outbound-dial"):
        return "inbound", called, caller
    if leg == "outbound-api":
        return "outbound", caller, called
    return None, None, None


def _timestamp(value: Any, ctx: MappingContext) -> datetime:
    raw = text(value)
    if raw is None:
        return ctx.received_at
    try:
        moment = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        raise PayloadError(
            "Timestamp", "must be an RFC 2822 date such as 'Mon, 16 Aug 2010 03:45:01 +0000'"
        ) from None
    # RFC 2822 "-0000" means UTC with no local offset known; parsedate_to_datetime returns it naive.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _duration(value: Any) -> int | None:
    raw = text(value)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit():
        raise PayloadError("CallDuration", "must be a whole number of seconds")
    return int(raw)


# JSON is taken only to be verified before it is refused (`verify`): what it says is no status callback.
VENDOR = Vendor(Source.TWILIO, "Twilio", __doc__, verify, parse, to_events, media_types=(FORM, JSON))
