"""A rep's tenure: the calendar of its months since hire, whether it still counts as active, and
from which day its numbers are known.

Month k of a tenure is [hired_at + k months, hired_at + k+1 months), rep-local days, the day of
month clamped to the month's end (hired 31 Jan: month 1 starts 28/29 Feb, month 2 on 31 Mar).

A rep counts as active while it is set active and its `left_at` has not come: from its leaving day
(in the rep's timezone) it is inactive everywhere the API picks active reps (peers, team views,
ramps, trait correlations, the reps list), whatever its `active` flag says. `active_sql` is that
rule, once.
"""

from __future__ import annotations

import calendar
from datetime import date

from services.core.tenancy import known_zone_sql


def active_sql(rep: str, now: str = "now()") -> str:
    """SQL: whether the rep aliased `rep` (with `active`, `left_at`, `timezone`) is active at the
    timestamptz expression `now`."""
    today = f"timezone({known_zone_sql(f'{rep}.timezone')}, {now})::date"
    return f"({rep}.active AND ({rep}.left_at IS NULL OR {rep}.left_at > {today}))"


def add_months(day: date, months: int) -> date:
    """`day` moved by whole calendar months, the day of month clamped to the target month's end."""
    total = day.year * 12 + day.month - 1 + months
    year, month = divmod(total, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def month_index(hired_at: date, day: date) -> int | None:
    """The tenure month `day` falls in (0 = the month starting on `hired_at`); None before hire."""
    if day < hired_at:
        return None
    k = (day.year - hired_at.year) * 12 + day.month - hired_at.month
    return k if add_months(hired_at, k) <= day else k - 1


def tenure_month_sql(day: str, hired_at: str) -> str:
    """SQL: `month_index` of the date expressions `day` (on or after `hired_at`) and `hired_at`.
    Postgres' `date + interval 'k months'` clamps the day to the month's end as `add_months` does;
    the calendar difference in months overshoots by one while the day of month has not come round."""
    months = (
        f"((extract(year FROM {day}) - extract(year FROM {hired_at})) * 12"
        f" + extract(month FROM {day}) - extract(month FROM {hired_at}))::int"
    )
    return f"({months} - ({hired_at} + make_interval(0, {months}) > {day})::int)"


def data_from_sql(rep: str) -> str:
    """SQL: the first rep-local day from which the numbers of the rep aliased `rep` (with `hired_at`,
    `rep_id`, `timezone`) are known, $1 being the tenant; null when none are.

    Before the tenant's first event nothing was sent: those days are unknown, not zero. A rep hired
    on or after that day is known from its hire (a quiet new hire is a real zero). A rep hired
    before it is known from its own first event on (its vendor identities may have been connected
    later than the tenant's first source).
    """
    zone = known_zone_sql(f"{rep}.timezone")
    tenant_first = f"timezone({zone}, (SELECT min(e.occurred_at) FROM events AS e WHERE e.tenant = $1))::date"
    rep_first = (
        f"(SELECT min(f.day) FROM rollup_rep_daily AS f WHERE f.tenant = $1 AND f.rep_id = {rep}.rep_id)"
    )
    return (
        f"(SELECT CASE WHEN s.tenant_first IS NULL THEN NULL"
        f" WHEN {rep}.hired_at >= s.tenant_first THEN {rep}.hired_at"
        f" ELSE greatest(s.tenant_first, {rep_first}) END"
        f" FROM (SELECT {tenant_first} AS tenant_first) AS s)"
    )


def first_known_month(hired_at: date, data_from: date) -> int:
    """The first tenure month that begins on or after `data_from`, the day the rep's numbers are
    known from: the months before it began before the data and are unknown."""
    if data_from <= hired_at:
        return 0
    k = month_index(hired_at, data_from)
    assert k is not None
    return k if add_months(hired_at, k) == data_from else k + 1
