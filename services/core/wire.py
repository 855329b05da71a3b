"""The wire format's decoder (SPEC 1, 2): one validation of a BuyerEvent, for both sides of the topic.

- `decode`: a Kafka message -> `Event` (what the archive and the folds read), or `Malformed`: why it
  cannot be folded. The aggregator's consumer, rebuild and replay read every message through it.
- `check_event`: one event a client posted -> `CheckedEvent` (the JSON ingest sends on), or the
  `Problem` of each bad field for the 422. It runs the very field checks `decode` runs, plus what only
  producers must meet: the client rules of services/core/limits.py and the rules of the event's type
  (services.core.events.type_problems). So whatever ingest accepts the aggregator folds, and the
  aggregator folds what the archive and its folds can hold, whoever wrote it.

Pure, no pydantic: both apply the checks of services/core/limits.py, which the pydantic models of
services/core/events.py apply too (tests/core/test_wire_agreement.py shows they agree).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache, partial
from typing import Any, Literal, NamedTuple, get_args

import orjson

from services.core import crm, limits
from services.core.crm import CrmMessageError, CrmUpdate
from services.core.events import (
    ALIAS_KINDS,
    DEAL_TYPES,
    LEAD_TYPES,
    SCHEMA_HEADER,
    Attribution,
    Channel,
    CheckedEvent,
    Direction,
    EventType,
    ForecastCategory,
    Outcome,
    Source,
    Speaker,
    type_problems,
)
from services.core.limits import (
    MAX_ALIAS_LEN,
    MAX_ID_LEN,
    MAX_SECONDS,
    MAX_STAGE_LEN,
    MAX_TENANT_LEN,
    MAX_TRANSCRIPT_SEGMENTS,
    REQUIRED,
    SERVICE_FIELD,
    UNKNOWN_FIELD,
    Check,
    Invalid,
)

Reason = Literal["schema_header", "invalid_json", "missing_field", "invalid_field"]
REASONS: tuple[Reason, ...] = ("schema_header", "invalid_json", "missing_field", "invalid_field")


@dataclass(slots=True)
class Event:
    """One decoded `StoredEvent`: only what the archive and the folds need, already validated."""

    tenant: str
    event_id: str
    type: EventType
    occurred_at: datetime
    received_at: datetime
    source: Source
    payload: str  # the event's JSON text, archived as is
    rep_id: str | None = None
    contact_id: str | None = None
    account_id: str | None = None
    channel: Channel | None = None
    direction: str | None = None
    outcome: str | None = None
    duration_ms: int | None = None
    rep_talk_ms: int | None = None
    buyer_talk_ms: int | None = None
    amount: Decimal | None = None
    currency: str | None = None
    stage: str | None = None
    passed: bool | None = None
    rep_alias: tuple[str, str] | None = None  # (kind, value) of a vendor identity, see SPEC 4
    deal_id: str | None = None
    module: str | None = None
    score: Decimal | None = None
    call_event_id: str | None = None  # call.transcribed: the call its transcript belongs to
    close_date: date | None = None
    forecast_category: str | None = None
    mrr: Decimal | None = None
    # ("deal", id) or ("contact", id) when the event's rep, amount and channel come from CRM entity
    # state (services/aggregator/folds/crm.py) rather than from the event itself: then it is counted there.
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


class Problem(NamedTuple):
    """One bad field of a client's event: `field` is a dotted path (None: the event as a whole)."""

    field: str | None
    reason: str


