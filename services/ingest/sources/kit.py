"""Small pure helpers every vendor adapter may use: headers, signatures and signed timestamps, JSON
bodies, Unix times, text values, channels, and making a validated event.

Adapters are pure: no I/O and no clock reads. Time comes in as `InboundRequest.now` (signature
tolerance) and `MappingContext.received_at` (the fallback event time and the "now" of validation).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import orjson
from pydantic import ValidationError

from services.core import limits
from services.core.crm_values import channel_for as channel_for  # the adapters' lead sources -> channels
from services.core.events import AliasKind, BuyerEvent, RepAlias

from .common import MappingContext, PayloadError, SignatureError, VendorEvent

DEFAULT_TOLERANCE = timedelta(minutes=5)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Signed timestamps longer than these are refused before they could overflow a datetime.
_DIGITS = {"ms": re.compile(r"[0-9]{1,15}"), "s": re.compile(r"[0-9]{1,12}")}


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that also works on a plain dict."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, item in headers.items():
        if key.lower() == lowered:
            return item
    return None


def equal(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time comparison; str is compared as UTF-8 (compare_digest refuses non-ASCII str)."""
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


def check_signed_time(
    value: str | None,
    name: str,
    now: datetime,
    *,
    unit: Literal["s", "ms"],
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> str:
    """The signed Unix timestamp `value` (the header or field `name`) as sent; SignatureError when it
    is missing, not a number, or outside `now ± tolerance`."""
    value = (value or "").strip()
    if not value:
        raise SignatureError(f"missing {name} header")
    try:
        if not _DIGITS[unit].fullmatch(value):
            raise PayloadError(name, "not digits")
        sent_at = from_epoch(value, unit=unit, field=name)
    except PayloadError:  # a credential that makes no sense: as unauthorised as a wrong one
        what = "a millisecond Unix timestamp" if unit == "ms" else "a Unix timestamp in seconds"
        raise SignatureError(f"{name} is not {what}") from None
    check_timestamp(sent_at, now, tolerance)
    return value


def check_timestamp(sent_at: datetime, now: datetime, tolerance: timedelta = DEFAULT_TOLERANCE) -> None:
    """Refuse a signed timestamp outside `now ± tolerance`: old ones are replays, future ones forged."""
    if now - sent_at > tolerance:
        raise SignatureError(f"timestamp is older than {_minutes(tolerance)}")
    if sent_at - now > tolerance:
        raise SignatureError(f"timestamp is more than {_minutes(tolerance)} in the future")


def public_url(
    *,
    scheme: str,
    host: str,
    path: str,
    query: str = "",
    port: int | None = None,
    base_url: str | None = None,
) -> str:
    """The URL the vendor called, which is what it signed.

    Behind a proxy the request's own scheme/host/port are the proxy's, so a configured public base URL
    (SALESLOOP_PUBLIC_BASE_URL, possibly with a path prefix) replaces them. `query` is the raw query.
    """
    if base_url:
        origin = base_url.rstrip("/")
    else:
        netloc = host
        if port is not None and port != _DEFAULT_PORTS.get(scheme) and not _has_port(host):
            netloc = f"{host}:{port}"
        origin = f"{scheme}://{netloc}"
    url = origin + (path if path.startswith("/") else "/" + path)
    return f"{url}?{query}" if query else url


def fingerprint(*parts: Any) -> str:
    """A deterministic id for things the vendor gives no id: the same input always gives the same id."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:40]


def load_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(None, f"not valid UTF-8 JSON: {exc.msg}") from None


def json_object(body: bytes, what: str) -> dict[str, Any]:
    """A body that must be one JSON object (`what` says which, for the 422)."""
    payload = load_json(body)
    if not isinstance(payload, dict):
        raise PayloadError(None, f"must be {what}")
    return payload


def json_objects(body: bytes, what: str) -> list[dict[str, Any]]:
    """A body that must be a JSON array of objects (`what` names them, for the 422)."""
    payload = load_json(body)
    if not isinstance(payload, list):
        raise PayloadError(None, f"must be a JSON array of {what}")
    for i, item in enumerate(payload):
        if not isinstance(item, dict):
            raise PayloadError(None, "must be a JSON object", i)
    return payload


def required(item: Mapping[str, Any], name: str, index: int | None = None) -> str:
    """`item[name]` as text (see `text`); PayloadError naming it when it is missing or empty."""
    value = text(item.get(name))
    if value is None:
        raise PayloadError(name, "is required", index)
    return value


def from_epoch(value: Any, *, unit: Literal["s", "ms"], field: str, index: int | None = None) -> datetime:
    """A Unix timestamp (number or numeric string) as an aware UTC datetime."""
    try:
        number = Decimal(str(value)) if not isinstance(value, bool) else None
        if number is None or not number.is_finite():
            raise InvalidOperation
        return _EPOCH + timedelta(microseconds=int(number * (1000 if unit == "ms" else 1_000_000)))
    except (InvalidOperation, ValueError, OverflowError, OSError):
        raise PayloadError(field, f"must be a Unix timestamp in {_unit_name(unit)}", index) from None


def text(value: Any) -> str | None:
    """A vendor scalar as a non-empty string: ids arrive as numbers in some payloads, strings in others."""
    if value is None or isinstance(value, bool | dict | list):
        return None
    result = str(value).strip()
    return result or None


def make_event(
    ctx: MappingContext,
    *,
    index: int | None = None,
    names: Mapping[str, str] | None = None,
    rep_alias: RepAlias | None = None,
    **fields: Any,
) -> VendorEvent:
    """Validate a BuyerEvent the way /v1/events does, with the request's time and tenant currency,
    and pair it with the vendor's identity of its rep.

    `names` maps BuyerEvent fields to the vendor's field names, so a 422 names what the vendor sent.
    """
    values = {k: v for k, v in fields.items() if v is not None}
    names = names or {}
    for key, value in values.items():
        if _holds_nul(value):
            raise PayloadError(names.get(key, key), "must not contain NUL characters", index)
    try:
        event = BuyerEvent.model_validate(values, context={"now": ctx.received_at, "currency": ctx.currency})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err.get("loc", ())]
        key = loc[0] if loc else "event"
        where = ".".join([names.get(key, key), *loc[1:]])
        raise PayloadError(where, err.get("msg", "invalid"), index) from None
    return VendorEvent(event, rep_alias)


_IDENTITY = limits.identity(limits.MAX_ALIAS_LEN)


def rep_identity(kind: AliasKind, value: str | None) -> RepAlias | None:
    """The vendor's identity of an event's rep, or None when it names none. One no rep's alias can
    match (over 320 characters, or with control characters: services.core.limits.identity) names
    nobody, and its event counts as unassigned: refusing the delivery would only make the vendor
    retry it, with the same identity, for days."""
    if value is None:
        return None
    try:
        return RepAlias(kind=kind, value=_IDENTITY(value))
    except limits.Invalid:
        return None


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def _has_port(host: str) -> bool:
    # "[::1]:8001" and "example.com:8001" carry a port; a bare IPv6 literal "[::1]" does not.
    return host.rsplit("]", 1)[-1].count(":") == 1


def _minutes(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    return f"{minutes:g} minutes" if minutes != 1 else "1 minute"


def _unit_name(unit: str) -> str:
    return "milliseconds" if unit == "ms" else "seconds"
