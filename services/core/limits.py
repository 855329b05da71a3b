"""The wire format's limits (SPEC 1, 2) and the checks that apply them, each defined once.

The pydantic models (services/core/events.py), which document the schema and validate what vendor
adapters build, and the decoder (services/core/wire.py), through which ingest validates what clients
send and the aggregator what it folds, both call these checks: what one accepts the other accepts
(tests/core/test_wire_agreement.py). Pure Python, no pydantic.

A check takes a JSON value, or the Python value an adapter built (a datetime, a Decimal), and returns
it as the fold reads it, or raises `Invalid` with a reason that reads after the field's name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import orjson

MAX_TENANT_LEN = 63  # a tenant slug
MAX_ID_LEN = 200  # event_id, rep_id, contact_id, account_id, deal_id, call_event_id, module
MAX_UPDATE_ID_LEN = MAX_ID_LEN + 50  # a CRM update: the notification's id with the property appended
MAX_STAGE_LEN = 100
MAX_ALIAS_LEN = 320  # a vendor identity of a rep: an e-mail address may have 320 characters
MAX_LABEL_LEN = 200  # a rep's name and team
MAX_SECONDS = 10_000_000  # durations, talk times and transcript offsets (about 116 days)
MAX_SCORE = 100
MAX_AMOUNT = Decimal("1e15")  # amount, mrr, CRM amounts
AMOUNT_PLACES = 4  # the archive and the rollups keep amounts to 4 decimal places
AMOUNT_QUANTUM = Decimal(1).scaleb(-AMOUNT_PLACES)
# Far enough from datetime's limits that shifting into any timezone cannot overflow; earlier event
# times are typos, not history.
MIN_YEAR, MAX_YEAR = 1900, 9000
MAX_TRANSCRIPT_SEGMENTS = 10_000
MAX_SEGMENT_TEXT = 100_000

# Ingest only: what a client may send, beyond what the aggregator can fold.
MAX_FUTURE = timedelta(hours=24)  # occurred_at, relative to the time ingest received the event
MAX_ATTRIBUTES_BYTES = 16 * 1024
# Deeper JSON cannot be serialised again (orjson stops at 254 levels) and no sane event needs it.
MAX_DEPTH = 32

T = TypeVar("T")
Check = Callable[[Any], Any]


class Invalid(ValueError):
    """A value the wire format does not allow. `path` leads from the checked value to the bad part
    (`("3", "speaker")` in a transcript), `reason` reads after the field's name ("must be ...")."""

    def __init__(self, reason: str, *path: str, missing: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path
        self.missing = missing

    def within(self, *outer: str) -> Invalid:
        return Invalid(self.reason, *outer, *self.path, missing=self.missing)


REQUIRED = "is required"


def text(max_len: int) -> Check:
    """A string of 1 to `max_len` characters without NUL (PostgreSQL cannot store it)."""
    reason = f"must be a string of 1-{max_len} characters without NUL"

    def check(v: Any) -> str:
        if not isinstance(v, str) or not 0 < len(v) <= max_len or "\x00" in v:
            raise Invalid(reason)
        return v

    return check


# C0 and C1 control characters (NUL, line breaks, terminal escapes, DEL) and lone surrogates, which
# cannot be encoded at all.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def identity(max_len: int) -> Check:
    """A name someone reads back: a rep's id, name or team, a vendor's identity of a rep. 1 to
    `max_len` characters, none of them a control character or a lone surrogate (PostgreSQL cannot
    store NUL, and the others garble logs, terminals and CSV exports, or make an id unreadable)."""
    reason = f"must be a string of 1-{max_len} characters without control characters"

    def check(v: Any) -> str:
        if not isinstance(v, str) or not 0 < len(v) <= max_len or _CONTROL.search(v):
            raise Invalid(reason)
        return v

    return check


def choice(values: Iterable[T]) -> Callable[[Any], T]:
    """One of `values` (strings, or StrEnum members, which the check returns for their string)."""
    members = {str(v): v for v in values}
    reason = "must be one of " + ", ".join(members)

    def check(v: Any) -> T:
        member = members.get(v) if isinstance(v, str) else None
        if member is None:
            raise Invalid(reason)
        return member

    return check


def timestamp(v: Any) -> datetime:
    """An RFC 3339 timestamp with an offset, between the years MIN_YEAR and MAX_YEAR."""
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v)
        except ValueError:
            raise Invalid("must be an RFC 3339 timestamp with an offset") from None
    if not isinstance(v, datetime) or v.tzinfo is None:
        raise Invalid("must be an RFC 3339 timestamp with an offset")
    if not MIN_YEAR <= v.year <= MAX_YEAR:
        raise Invalid(f"must lie between the years {MIN_YEAR} and {MAX_YEAR}")
    return v


