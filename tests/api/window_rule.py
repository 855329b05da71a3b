"""The window rule in Python: the reference that the rule the reads run, in SQL
(services/api/kit/windows.py:window_sql), is checked against."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from services.api.kit.reads import ReadPool
from services.api.kit.windows import DAYS_PER_MONTH, WindowSpec, window_args, window_sql


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


def resolve(spec: WindowSpec, timezone: str, now: datetime) -> Window:
    """The concrete days, for a calendar in `timezone` at the instant `now` (timezone-aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if spec.start is not None and spec.end is not None:
        return Window(spec.start, spec.end)
    end = now.astimezone(ZoneInfo(timezone)).date() - timedelta(days=1)
    return Window(end - timedelta(days=spec.days - 1), end)


async def resolve_in_sql(pool: ReadPool, spec: WindowSpec, timezone: str, now: datetime) -> Window:
    """The days the reads' own SQL gives (the zone takes the place of the tenant, $1)."""
    row = await pool.fetchrow(window_sql("$1::text"), timezone, *window_args(spec, now))
    assert row is not None
    return Window(row["start"], row["end"])
