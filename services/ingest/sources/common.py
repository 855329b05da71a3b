"""What every vendor adapter shares: errors, results, the request as signed, and small pure helpers.

Adapters are pure: no I/O and no clock reads. Time comes in as `InboundRequest.now` (signature
tolerance) and `MappingContext.received_at` (the fallback event time and the "now" of validation).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import orjson
from pydantic import ValidationError

from services.core.events import BuyerEvent, Channel, RepAlias

DEFAULT_TOLERANCE = timedelta(minutes=5)
EntityKind = Literal["deal", "contact"]
EntityProperty = Literal["amount", "owner", "lifecycle_stage", "channel", "stage", "contact"]
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CHANNELS = frozenset(c.value for c in Channel)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SignatureError(Exception):
    """The request is not genuine (answer 401). `reason` is short and safe to log; never echo secrets."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PayloadError(Exception):
    """The payload is malformed (answer 422). `field` is a dotted path in the vendor's own names,
    None for the item as a whole; `index` is the item's position in a vendor batch."""

    def __init__(self, field: str | None, reason: str, index: int | None = None) -> None:
        where = ".".join(str(p) for p in (index, field) if p is not None) or "body"
        super().__init__(f"{where}: {reason}")
        self.field = field
        self.reason = reason
        self.index = index

    def detail(self) -> dict[str, Any]:
        """One entry of the 422 `details` list (services.core.http format)."""
        entry: dict[str, Any] = {"field": self.field, "reason": self.reason}
        if self.index is not None:
            entry["index"] = self.index
        return entry


@dataclass(frozen=True)
class InboundRequest:
    """A webhook request as the vendor signed it. `url` is the public URL (see `public_url`)."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    now: datetime
    client_ip: str | None = None


@dataclass(frozen=True)
class MappingContext:
    """What every mapping needs of the delivery: the tenant's currency and the time it was received.
    What differs by vendor comes in the vendor's own options."""

    currency: str
    received_at: datetime

    def __post_init__(self) -> None:
        if self.received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")


@dataclass(frozen=True)
class VendorEvent:
    """A BuyerEvent plus the vendor identity of its rep, which the aggregator resolves to a rep_id."""

    event: BuyerEvent
    rep_alias: RepAlias | None = None


@dataclass(frozen=True)
class EntityUpdate:
    """A CRM fact that is not itself a BuyerEvent (a deal's amount, a contact's owner or channel).

    The aggregator keeps these as entity state, so events can be attributed by event time.
    `value` is normalised: a decimal string for `amount`, a Channel value for `channel`.
    """

    entity: EntityKind
    entity_id: str
    property: EntityProperty
    value: str | None
    occurred_at: datetime
    event_id: str
    rep_alias: RepAlias | None = None


@dataclass(frozen=True)
class Normalised:
    events: list[VendorEvent]
    ignored: int
    entity_updates: list[EntityUpdate] = field(default_factory=list)


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


def channel_for(
    value: str | None, table: Mapping[str, Channel], overrides: Mapping[str, Channel]
) -> Channel | None:
    """Map a lead-source value onto a SPEC channel: the tenant's overrides (keys compared
    case-insensitively), then `table`, then a value that is a channel's name, then `other`."""
    if value is None:
        return None
    key = value.strip().lower()
    for name, channel in overrides.items():
        if name.strip().lower() == key:
            return channel
    if key in table:
        return table[key]
    as_channel = key.replace(" ", "_").replace("-", "_")
    return Channel(as_channel) if as_channel in _CHANNELS else Channel.OTHER


def make_event(
    ctx: MappingContext,
    *,
    index: int | None = None,
    names: Mapping[str, str] | None = None,
    **fields: Any,
) -> BuyerEvent:
    """Validate a BuyerEvent the way /v1/events does, with the request's time and tenant currency.

    `names` maps BuyerEvent fields to the vendor's field names, so a 422 names what the vendor sent.
    """
    values = {k: v for k, v in fields.items() if v is not None}
    names = names or {}
    for key, value in values.items():
        if _holds_nul(value):
            raise PayloadError(names.get(key, key), "must not contain NUL characters", index)
    try:
        return BuyerEvent.model_validate(values, context={"now": ctx.received_at, "currency": ctx.currency})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err.get("loc", ())]
        key = loc[0] if loc else "event"
        where = ".".join([names.get(key, key), *loc[1:]])
        raise PayloadError(where, err.get("msg", "invalid"), index) from None


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