def calendar_date(v: Any) -> date:
    """A date as `YYYY-MM-DD`, between the years MIN_YEAR and MAX_YEAR."""
    if isinstance(v, str) and len(v) == 10:
        try:
            v = date.fromisoformat(v)
        except ValueError:
            pass
    if not isinstance(v, date) or isinstance(v, datetime):
        raise Invalid("must be a date YYYY-MM-DD")
    if not MIN_YEAR <= v.year <= MAX_YEAR:
        raise Invalid(f"must lie between the years {MIN_YEAR} and {MAX_YEAR}")
    return v


def seconds(v: Any) -> int | float:
    """A number of seconds from 0 to MAX_SECONDS."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= MAX_SECONDS:
        raise Invalid(f"must be a number of seconds from 0 to {MAX_SECONDS}")
    return v


def score(v: Any) -> Decimal:
    """A number from 0 to MAX_SCORE, as an exact decimal."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= MAX_SCORE:
        raise Invalid(f"must be a number from 0 to {MAX_SCORE}")
    return Decimal(repr(v)) if isinstance(v, float) else Decimal(v)


def money(v: Any) -> Decimal:
    """A decimal number (JSON number or string) from 0 to MAX_AMOUNT, kept to AMOUNT_PLACES places."""
    amount = _decimal(v)
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -AMOUNT_PLACES:
        return amount.quantize(AMOUNT_QUANTUM)
    return amount


def _decimal(v: Any) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, str | int | float | Decimal):
        raise Invalid("must be a decimal number")
    try:
        amount = Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
    except InvalidOperation:
        raise Invalid("must be a decimal number") from None
    if not amount.is_finite() or not 0 <= amount <= MAX_AMOUNT:
        raise Invalid(f"must be a decimal number from 0 to {MAX_AMOUNT}")
    return amount


def flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise Invalid("must be true or false")
    return v


def currency_code(v: Any) -> str:
    """An ISO 4217 code: three capital letters."""
    if not isinstance(v, str) or len(v) != 3 or not (v.isascii() and v.isalpha() and v.isupper()):
        raise Invalid("must be an ISO 4217 code such as USD")
    return v


