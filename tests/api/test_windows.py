"""Window parsing and resolution, without I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.api.windows import MAX_DAYS, Window, WindowError, WindowSpec, parse_window

# 03:00 UTC on 2 Nov 2026: still 1 Nov in Los Angeles, already midday 2 Nov in Tokyo.
NOW = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


def test_default_is_the_last_30_full_days_of_the_local_calendar() -> None:
    spec = parse_window(None, None, None)
    assert spec.resolve("UTC", NOW) == Window(date(2026, 10, 3), date(2026, 11, 1))
    assert spec.resolve("America/Los_Angeles", NOW) == Window(date(2026, 10, 2), date(2026, 10, 31))
    assert spec.resolve("Asia/Tokyo", NOW) == Window(date(2026, 10, 3), date(2026, 11, 1))
    assert spec.resolve("Pacific/Kiritimati", datetime(2026, 11, 2, 11, 0, tzinfo=UTC)) == Window(
        date(2026, 10, 4), date(2026, 11, 2)
    )


def test_explicit_dates_are_inclusive_and_ignore_the_timezone() -> None:
    spec = parse_window("2026-10-01", "2026-10-30", None)
    window = spec.resolve("Asia/Tokyo", NOW)
    assert window == Window(date(2026, 10, 1), date(2026, 10, 30))
    assert window.days == 30
    assert spec.fixed == window
    single = parse_window("2026-10-05", "2026-10-05", None).resolve("UTC", NOW)
    assert single.days == 1


def test_relative_window_ends_yesterday() -> None:
    spec = parse_window(None, None, "7d")
    assert spec.fixed is None
    assert spec.resolve("UTC", NOW) == Window(date(2026, 10, 26), date(2026, 11, 1))
    assert parse_window(None, None, f"{MAX_DAYS}d").resolve("UTC", NOW).days == MAX_DAYS


def test_months_are_days_over_365_25_twelfths() -> None:
    assert Window(date(2026, 10, 1), date(2026, 10, 30)).months == pytest.approx(30 / 30.4375)
    assert Window(date(2025, 1, 1), date(2025, 12, 31)).months == pytest.approx(365 / 30.4375)


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
    with pytest.raises(WindowError) as err:
        parse_window(from_, to, window)
    assert err.value.field == field
    assert err.value.reason


def test_longest_explicit_window_is_accepted() -> None:
    start = date(2024, 1, 1)
    spec = parse_window(str(start), str(start + timedelta(days=MAX_DAYS - 1)), None)
    assert spec.days == MAX_DAYS


def test_resolving_needs_an_aware_instant() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        WindowSpec().resolve("UTC", datetime(2026, 11, 2, 3, 0))  # noqa: DTZ001


# Hypothesis takes naive bounds; the instants it draws carry UTC.
FIRST, LAST = datetime(2000, 1, 1), datetime(2100, 1, 1)  # noqa: DTZ001
IN_UTC: st.SearchStrategy[tzinfo] = st.just(UTC)


@given(
    now=st.datetimes(min_value=FIRST, max_value=LAST, timezones=IN_UTC),
    tz=st.sampled_from(
        ["UTC", "America/Los_Angeles", "Asia/Kolkata", "Pacific/Kiritimati", "Pacific/Pago_Pago"]
    ),
    days=st.integers(1, MAX_DAYS),
)
def test_relative_windows_end_the_day_before_local_today(now: datetime, tz: str, days: int) -> None:
    window = WindowSpec(days=days).resolve(tz, now)
    assert window.days == days
    assert window.end == now.astimezone(ZoneInfo(tz)).date() - timedelta(days=1)
