"""The wire format's decoder: Kafka message -> `Event`, or why it cannot be folded. Pure, no pydantic.

Everything the archive columns and the rollups would reject is caught here, so one bad message can
never stall a partition: a message that fails is skipped (and later dead-lettered), never retried.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, NamedTuple, get_args

import orjson

from services.core import crm
from services.core.crm import CrmMessageError, CrmUpdate
from services.core.events import ALIAS_KINDS, SCHEMA_HEADER, Attribution, Channel, EventType, Source

Reason = Literal["schema_header", "invalid_json", "missing_field", "invalid_field"]
REASONS: tuple[Reason, ...] = ("schema_header", "invalid_json", "missing_field", "invalid_field")

_TYPES = frozenset(t.value for t in EventType)
_SOURCES = frozenset(s.value for s in Source)
_CHANNELS = frozenset(c.value for c in Channel)
_ALIAS_KINDS = frozenset(ALIAS_KINDS)
_ATTRIBUTIONS = frozenset(get_args(Attribution))
_MAX_SECONDS = 10_000_000
_MAX_AMOUNT = Decimal("1e15")
_AMOUNT_QUANTUM = Decimal("0.0001")
# Far enough from datetime's limits that shifting into any timezone cannot overflow.
_MIN_YEAR, _MAX_YEAR = 1900, 9000


@dataclass(slots=True)
class Event:
    """One decoded `StoredEvent`: only what the archive and the fold need, already validated."""

    tenant: str
    event_id: str
    type: str
    occurred_at: datetime
    received_at: datetime
    source: str
    payload: str  # the event's JSON text, archived as is
    rep_id: str | None = None
    contact_id: str | None = None
    channel: str | None = None
    direction: str | None = None
    outcome: str | None = None
    duration_ms: int | None = None
    rep_talk_ms: int | None = None
    buyer_talk_ms: int | None = None
    amount: Decimal | None = None
    stage: str | None = None
    passed: bool | None = None
    rep_alias: tuple[str, str] | None = None  # (kind, value) of a vendor identity, see SPEC 4
    deal_id: str | None = None
    module: str | None = None
    score: Decimal | None = None
    # ("deal", id) or ("contact", id) when the event's rep, amount and channel come from CRM entity
    # state (services/aggregator/crm.py) rather than from the event itself: then it is counted there.
    entity: tuple[str, str] | None = None
    attribution: str | None = None  # "crm_entity": see services.core.events.Attribution

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant, self.event_id)


class Malformed(NamedTuple):
    reason: Reason
    detail: str
    tenant: str | None = None
    event_id: str | None = None


class _Invalid(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def decode(value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> Event | Malformed:
    """Validate one `salesloop.events.v1` message (SPEC 2) and pick out what the fold needs."""
    if SCHEMA_HEADER not in headers:
        found = next((v for k, v in headers if k == SCHEMA_HEADER[0]), None)
        return Malformed("schema_header", f"schema header is {found!r}, expected {SCHEMA_HEADER[1]!r}")
    if not value:
        return Malformed("invalid_json", "empty message")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Malformed("invalid_json", str(exc))
    if not isinstance(data, dict):
        return Malformed("invalid_json", "not a JSON object")
    try:
        return _event(data, value)
    except _Invalid as exc:
        tenant, event_id = data.get("tenant"), data.get("event_id")
        return Malformed(
            exc.reason,
            exc.detail,
            tenant if isinstance(tenant, str) else None,
            event_id if isinstance(event_id, str) else None,
        )


def _event(data: dict[str, Any], value: bytes) -> Event:
    get = data.get
    payload = value.decode()
    if "\\u0000" in payload:
        # PostgreSQL cannot store NUL in jsonb; the archive keeps U+FFFD in its place.
        payload = orjson.dumps(_without_nul(data)).decode()
    event = Event(
        _text("tenant", get("tenant"), 63, required=True),
        _text("event_id", get("event_id"), 200, required=True),
        _choice("type", get("type"), _TYPES, required=True),
        _time("occurred_at", get("occurred_at")),
        _time("received_at", get("received_at")),
        _choice("source", get("source"), _SOURCES, required=True),
        payload,
    )
    # Optional fields: most events carry few of them, so only present ones are checked.
    for name, v in data.items():
        if v is not None and (spec := _OPTIONAL.get(name)) is not None:
            setattr(event, spec[0], spec[1](name, v))
    if event.attribution is not None:
        event.entity = entity_of(event)
    return event


DEAL_TYPES = frozenset({"deal.created", "deal.stage_changed", "deal.updated", "deal.won", "deal.lost"})
LEAD_TYPES = frozenset({"lead.created", "lead.qualified"})


def entity_of(e: Event) -> tuple[str, str] | None:
    """The CRM entity an event marked `attribution: crm_entity` is attributed through, if any."""
    if e.type in DEAL_TYPES and e.deal_id is not None:
        return ("deal", e.deal_id)
    if e.type in LEAD_TYPES and e.contact_id is not None:
        return ("contact", e.contact_id)
    return None


def _text(name: str, v: Any, max_len: int, *, required: bool = False) -> Any:
    if v is None:
        if required:
            raise _Invalid("missing_field", f"{name} is required")
        return None
    if not isinstance(v, str) or not 0 < len(v) <= max_len or "\x00" in v:
        raise _Invalid("invalid_field", f"{name} must be a string of 1-{max_len} characters")
    return v


def _choice(name: str, v: Any, allowed: frozenset[str], *, required: bool = False) -> Any:
    if v is None:
        if required:
            raise _Invalid("missing_field", f"{name} is required")
        return None
    if not isinstance(v, str) or v not in allowed:
        raise _Invalid("invalid_field", f"{name} {str(v)[:50]!r} is not one of the known values")
    return v


def _time(name: str, v: Any) -> datetime:
    if v is None:
        raise _Invalid("missing_field", f"{name} is required")
    try:
        at = datetime.fromisoformat(v)
    except (TypeError, ValueError):
        raise _Invalid("invalid_field", f"{name} must be an RFC 3339 timestamp") from None
    if at.tzinfo is None or not _MIN_YEAR <= at.year <= _MAX_YEAR:
        raise _Invalid("invalid_field", f"{name} must be a timestamp with an offset")
    return at


def _millis(name: str, v: Any) -> int:
    if type(v) is int and 0 <= v <= _MAX_SECONDS:  # most durations: whole seconds
        return v * 1000
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= _MAX_SECONDS:
        raise _Invalid("invalid_field", f"{name} must be a number of seconds >= 0")
    return round(v * 1000)


def _money(name: str, v: Any) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, str | int | float):
        raise _Invalid("invalid_field", f"{name} must be a decimal number")
    try:
        amount = Decimal(repr(v) if isinstance(v, float) else v)
    except InvalidOperation:
        raise _Invalid("invalid_field", f"{name} must be a decimal number") from None
    if not amount.is_finite() or not 0 <= amount <= _MAX_AMOUNT:
        raise _Invalid("invalid_field", f"{name} must be between 0 and 1e15")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4:
        amount = amount.quantize(_AMOUNT_QUANTUM)
    return amount


def _score(name: str, v: Any) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 100:
        raise _Invalid("invalid_field", f"{name} must be a number between 0 and 100")
    return Decimal(repr(v)) if isinstance(v, float) else Decimal(v)


def _flag(name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Invalid("invalid_field", f"{name} must be true or false")
    return v


def _alias(name: str, v: Any) -> tuple[str, str]:
    if not isinstance(v, dict):
        raise _Invalid("invalid_field", f"{name} must be an object {{kind, value}}")
    kind = _choice(f"{name}.kind", v.get("kind"), _ALIAS_KINDS, required=True)
    return (kind, _text(f"{name}.value", v.get("value"), 320, required=True))


def _short_text(max_len: int) -> Callable[[str, Any], Any]:
    return lambda name, v: _text(name, v, max_len)


def _one_of(allowed: frozenset[str]) -> Callable[[str, Any], Any]:
    return lambda name, v: _choice(name, v, allowed)


# JSON field -> (Event attribute, validator) for the optional fields the fold reads.
_OPTIONAL: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
    "rep_id": ("rep_id", _short_text(200)),
    "contact_id": ("contact_id", _short_text(200)),
    "channel": ("channel", _one_of(_CHANNELS)),
    "direction": ("direction", _short_text(20)),
    "outcome": ("outcome", _short_text(20)),
    "duration_s": ("duration_ms", _millis),
    "rep_talk_s": ("rep_talk_ms", _millis),
    "buyer_talk_s": ("buyer_talk_ms", _millis),
    "amount": ("amount", _money),
    "stage": ("stage", _short_text(100)),
    "passed": ("passed", _flag),
    "rep_alias": ("rep_alias", _alias),
    "deal_id": ("deal_id", _short_text(200)),
    "module": ("module", _short_text(200)),
    "score": ("score", _score),
    "attribution": ("attribution", _one_of(_ATTRIBUTIONS)),
}


def _without_nul(v: Any) -> Any:
    if isinstance(v, str):
        return v.replace("\x00", "\ufffd")
    if isinstance(v, dict):
        return {_without_nul(k): _without_nul(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_without_nul(x) for x in v]
    return v


# -- CRM entity updates share the topic, told apart by their schema header (services/core/crm.py) --


def decode_message(
    value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> Event | CrmUpdate | Malformed:
    """Any message of the events topic: a BuyerEvent, a CRM entity update, or why it cannot be folded."""
    if crm.SCHEMA_HEADER not in headers:
        return decode(value, headers)
    try:
        return crm.parse(value)
    except CrmMessageError as exc:
        data = _object(value)
        tenant, update_id = data.get("tenant"), data.get("update_id")
        return Malformed(
            exc.reason,
            exc.detail,
            tenant if isinstance(tenant, str) else None,
            update_id if isinstance(update_id, str) else None,
        )


def _object(value: bytes | None) -> dict[str, Any]:
    try:
        data = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}
