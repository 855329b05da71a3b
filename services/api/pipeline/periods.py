"""Forecast periods: a calendar month (`YYYY-MM`) or quarter (`YYYY-Qn`) of the tenant's calendar."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

from services.api.kit.errors import InvalidInput
from services.api.kit.windows import WindowSpec

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
REASON = "must be a month as YYYY-MM or a quarter as YYYY-Qn (n from 1 to 4)"


@dataclass(frozen=True)
class Period:
    label: str
    first: date
    last: date
    months: int

    @property
    def spec(self) -> WindowSpec:
        """The period as a window of fixed days."""
        return WindowSpec(days=(self.last - self.first).days + 1, start=self.first, end=self.last)


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def month(year: int, number: int) -> Period:
    return Period(f"{year:04d}-{number:02d}", date(year, number, 1), _month_end(year, number), 1)


def quarter(year: int, number: int) -> Period:
    first_month = 3 * (number - 1) + 1
    last = _month_end(year, first_month + 2)
    return Period(f"{year:04d}-Q{number}", date(year, first_month, 1), last, 3)


def parse_period(field: str, text: str) -> Period:
    """`YYYY-MM` or `YYYY-Qn`; `InvalidInput` naming `field` otherwise."""
    if found := _MONTH.match(text):
        year, number = int(found.group(1)), int(found.group(2))
        if 1 <= year and 1 <= number <= 12:
            return month(year, number)
    elif found := _QUARTER.match(text):
        year = int(found.group(1))
        if year >= 1:
            return quarter(year, int(found.group(2)))
    raise InvalidInput(field, REASON)


def current_month(today: date) -> Period:
    return month(today.year, today.month)