def decode(value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> Event | Malformed:
    """Validate one `salesloop.events.v1` message (SPEC 2) and pick out what the folds need."""
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
    payload = value.decode()
    if "\\u0000" in payload:
        # PostgreSQL cannot store NUL in jsonb; the archive keeps U+FFFD in its place.
        payload = orjson.dumps(_without_nul(data)).decode()
    get = data.get
    try:
        event = Event(
            _required(get, "tenant", _TENANT),
            _required(get, "event_id", _ID),
            _required(get, "type", _TYPE),
            _required(get, "occurred_at", limits.timestamp),
            _required(get, "received_at", limits.timestamp),
            _required(get, "source", _SOURCE),
            payload,
        )
        _fill(data, event)
    except Invalid as exc:
        tenant, event_id = get("tenant"), get("event_id")
        return Malformed(
            "missing_field" if exc.missing else "invalid_field",
            f"{_path(exc)} {exc.reason}",
            tenant if isinstance(tenant, str) else None,
            event_id if isinstance(event_id, str) else None,
        )
    if event.attribution is not None:
        event.entity = entity_of(event)
    return event


def check_event(
    obj: Any, *, now: datetime, currency: str | None, nul: bool = True, deep: bool = True
) -> CheckedEvent | list[Problem]:
    """Validate one event a client sent (SPEC 1) for a tenant reporting in `currency`, at time `now`.

    Every bad field is reported. `nul` and `deep` False skip walks through `attributes` for NUL
    characters and deep nesting, where a cheap look at the raw body has ruled them out.
    """
    if not isinstance(obj, dict):
        return [Problem(None, "must be a JSON object: one BuyerEvent")]
    fields = _client_fields(nul, deep)
    values: dict[str, Any] = {}  # JSON name -> the value as checked
    problems: list[Invalid] = []
    for name, v in obj.items():
        field = fields.get(name)
        if field is None:
            problems.append(Invalid(SERVICE_FIELD if name in _MESSAGE_ONLY else UNKNOWN_FIELD, str(name)))
        elif v is not None:
            try:
                values[name] = field[1](v)
            except Invalid as exc:
                problems.append(exc.within(name))
    problems += [Invalid(REQUIRED, name, missing=True) for name in _CLIENT_REQUIRED if obj.get(name) is None]
    problems += _client_rules(values, now, currency)
    if not problems:
        problems += [Invalid(reason, name) for name, reason in type_problems(values["type"], values.get)]
    if problems:
        return [Problem(_path(p), p.reason) for p in problems]
    body = {k: v for k, v in obj.items() if v is not None}
    # Amounts travel as decimal strings, exactly as given (the pydantic models dump them so too).
    for name in _AMOUNTS.intersection(values):
        body[name] = str(values[name])
    return CheckedEvent(body, values.get("rep_id"), values.get("contact_id"))


def _client_rules(values: dict[str, Any], now: datetime, currency: str | None) -> list[Invalid]:
    """What a client's event must meet beyond what the aggregator folds (the models say so too)."""
    problems = []
    try:
        if "occurred_at" in values:
            limits.not_ahead(values["occurred_at"], now)
    except Invalid as exc:
        problems.append(exc.within("occurred_at"))
    try:
        if "currency" in values:
            limits.tenant_currency(values["currency"], currency)
    except Invalid as exc:
        problems.append(exc.within("currency"))
    return problems


def entity_of(e: Event) -> tuple[str, str] | None:
    """The CRM entity an event marked `attribution: crm_entity` is attributed through, if any."""
    if e.type in DEAL_TYPES and e.deal_id is not None:
        return ("deal", e.deal_id)
    if e.type in LEAD_TYPES and e.contact_id is not None:
        return ("contact", e.contact_id)
    return None


def _required(get: Callable[[str], Any], name: str, check: Check) -> Any:
    v = get(name)
    if v is None:
        raise Invalid(REQUIRED, name, missing=True)
    try:
        return check(v)
    except Invalid as exc:
        raise exc.within(name) from None


def _fill(data: dict[str, Any], event: Event) -> None:
    """Check the optional fields present (most events carry few) into `event`; Invalid names the field."""
    name = ""
    try:
        for name, v in data.items():
            if v is not None and (field := _MESSAGE_FIELDS.get(name)) is not None:
                value = field[1](v)
                if field[0] is not None:
                    setattr(event, field[0], value)
    except Invalid as exc:
        raise exc.within(name) from None


def _path(problem: Invalid) -> str:
    return ".".join(problem.path)


# -- the fields: JSON name -> (the Event attribute it fills, or None: kept in the payload only; check) --

_Field = tuple[str | None, Check]
_ID = limits.text(MAX_ID_LEN)
_TENANT = limits.text(MAX_TENANT_LEN)
_TYPE = limits.choice(EventType)
_SOURCE = limits.choice(Source)


def _millis(v: Any) -> int:
    if type(v) is int and 0 <= v <= MAX_SECONDS:  # most durations: whole seconds
        return v * 1000
    return round(limits.seconds(v) * 1000)


def _alias(v: Any) -> tuple[str, str]:
    alias = limits.record(v, {"kind": limits.choice(ALIAS_KINDS), "value": limits.text(MAX_ALIAS_LEN)})
    return (alias["kind"], alias["value"])


def _transcript(text: Check) -> Check:
    segment = {
        "speaker": limits.choice(get_args(Speaker)),
        "start_s": limits.seconds,
        "end_s": limits.seconds,
        "text": text,
    }
    return partial(
        limits.items, check=partial(limits.record, fields=segment), max_items=MAX_TRANSCRIPT_SEGMENTS
    )


# What a message may carry besides the required tenant, event_id, type, occurred_at, received_at, source.
_EVENT_FIELDS: dict[str, _Field] = {
    "rep_id": ("rep_id", _ID),
    "contact_id": ("contact_id", _ID),
    "account_id": ("account_id", _ID),
    "deal_id": ("deal_id", _ID),
    "channel": ("channel", limits.choice(Channel)),
    "direction": ("direction", limits.choice(get_args(Direction))),
    "outcome": ("outcome", limits.choice(get_args(Outcome))),
    "duration_s": ("duration_ms", _millis),
    "rep_talk_s": ("rep_talk_ms", _millis),
    "buyer_talk_s": ("buyer_talk_ms", _millis),
    "amount": ("amount", limits.money),
    "currency": ("currency", limits.currency_code),
    "stage": ("stage", limits.text(MAX_STAGE_LEN)),
    "module": ("module", _ID),
    "score": ("score", limits.score),
    "passed": ("passed", limits.flag),
    "call_event_id": ("call_event_id", _ID),
    "close_date": ("close_date", limits.calendar_date),
    "forecast_category": ("forecast_category", limits.choice(get_args(ForecastCategory))),
    "mrr": ("mrr", limits.money),
    "transcript": (None, _transcript(partial(limits.free_text, nul=True))),
    "attributes": (None, limits.json_object),
}
_MESSAGE_FIELDS: dict[str, _Field] = {
    **_EVENT_FIELDS,
    "rep_alias": ("rep_alias", _alias),
    "attribution": ("attribution", limits.choice(get_args(Attribution))),
}
_CLIENT_REQUIRED = ("event_id", "type", "occurred_at")
_AMOUNTS = frozenset({"amount", "mrr"})
_MESSAGE_ONLY = frozenset({"tenant", "source", "received_at", *_MESSAGE_FIELDS}) - set(_EVENT_FIELDS)


@cache
def _client_fields(nul: bool, deep: bool) -> dict[str, _Field]:
    """The fields a client may send, with the stricter checks for what clients send."""
    return {
        "event_id": ("event_id", _ID),
        "type": ("type", _TYPE),
        "occurred_at": ("occurred_at", limits.timestamp),
        **_EVENT_FIELDS,
        "rep_id": ("rep_id", limits.rep_id),  # one a URL reads back; the archive keeps older ones
        "amount": ("amount", limits.exact_money),
        "mrr": ("mrr", limits.exact_money),
        "transcript": (None, _transcript(limits.free_text)),
        "attributes": (None, partial(limits.attributes, nul=nul, deep=deep)),
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