def json_object(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise Invalid("must be a JSON object")
    return v


def free_text(v: Any, *, nul: bool = False) -> str:
    """Text kept but never interpreted (a transcript's words). Clients may not send NUL; the aggregator
    (`nul` True) archives U+FFFD in its place."""
    if not isinstance(v, str) or len(v) > MAX_SEGMENT_TEXT or (not nul and "\x00" in v):
        raise Invalid(f"must be a string of at most {MAX_SEGMENT_TEXT} characters without NUL")
    return v


def record(v: Any, fields: Mapping[str, Check]) -> dict[str, Any]:
    """An object with exactly `fields` (name -> check), each checked; an Invalid names the first bad one."""
    if not isinstance(v, dict):
        raise Invalid("must be an object with " + ", ".join(fields))
    for name in v:
        if name not in fields:
            raise Invalid(UNKNOWN_FIELD, str(name))
    out = {}
    for name, check in fields.items():
        if v.get(name) is None:
            raise Invalid(REQUIRED, name)  # an incomplete value, not a missing field
        try:
            out[name] = check(v[name])
        except Invalid as exc:
            raise exc.within(name) from None
    return out


def items(v: Any, check: Check, max_items: int) -> list[Any]:
    """A list of at most `max_items` values, each checked; an Invalid names the first bad one's index."""
    if not isinstance(v, list) or len(v) > max_items:
        raise Invalid(f"must be a list of at most {max_items} items")
    out = []
    for i, item in enumerate(v):
        try:
            out.append(check(item))
        except Invalid as exc:
            raise exc.within(str(i)) from None
    return out


# -- rules for what clients send (ingest and the models), beyond what the aggregator can fold --------

UNKNOWN_FIELD = "is not a field of the event"
SERVICE_FIELD = "is set by the service and must not be sent"


def not_ahead(at: datetime, now: datetime) -> datetime:
    if at - now > MAX_FUTURE:
        raise Invalid("must not be more than 24 hours in the future")
    return at


_REP_ID = identity(MAX_ID_LEN)


def rep_id(v: Any) -> str:
    """A rep's id as clients write it: an identity that one URL path segment carries back as written
    (`/v1/reps/{rep_id}`), so without '/' and neither '.' nor '..'."""
    value: str = _REP_ID(v)
    if "/" in value:
        raise Invalid("must not contain '/'")
    if value in (".", ".."):
        raise Invalid("must not be '.' or '..'")
    return value


# Lower-case ASCII only, so no two slugs look alike (`DEMO`, or `demo` with a Cyrillic e), as a DNS label.
_TENANT_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def tenant_slug(v: Any) -> str:
    """A new tenant's slug; tenants created before this rule keep theirs (the decoder takes any `text`)."""
    if not isinstance(v, str) or not _TENANT_SLUG.fullmatch(v):
        raise Invalid(
            f"must be 1-{MAX_TENANT_LEN} lowercase ASCII letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return v


def tenant_currency(code: str, expected: str | None) -> str:
    if expected is not None and code != expected:
        raise Invalid(f"must be the tenant's reporting currency {expected}")
    return code


def exact_money(v: Any) -> Decimal:
    """`money` as a client sends it: with at most AMOUNT_PLACES decimal places, never rounded."""
    amount = _decimal(v)
    if amount != amount.quantize(AMOUNT_QUANTUM):
        raise Invalid(f"must have at most {AMOUNT_PLACES} decimal places")
    return amount


def attributes(v: Any, *, nul: bool = True, deep: bool = True) -> dict[str, Any]:
    """An object of at most MAX_ATTRIBUTES_BYTES of JSON, nested at most MAX_DEPTH levels, without NUL
    in any key or string. `nul` and `deep` False skip walks a cheap look at the raw body ruled out."""
    value = json_object(v)
    if deep and depth_exceeds(value, MAX_DEPTH):
        raise Invalid(f"must not be nested more than {MAX_DEPTH} levels")
    if nul:
        path = nul_path(value)
        if path is not None:
            raise Invalid("must not contain NUL (\\u0000) characters", *path)
    try:
        size = len(orjson.dumps(value))
    except orjson.JSONEncodeError:
        raise Invalid("must be serialisable JSON of reasonable depth") from None
    if size > MAX_ATTRIBUTES_BYTES:
        raise Invalid(f"must be at most {MAX_ATTRIBUTES_BYTES // 1024} KiB of JSON")
    return value


def depth_exceeds(value: Any, limit: int) -> bool:
    if limit < 0:
        return True
    if isinstance(value, dict):
        return any(depth_exceeds(v, limit - 1) for v in value.values())
    if isinstance(value, list):
        return any(depth_exceeds(v, limit - 1) for v in value)
    return False


def nul_path(value: Any) -> tuple[str, ...] | None:
    """The path to the first string holding a NUL character (for a key: the object holding it)."""
    for path, item in _walk(value, ()):
        if isinstance(item, str) and "\x00" in item:
            return path
    return None


def _walk(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield path, k
            yield from _walk(v, (*path, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, (*path, str(i)))
