"""Cell values as the CRMs export them: times, dates, amounts, checkboxes. Pure; `Unreadable` says why.

Times come in the forms HubSpot and Salesforce write, in any locale they write them in:
- ISO 8601 (Data Loader and the APIs: `2024-03-05T14:22:00.000Z`, `...+0000`; HubSpot exports:
  `2024-03-05 14:22`, `2024-03-05`);
- slashed dates (Salesforce reports in US and UK locales: `3/5/2024, 2:22 PM`, `05/03/2024 14:22`),
  month first unless `day_first`, or unless the numbers leave only one reading;
- dotted dates (German and similar locales: `05.03.2024 14:22`), always day first;
- Unix milliseconds (HubSpot's internal values).
A time without an offset is in `zone` (the exporting account's or user's timezone). A date without a
time is taken at 12:00 there, so it stays on its day for reps a few hours away.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

NOON = time(12, 0)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SLASHED = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4})(?:,?\s+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([AaPp])\.?[Mm]\.?)?)?"
)
_DOTTED = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})(?:,?\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?")
_EPOCH_MS = re.compile(r"\d{12,13}")
_CURRENCY = re.compile(r"^(?:[A-Z]{3}|[$€£¥₹])\s*|\s*(?:[A-Z]{3}|[$€£¥₹])$")
# Checkboxes as Data Loader ("true"), reports ("1") and spreadsheets in a few languages write them.
FLAGS = {
    **dict.fromkeys(("true", "1", "yes", "y", "x", "checked", "wahr", "vrai", "ja", "oui"), True),
    **dict.fromkeys(("false", "0", "no", "n", "unchecked", "falsch", "faux", "nein", "non"), False),
}


class Unreadable(ValueError):
    """A cell that is not what its column holds; the message says what was expected."""


def parse_time(text: str, zone: ZoneInfo, *, day_first: bool = False) -> datetime:
    value = text.strip()
    if len(value) > 10 and value[4] == "-" and value[:4].isdigit():
        # ISO 8601 with a time, the form of every Data Loader and HubSpot export: `_iso`, tried first
        try:
            moment: datetime | None = datetime.fromisoformat(value)
        except ValueError:
            moment = None
    else:
        moment = _iso(value, zone)
    if moment is None and _EPOCH_MS.fullmatch(value):
        return _EPOCH + timedelta(milliseconds=int(value))
    moment = moment or _slashed(value, day_first, zone) or _dotted(value, zone)
    if moment is None:
        raise Unreadable(f"{_quote(value)} is not a date or time this import reads")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def parse_date(text: str, zone: ZoneInfo, *, day_first: bool = False) -> date:
    moment = parse_time(text, zone, day_first=day_first)
    return moment.astimezone(zone).date() if _has_time(text) else moment.date()


def parse_amount(text: str) -> Decimal:
    """`12,500.00`, `12.500,00`, `12 500`, `$12,500`, `USD 12500`: thousands separators and currency
    marks are dropped; the decimal separator is the last `.` or `,` unless three digits follow it."""
    whole, point, cents = text.partition(".")
    if _digits(whole) and (not point or (_digits(cents) and len(cents) != 3)):
        return Decimal(text)  # `12500`, `12500.00` as Data Loader and HubSpot write them: nothing to drop
    value = _CURRENCY.sub("", text.strip())
    value = value.replace("\u00a0", "").replace("\u202f", "").replace(" ", "").replace("'", "")
    if "." in value and "," in value:
        point = "." if value.rfind(".") > value.rfind(",") else ","
        value = value.replace("," if point == "." else ".", "").replace(point, ".")
    elif "," in value or "." in value:
        mark = "," if "," in value else "."
        digits_after = len(value) - value.rfind(mark) - 1
        # 12,500 and 1.250.000 group thousands; 12,5 and 12500.00 mark decimals
        value = value.replace(mark, "" if value.count(mark) > 1 or digits_after == 3 else ".")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise Unreadable(f"{_quote(text)} is not an amount") from None
    if not amount.is_finite() or amount < 0:
        raise Unreadable(f"{_quote(text)} is not an amount of at least 0")
    return amount


def parse_flag(text: str) -> bool:
    flag = FLAGS.get(text.strip().lower())
    if flag is None:
        raise Unreadable(f"{_quote(text)} is neither true nor false")
    return flag


def parse_seconds(text: str) -> float:
    return float(text) if _digits(text) else float(parse_amount(text))


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _iso(value: str, zone: ZoneInfo) -> datetime | None:
    if not value[:4].isdigit() or len(value) < 10 or value[4] != "-":
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), NOON, tzinfo=zone)
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _slashed(value: str, day_first: bool, zone: ZoneInfo) -> datetime | None:
    m = _SLASHED.fullmatch(value)
    if m is None:
        return None
    first, second = int(m[1]), int(m[2])
    if first > 12 or (day_first and second <= 12):
        day, month = first, second
    else:
        month, day = first, second
    return _build(zone, int(m[3]), month, day, (m[4], m[5], m[6], m[7]))


def _dotted(value: str, zone: ZoneInfo) -> datetime | None:
    m = _DOTTED.fullmatch(value)
    if m is None:
        return None
    return _build(zone, int(m[3]), int(m[2]), int(m[1]), (m[4], m[5], m[6], None))


def _build(zone: ZoneInfo, year: int, month: int, day: int, clock: tuple[str | None, ...]) -> datetime | None:
    """`clock`: hour, minute, second, and "a" / "p" for a 12-hour clock, each None when absent."""
    hour, minute, second, half = clock
    try:
        if hour is None:
            return datetime.combine(date(year, month, day), NOON, tzinfo=zone)
        h = int(hour)
        if half is not None:
            if not 1 <= h <= 12:
                return None
            h = h % 12 + (12 if half.lower() == "p" else 0)
        return datetime(year, month, day, h, int(minute or 0), int(second or 0), tzinfo=zone)
    except ValueError:
        return None


def _has_time(text: str) -> bool:
    return ":" in text or _EPOCH_MS.fullmatch(text.strip()) is not None


def _quote(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")
