"""Reporting windows: `from`/`to` (inclusive local dates) or `window=Nd`; default the last 30 full days.

A window is a range of calendar days in some local timezone (the rep's, or the tenant's for views
over several reps). "The last N full days" ends yesterday in that timezone, so today's partial
numbers never make one rep look worse than another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

DEFAULT_DAYS = 30
MAX_DAYS = 1096  # three years, leap day included
DAYS_PER_MONTH = 365.25 / 12

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RELATIVE = re.compile(r"^(\d{1,5})d$")


class WindowError(ValueError):
    """A window parameter a client got wrong: `field` is the query parameter's name."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Window:
    """Inclusive calendar days."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def months(self) -> float:
        return self.days / DAYS_PER_MONTH


@dataclass(frozen=True)
class WindowSpec:
    """What the client asked for: fixed dates, or the last `days` full days of a local calendar."""

    days: int = DEFAULT_DAYS
    start: date | None = None
    end: date | None = None

    @property
    def fixed(self) -> Window | None:
        if self.start is None or self.end is None:
            return None
        return Window(self.start, self.end)

    def resolve(self, timezone: str, now: datetime) -> Window:
        """The concrete days, for a calendar in `timezone` at the instant `now` (timezone-aware)."""
        if (fixed := self.fixed) is not None:
            return fixed
        end = last_full_day(timezone, now)
        return Window(end - timedelta(days=self.days - 1), end)


def last_full_day(timezone: str, now: datetime) -> date:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(ZoneInfo(timezone)).date() - timedelta(days=1)


def parse_date(field: str, value: str) -> date:
    if not _DATE.match(value):
        raise WindowError(field, "must be a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise WindowError(field, f"{value!r} is not a calendar date") from exc


def parse_window(from_: str | None, to: str | None, window: str | None) -> WindowSpec:
    """The query parameters `from`, `to` and `window` as a spec; `WindowError` names the bad one."""
    if window is not None:
        if from_ is not None or to is not None:
            raise WindowError("window", "give either window or from/to, not both")
        match = _RELATIVE.match(window)
        if not match:
            raise WindowError("window", "must be a number of days such as 30d")
        days = int(match.group(1))
        if not 1 <= days <= MAX_DAYS:
            raise WindowError("window", f"must be between 1d and {MAX_DAYS}d")
        return WindowSpec(days=days)
    if from_ is None and to is None:
        return WindowSpec()
    if from_ is None:
        raise WindowError("from", "is required when to is given")
    if to is None:
        raise WindowError("to", "is required when from is given")
    start, end = parse_date("from", from_), parse_date("to", to)
    if start > end:
        raise WindowError("from", "must not be after to")
    if (end - start).days + 1 > MAX_DAYS:
        raise WindowError("to", f"the window spans more than {MAX_DAYS} days")
    return WindowSpec(days=(end - start).days + 1, start=start, end=end)
