"""Rep and team metrics from `rollup_rep_daily`: values, windows, quota, `as_of`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.api.kit.windows import WindowSpec
from tests.api.factories import RollupFactory, bearer
from tests.api.test_metric_formulas import HAND_COMPUTED
from tests.api.window_rule import Window, resolve
from tests.factories import TenantCtx, TenantFactory

OCT = {"from": "2026-10-01", "to": "2026-10-30"}
MONTHS_30D = 30 / (365.25 / 12)


async def get(client: httpx.AsyncClient, t: TenantCtx, url: str, **params: str) -> dict[str, Any]:
    r = await client.get(url, params=params, headers=bearer(t.api_key))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def seed_r1(rollups: RollupFactory, tenant: str, rep_id: str = "r1") -> None:
    """Two days inside October 1-30 and one on each side of it."""
    await rollups.day(
        tenant, rep_id, date(2026, 10, 1),
        events=60, calls=12, dials=10, connects=4, talk_time_s=600, talk_calls=3, rep_talk_s=150,
        buyer_talk_s=250, emails_sent=20, email_replies=3, emails_opened=9, emails_clicked=5,
        meetings_booked=2, meetings_held=1, deals_created=1, deals_won=1, revenue_won=Decimal("3000"),
    )  # fmt: skip
    await rollups.day(
        tenant, rep_id, date(2026, 10, 30),
        dials=30, connects=6, talk_time_s=Decimal("900.5"), talk_calls=2, rep_talk_s=50, buyer_talk_s=50,
        emails_sent=10, emails_opened=3, emails_clicked=1, emails_bounced=2, meetings_booked=2,
        meetings_held=2, deals_created=2, deals_won=1, deals_lost=2, revenue_won=Decimal("1500.25"),
    )  # fmt: skip
    for outside in (date(2026, 9, 30), date(2026, 10, 31)):
        await rollups.day(
            tenant, rep_id, outside, dials=1000, connects=1000, emails_sent=1000, emails_opened=1000,
            emails_clicked=1000, emails_bounced=1000, deals_won=1000, revenue_won=Decimal(10**6),
        )  # fmt: skip


# The rep of the formula test, with two deals lost instead of six.
R1_OCTOBER = HAND_COMPUTED | {"deals_lost": 2, "win_rate": 0.5}


async def test_rep_metrics_over_inclusive_dates(
    client: httpx.AsyncClient, tenants: TenantFactory, rollups: RollupFactory
) -> None:
    t = await tenants.create()
    await rollups.rep(t.slug, "r1", quota_monthly=Decimal(10000))
    await seed_r1(rollups, t.slug)
    body = await get(client, t, "/v1/reps/r1/metrics", **OCT)
    assert (body["rep_id"], body["from"], body["to"]) == ("r1", "2026-10-01", "2026-10-30")
    assert body["metrics"] == R1_OCTOBER

    one_day = await get(client, t, "/v1/reps/r1/metrics", **{"from": "2026-10-30", "to": "2026-10-30"})
    assert (one_day["metrics"]["dials"], one_day["metrics"]["deals_lost"]) == (30, 2)


async def test_rates_with_zero_denominators_are_null(
    client: httpx.AsyncClient, tenants: TenantFactory, rollups: RollupFactory
) -> None:
    t = await tenants.create()
    await rollups.rep(t.slug, "quiet")
    await rollups.day(t.slug, "quiet", date(2026, 10, 5), meetings_booked=2, deals_lost=1, emails_bounced=1)
    m = (await get(client, t, "/v1/reps/quiet/metrics", **OCT))["metrics"]
    assert m["dials"] == 0
    assert m["connects"] == 0
    assert (m["emails_sent"], m["emails_bounced"]) == (0, 1)
    for name in (
        "connect_rate",
        "talk_ratio",
        "reply_rate",
        "open_rate",
        "click_rate",
        "bounce_rate",
        "meeting_rate",
        "avg_deal_size",
        "quota_attainment",
    ):
        assert m[name] is None, name
    assert m["show_rate"] == 0.0
    assert m["win_rate"] == 0.0

    empty = await get(client, t, "/v1/reps/quiet/metrics", **{"from": "2025-01-01", "to": "2025-01-31"})
    assert empty["metrics"]["meetings_booked"] == 0
    assert empty["metrics"]["show_rate"] is None


async def test_team_rates_come_from_summed_counts(
    client: httpx.AsyncClient, tenants: TenantFactory, rollups: RollupFactory
) -> None:
    t = await tenants.create()
    await rollups.rep(t.slug, "r1", team="east", quota_monthly=Decimal(10000))
    await rollups.rep(t.slug, "r2", team="east", timezone="Asia/Tokyo", quota_monthly=Decimal(5000))
    await rollups.rep(t.slug, "r3", team="east", active=False)
    await rollups.rep(t.slug, "w1", team="west", quota_monthly=Decimal(1))
    await seed_r1(rollups, t.slug)
    await rollups.day(
        t.slug, "r2", date(2026, 10, 15), dials=10, connects=5, deals_won=1, revenue_won=1000,
        emails_sent=10, emails_opened=8, emails_clicked=4, emails_bounced=0,
    )  # fmt: skip
    await rollups.day(t.slug, "w1", date(2026, 10, 15), dials=999, deals_won=9, revenue_won=99999)

    body = await get(client, t, "/v1/teams/east/metrics", **OCT)
    assert (body["team"], body["reps"], body["from"], body["to"]) == (
        "east",
        ["r1", "r2", "r3"],
        "2026-10-01",
        "2026-10-30",
    )
    m = body["metrics"]
    assert (m["dials"], m["connects"], m["deals_won"], m["revenue_won"]) == (50, 15, 3, 5500.25)
    assert m["connect_rate"] == pytest.approx(0.3)  # 15 / 50, not the mean of 0.25 and 0.5
    assert m["meeting_rate"] == pytest.approx(4 / 15)
    assert m["avg_deal_size"] == pytest.approx(5500.25 / 3)
    assert m["quota_attainment"] == pytest.approx(5500.25 / (15000 * MONTHS_30D))
    # r1 sent 30 (12 opened, 6 clicked, 2 bounced), r2 10 (8, 4, 0): rates of the sums, 20 / 40
    # opened where the mean of the reps' rates (0.4 and 0.8) would say 0.6.
    assert (m["emails_sent"], m["emails_opened"], m["emails_clicked"], m["emails_bounced"]) == (40, 20, 10, 2)
    assert (m["open_rate"], m["click_rate"], m["bounce_rate"]) == (0.5, 0.25, 0.05)

    west = await get(client, t, "/v1/teams/west/metrics", **OCT)
    assert (west["reps"], west["metrics"]["dials"]) == (["w1"], 999)


async def test_team_without_any_quota_has_null_attainment(
    client: httpx.AsyncClient, tenants: TenantFactory, rollups: RollupFactory
) -> None:
    t = await tenants.create()
    await rollups.rep(t.slug, "a", team="sdr")
    await rollups.day(t.slug, "a", date(2026, 10, 3), deals_won=1, revenue_won=100)
    m = (await get(client, t, "/v1/teams/sdr/metrics", **OCT))["metrics"]
    assert (m["revenue_won"], m["quota_attainment"]) == (100.0, None)


async def test_unknown_rep_and_team_are_404(
    client: httpx.AsyncClient, tenants: TenantFactory, rollups: RollupFactory
) -> None:
    t = await tenants.create()
    await rollups.rep(t.slug, "r1", team="east")
    for url in ("/v1/reps/ghost/metrics", "/v1/teams/nobody/metrics"):
        r = await client.get(url, headers=bearer(t.api_key))
        assert r.status_code == 404, url
        assert r.json()["error"]["code"] == "not_found"


async def test_as_of_is_the_tenants_watermark(
    client: httpx.AsyncClient, tenants: TenantFactory, rollups: RollupFactory
) -> None:
    t, other = await tenants.create(), await tenants.create()
    await rollups.rep(t.slug, "r1", team="east")
    await rollups.watermark(other.slug, datetime(2026, 11, 1, tzinfo=UTC))
    assert (await get(client, t, "/v1/reps/r1/metrics"))["as_of"] is None
    assert (await get(client, t, "/v1/teams/east/metrics"))["as_of"] is None

    await rollups.watermark(t.slug, datetime(2026, 10, 30, 17, 2, 11, tzinfo=UTC))
    assert (await get(client, t, "/v1/reps/r1/metrics"))["as_of"] == "2026-10-30T17:02:11Z"
    assert (await get(client, t, "/v1/teams/east/metrics"))["as_of"] == "2026-10-30T17:02:11Z"


def default_window(tz: str, days: int = 30) -> Window:
    return resolve(WindowSpec(days=days), tz, datetime.now(UTC))


async def seed_edges(rollups: RollupFactory, tenant: str, rep_id: str, window: Window) -> None:
    """1 dial on the last day, 10 on the first; 100 the day after (today), 1000 the day before."""
    await rollups.day(tenant, rep_id, window.end, dials=1)
    await rollups.day(tenant, rep_id, window.start, dials=10)
    await rollups.day(tenant, rep_id, window.end + timedelta(days=1), dials=100)
    await rollups.day(tenant, rep_id, window.start - timedelta(days=1), dials=1000)


async def test_default_window_is_the_last_30_full_days_in_the_reps_timezone(
    client: httpx.AsyncClient, tenants: TenantFactory, rollups: RollupFactory
) -> None:
    # 25 hours apart: at any hour at least one of them is on another date than UTC. Rep "k" takes
    # the tenant's timezone, rep "p" its own; the team window follows the tenant's.
    zones = {"k": "Pacific/Kiritimati", "p": "Pacific/Pago_Pago"}
    for _ in range(2):  # once more if a local midnight passes mid-test
        t = await tenants.create(timezone="Pacific/Kiritimati")
        for rep_id, body in [("k", {"team": "pacific"}), ("p", {"team": "pacific", "timezone": zones["p"]})]:
            r = await client.put(f"/v1/reps/{rep_id}", json=body, headers=bearer(t.api_key))
            assert r.status_code == 201, r.text
        expected = {rep_id: default_window(tz) for rep_id, tz in zones.items()}
        for rep_id, window in expected.items():
            await seed_edges(rollups, t.slug, rep_id, window)
        bodies = {rep_id: await get(client, t, f"/v1/reps/{rep_id}/metrics") for rep_id in zones}
        team = await get(client, t, "/v1/teams/pacific/metrics")
        if {rep_id: default_window(tz) for rep_id, tz in zones.items()} == expected:
            break

    assert expected["k"] != expected["p"]
    for rep_id, window in expected.items():
        assert window.days == 30
        assert (bodies[rep_id]["from"], bodies[rep_id]["to"]) == (str(window.start), str(window.end))
        assert bodies[rep_id]["metrics"]["dials"] == 11, rep_id

    team_window = expected["k"]
    assert (team["from"], team["to"]) == (str(team_window.start), str(team_window.end))
    # Each rep's rows count on the team's dates, read as that rep's local days.
    p_rows = {
        expected["p"].end: 1,
        expected["p"].start: 10,
        expected["p"].end + timedelta(days=1): 100,
        expected["p"].start - timedelta(days=1): 1000,
    }
    p_dials = sum(n for day, n in p_rows.items() if team_window.start <= day <= team_window.end)
    assert team["metrics"]["dials"] == 11 + p_dials


async def test_window_7d(client: httpx.AsyncClient, tenants: TenantFactory, rollups: RollupFactory) -> None:
    t = await tenants.create()
    await rollups.rep(t.slug, "r1", timezone="America/Los_Angeles")
    window = default_window("America/Los_Angeles", days=7)
    await seed_edges(rollups, t.slug, "r1", window)
    body = await get(client, t, "/v1/reps/r1/metrics", window="7d")
    assert (body["from"], body["to"]) == (str(window.start), str(window.end))
    assert body["metrics"]["dials"] == 11


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-10-30", "to": "2026-10-01"}, "from"),
        ({"from": "2026-10-01"}, "to"),
        ({"from": "01/10/2026", "to": "2026-10-30"}, "from"),
        ({"window": "30d", "from": "2026-10-01", "to": "2026-10-30"}, "window"),
        ({"window": "0d"}, "window"),
        ({"window": "1097d"}, "window"),
        ({"window": "month"}, "window"),
    ],
)
async def test_bad_window_parameters_are_422_naming_the_parameter(
    client: httpx.AsyncClient,
    tenants: TenantFactory,
    rollups: RollupFactory,
    params: dict[str, str],
    field: str,
) -> None:
    t = await tenants.create()
    await rollups.rep(t.slug, "r1", team="east")
    for url in ("/v1/reps/r1/metrics", "/v1/teams/east/metrics"):
        r = await client.get(url, params=params, headers=bearer(t.api_key))
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["details"] == [{"field": field, "reason": error["details"][0]["reason"]}]
        assert field in error["message"]
