"""Reporting windows: `from`/`to` (inclusive local dates) or `window=Nd`; default the last 30 full days.

A window is a range of calendar days in some local timezone (the rep's, or the tenant's for views
over several reps). "The last N full days" ends yesterday in that timezone, so today's partial
numbers never make one rep look worse than another.

The rule is stated once, in SQL (`window_sql`): the database resolves a window in the timezone of
the rep or tenant it reads anyway, so no read needs a round trip of its own to learn the timezone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from services.api.kit.errors import InvalidInput
from services.core.tenancy import known_zone_sql

DEFAULT_DAYS = 30
MAX_DAYS = 1096  # three years, leap day included
DAYS_PER_MONTH = 365.25 / 12

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RELATIVE = re.compile(r"^(\d{1,5})d$")


@dataclass(frozen=True)
class WindowSpec:
    """What the client asked for: fixed dates (`start` and `end`), or the last `days` full days of a
    local calendar (both None)."""

    days: int = DEFAULT_DAYS
    start: date | None = None
    end: date | None = None


def window_sql(zone: str) -> str:
    """A one-row SELECT of the window's `start` and `end` (and the local `today`) for a calendar in
    the timezone `zone` (an SQL expression; UTC if the database does not know it), from the
    parameters $2..$5 that `window_args` gives."""
    return (
        'SELECT coalesce($4::date, today - $3::int) AS start, coalesce($5::date, today - 1) AS "end", '
        f"today FROM (SELECT timezone({known_zone_sql('z.name')}, $2::timestamptz)::date AS today "
        f"FROM (SELECT ({zone})::text AS name) AS z) AS local_day"
    )


def window_args(spec: WindowSpec, now: datetime) -> tuple[datetime, int, date | None, date | None]:
    """$2 now (timezone-aware), $3 the number of days, $4 and $5 the fixed first and last day (or nulls)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now, spec.days, spec.start, spec.end


def quota_over(quota_monthly: float, days: int) -> float:
    """The quota of a window of `days` days: a month is 365.25/12 days."""
    return quota_monthly * days / DAYS_PER_MONTH


def parse_date(field: str, value: str) -> date:
    if not _DATE.match(value):
        raise InvalidInput(field, "must be a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(field, f"{value!r} is not a calendar date") from exc


def parse_window(from_: str | None, to: str | None, window: str | None) -> WindowSpec:
    """The query parameters `from`, `to` and `window` as a spec; `InvalidInput` names the bad one."""
    if window is not None:
        if from_ is not None or to is not None:
            raise InvalidInput("window", "give either window or from/to, not both")
        match = _RELATIVE.match(window)
        if not match:
            raise InvalidInput("window", "must be a number of days such as 30d")
        days = int(match.group(1))
        if not 1 <= days <= MAX_DAYS:
            raise InvalidInput("window", f"must be between 1d and {MAX_DAYS}d")
        return WindowSpec(days=days)
    if from_ is None and to is None:
        return WindowSpec()
    if from_ is None:
        raise InvalidInput("from", "is required when to is given")
    if to is None:
        raise InvalidInput("to", "is required when from is given")
    start, end = parse_date("from", from_), parse_date("to", to)
    if start > end:
        raise InvalidInput("from", "must not be after to")
    if (end - start).days + 1 > MAX_DAYS:
        raise InvalidInput("to", f"the window spans more than {MAX_DAYS} days")
    return WindowSpec(days=(end - start).days + 1, start=start, end=end)
