"""Window parsing, and the window rule the reads run in SQL against the rule written in Python."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.api.kit.errors import InvalidInput
from services.api.kit.reads import ReadPool
from services.api.kit.windows import MAX_DAYS, WindowSpec, parse_window, quota_over, window_args
from tests.api.window_rule import Window, resolve, resolve_in_sql
from tests.conftest import Stack

# 03:00 UTC on 2 Nov 2026: still 1 Nov in Los Angeles, already midday 2 Nov in Tokyo.
NOW = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
async def pool(stack: Stack) -> AsyncIterator[ReadPool]:
    p = await ReadPool.open(stack.settings(db_pool_size=1))
    yield p
    await p.close()


async def test_default_is_the_last_30_full_days_of_the_local_calendar(pool: ReadPool) -> None:
    spec = parse_window(None, None, None)
    assert await resolve_in_sql(pool, spec, "UTC", NOW) == Window(date(2026, 10, 3), date(2026, 11, 1))
    assert await resolve_in_sql(pool, spec, "America/Los_Angeles", NOW) == Window(
        date(2026, 10, 2), date(2026, 10, 31)
    )
    assert await resolve_in_sql(pool, spec, "Asia/Tokyo", NOW) == Window(date(2026, 10, 3), date(2026, 11, 1))
    kiritimati = await resolve_in_sql(
        pool, spec, "Pacific/Kiritimati", datetime(2026, 11, 2, 11, 0, tzinfo=UTC)
    )
    assert kiritimati == Window(date(2026, 10, 4), date(2026, 11, 2))


async def test_explicit_dates_are_inclusive_and_ignore_the_timezone(pool: ReadPool) -> None:
    spec = parse_window("2026-10-01", "2026-10-30", None)
    window = await resolve_in_sql(pool, spec, "Asia/Tokyo", NOW)
    assert window == Window(date(2026, 10, 1), date(2026, 10, 30))
    assert window.days == 30
    assert (spec.start, spec.end) == (window.start, window.end)
    single = await resolve_in_sql(pool, parse_window("2026-10-05", "2026-10-05", None), "UTC", NOW)
    assert single.days == 1


async def test_relative_window_ends_yesterday(pool: ReadPool) -> None:
    spec = parse_window(None, None, "7d")
    assert spec.start is None
    assert spec.end is None
    assert await resolve_in_sql(pool, spec, "UTC", NOW) == Window(date(2026, 10, 26), date(2026, 11, 1))
    longest = await resolve_in_sql(pool, parse_window(None, None, f"{MAX_DAYS}d"), "UTC", NOW)
    assert longest.days == MAX_DAYS


def test_months_are_days_over_365_25_twelfths() -> None:
    assert Window(date(2026, 10, 1), date(2026, 10, 30)).months == pytest.approx(30 / 30.4375)
    assert Window(date(2025, 1, 1), date(2025, 12, 31)).months == pytest.approx(365 / 30.4375)
    assert quota_over(30.4375, 30) == pytest.approx(30.0)


@pytest.mark.parametrize(
    ("from_", "to", "window", "field"),
    [
        ("2026-10-31", "2026-10-01", None, "from"),
        ("2026-10-01", None, None, "to"),
        (None, "2026-10-01", None, "from"),
        ("2026/10/01", "2026-10-30", None, "from"),
        ("20261001", "2026-10-30", None, "from"),
        ("2026-10-01", "2026-02-30", None, "to"),
        ("2026-10-01", "yesterday", None, "to"),
        ("2020-01-01", "2026-10-30", None, "to"),
        ("2026-10-01", "2026-10-30", "30d", "window"),
        (None, "2026-10-30", "30d", "window"),
        (None, None, "0d", "window"),
        (None, None, f"{MAX_DAYS + 1}d", "window"),
        (None, None, "30", "window"),
        (None, None, "-3d", "window"),
        (None, None, "30days", "window"),
        (None, None, "", "window"),
    ],
)
def test_bad_parameters_name_the_parameter(
    from_: str | None, to: str | None, window: str | None, field: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_window(from_, to, window)
    assert err.value.field == field
    assert err.value.reason


def test_longest_explicit_window_is_accepted() -> None:
    start = date(2024, 1, 1)
    spec = parse_window(str(start), str(start + timedelta(days=MAX_DAYS - 1)), None)
    assert spec.days == MAX_DAYS


def test_resolving_needs_an_aware_instant() -> None:
    naive = datetime(2026, 11, 2, 3, 0)  # noqa: DTZ001
    with pytest.raises(ValueError, match="timezone-aware"):
        window_args(WindowSpec(), naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        resolve(WindowSpec(), "UTC", naive)


# Hypothesis takes naive bounds; the instants it draws carry UTC.
FIRST, LAST = datetime(2000, 1, 1), datetime(2100, 1, 1)  # noqa: DTZ001
IN_UTC: st.SearchStrategy[tzinfo] = st.just(UTC)
ZONES = ["UTC", "America/Los_Angeles", "Asia/Kolkata", "Pacific/Kiritimati", "Pacific/Pago_Pago"]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    now=st.datetimes(min_value=FIRST, max_value=LAST, timezones=IN_UTC),
    tz=st.sampled_from(ZONES),
    days=st.integers(1, MAX_DAYS),
)
async def test_relative_windows_end_the_day_before_local_today(
    pool: ReadPool, now: datetime, tz: str, days: int
) -> None:
    window = await resolve_in_sql(pool, WindowSpec(days=days), tz, now)
    assert window.days == days
    assert window.end == now.astimezone(ZoneInfo(tz)).date() - timedelta(days=1)
    assert window == resolve(WindowSpec(days=days), tz, now)
