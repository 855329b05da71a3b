"""Aircall webhooks: `{event, resource, timestamp, token, data}`, authenticated by the body's `token`.

Only `call.ended` (sent about 30 s after hang-up, once duration and voicemail are known) maps to a
BuyerEvent. Times are Unix seconds. Outcome: answered (`answered_at` set) -> connected, else a
voicemail left -> voicemail, else no_answer. `duration_s` is the conversation, from answer to end;
Aircall's own `duration` (which counts ringing too) is kept in the attributes. The rep is the call's
user; a call nobody took has none and is held under the number it came in on (see `_rep`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from services.core.events import EventType, RepAlias, Source

from .common import InboundRequest, MappingContext, Normalised, PayloadError, SignatureError
from .kit import equal, from_epoch, json_object, load_json, make_event, rep_identity, required, text
from .registry import Vendor

_PUNCTUATION = re.compile(r"[\s().-]")
_NAMES = {"event_id": "data.id", "occurred_at": "data.ended_at", "direction": "data.direction"}


def verify(request: InboundRequest, secret: str, options: None = None) -> None:
    payload = load_json(request.body)
    token = payload.get("token") if isinstance(payload, dict) else None
    if not isinstance(token, str) or not token:
        raise SignatureError("missing token")
    if not equal(token, secret):
        raise SignatureError("token does not match")


def parse(body: bytes) -> dict[str, Any]:
    return json_object(body, "a JSON object {event, resource, timestamp, token, data}")


def to_events(payload: dict[str, Any], ctx: MappingContext, options: None = None) -> Normalised:
    event_name = required(payload, "event")
    if event_name != "call.ended":
        return Normalised(events=[], ignored=1)
    data = payload.get("data")
    if not isinstance(data, dict):
        raise PayloadError("data", "must be the call object")
    call_id = text(data.get("id"))
    if call_id is None:
        raise PayloadError("data.id", "is required")

    answered_at = _time(data, "answered_at")
    ended_at = _time(data, "ended_at")
    if answered_at is not None:
        outcome = "connected"
    elif text(data.get("voicemail")):
        outcome = "voicemail"
    else:
        outcome = "no_answer"
    duration_s = None
    if answered_at is not None and ended_at is not None:
        duration_s = max((ended_at - answered_at).total_seconds(), 0.0)
    occurred_at = ended_at or _envelope_time(payload) or ctx.received_at

    contact = data.get("contact")
    attributes = {
        "buyer_phone": text(data.get("raw_digits")),
        "aircall_duration_s": data.get("duration") if isinstance(data.get("duration"), int | float) else None,
        "aircall_missed_call_reason": text(data.get("missed_call_reason")),
        "aircall_contact_id": text(contact.get("id")) if isinstance(contact, dict) else None,
    }
    event = make_event(
        ctx,
        names=_NAMES,
        rep_alias=_rep(data),
        event_id=f"aircall:{call_id}:{event_name}",
        type=EventType.CALL_COMPLETED,
        occurred_at=occurred_at,
        direction=_direction(data.get("direction")),
        outcome=outcome,
        duration_s=duration_s,
        attributes={k: v for k, v in attributes.items() if v is not None},
    )
    return Normalised(events=[event], ignored=0)


def _rep(data: dict[str, Any]) -> RepAlias | None:
    """The user who took or made the call; for a call nobody took (no user), the Aircall number it
    came in on, as a phone identity: such calls count as unassigned under that number until a rep
    has it as an alias."""
    user = data.get("user")
    if isinstance(user, dict) and (user_id := text(user.get("id"))) is not None:
        return rep_identity("aircall_user_id", user_id)
    number = data.get("number")
    digits = text(number.get("digits")) if isinstance(number, dict) else None
    # Aircall writes "+1 415-555-0100"; a rep's phone alias is written "+14155550100".
    return rep_identity("phone", _PUNCTUATION.sub("", digits or "") or None)


def _time(data: dict[str, Any], name: str) -> datetime | None:
    value = data.get(name)
    return None if value is None else from_epoch(value, unit="s", field=f"data.{name}")


def _envelope_time(payload: dict[str, Any]) -> datetime | None:
    value = payload.get("timestamp")
    return None if value is None else from_epoch(value, unit="s", field="timestamp")


def _direction(value: Any) -> str | None:
    direction = text(value)
    if direction is None:
        return None
    if direction not in ("inbound", "outbound"):
        raise PayloadError("data.direction", "must be 'inbound' or 'outbound'")
    return direction


VENDOR = Vendor(Source.AIRCALL, "Aircall", __doc__, verify, parse, to_events)
