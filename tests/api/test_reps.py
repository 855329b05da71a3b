"""PUT/GET reps: create, replace, defaults, validation, alias ownership, leaving and cost."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from services.api.reps.schemas import Aliases
from services.core.events import ALIAS_KINDS
from tests.api.factories import RollupFactory, bearer
from tests.factories import TenantCtx, TenantFactory


async def put(client: httpx.AsyncClient, t: TenantCtx, rep_id: str, body: dict[str, Any]) -> httpx.Response:
    return await client.put(f"/v1/reps/{rep_id}", json=body, headers=bearer(t.api_key))


FULL: dict[str, Any] = {
    "name": "Ada Lovelace",
    "team": "east",
    "hired_at": "2026-01-05",
    "timezone": "America/New_York",
    "quota_monthly": "50000.50",
    "active": True,
    "aliases": {
        "hubspot_owner_id": "31337",
        "salesforce_user_id": "0055e000001AbCd",
        "phone": "+14155550100",
        "email": "ada@example.com",
        "aircall_user_id": "812",
    },
}


async def test_put_creates_then_replaces_and_get_reads_it_back(
    client: httpx.AsyncClient, tenants: TenantFactory, rollups: RollupFactory
) -> None:
    t = await tenants.create(timezone="Europe/Berlin")
    r = await put(client, t, "r1", FULL)
    assert r.status_code == 201, r.text
    rep = r.json()
    assert {
        k: rep[k] for k in ("rep_id", "name", "team", "hired_at", "timezone", "quota_monthly", "active")
    } == {
        "rep_id": "r1",
        "name": "Ada Lovelace",
        "team": "east",
        "hired_at": "2026-01-05",
        "timezone": "America/New_York",
        "quota_monthly": 50000.5,
        "active": True,
    }
    assert rep["aliases"] == FULL["aliases"]
    assert await rollups.alias_rows(t.slug) == {(k, v, "r1") for k, v in FULL["aliases"].items()}

    got = await client.get("/v1/reps/r1", headers=bearer(t.api_key))
    assert got.status_code == 200
    assert got.json() == rep

    # PUT replaces the whole rep: what is left out takes its default, old aliases are gone.
    r = await put(client, t, "r1", {"team": "west", "aliases": {"email": "ada@new.example"}})
    assert r.status_code == 200, r.text
    rep = r.json()
    assert (rep["name"], rep["team"], rep["timezone"], rep["quota_monthly"]) == (
        None,
        "west",
        "Europe/Berlin",
        None,
    )
    assert rep["aliases"]["email"] == "ada@new.example"
    assert rep["aliases"]["hubspot_owner_id"] is None
    assert await rollups.alias_rows(t.slug) == {("email", "ada@new.example", "r1")}


async def test_timezone_defaults_to_the_tenants(client: httpx.AsyncClient, tenants: TenantFactory) -> None:
    t = await tenants.create(timezone="Asia/Kolkata")
    r = await put(client, t, "solo", {})
    assert r.status_code == 201, r.text
    assert r.json()["timezone"] == "Asia/Kolkata"
    assert r.json()["active"] is True


async def test_list_filters_by_team_and_active(client: httpx.AsyncClient, tenants: TenantFactory) -> None:
    t = await tenants.create()
    for rep_id, team, active in [("a", "east", True), ("b", "east", False), ("c", "west", True)]:
        assert (await put(client, t, rep_id, {"team": team, "active": active})).status_code == 201
    other = await tenants.create()
    assert (await put(client, other, "z", {"team": "east"})).status_code == 201

    async def ids(**params: str) -> list[str]:
        r = await client.get("/v1/reps", params=params, headers=bearer(t.api_key))
        assert r.status_code == 200, r.text
        return [rep["rep_id"] for rep in r.json()["reps"]]

    assert await ids() == ["a", "b", "c"]
    assert await ids(team="east") == ["a", "b"]
    assert await ids(active="true") == ["a", "c"]
    assert await ids(team="east", active="false") == ["b"]
    assert await ids(team="nobody") == []


async def test_alias_held_by_another_rep_is_409_and_changes_nothing(
    client: httpx.AsyncClient, tenants: TenantFactory, rollups: RollupFactory
) -> None:
    t = await tenants.create()
    assert (
        await put(client, t, "r1", {"aliases": {"email": "x@example.com", "phone": "+1555"}})
    ).status_code == 201
    assert (await put(client, t, "r2", {"name": "Before", "aliases": {"phone": "+1666"}})).status_code == 201

    r = await put(client, t, "r2", {"name": "After", "aliases": {"phone": "+1777", "email": "x@example.com"}})
    assert r.status_code == 409
    error = r.json()["error"]
    assert error["code"] == "alias_conflict"
    assert error["details"][0]["field"] == "aliases.email"
    assert "r1" in error["details"][0]["reason"]
    assert (await client.get("/v1/reps/r2", headers=bearer(t.api_key))).json()["name"] == "Before"
    assert await rollups.alias_rows(t.slug) == {
        ("email", "x@example.com", "r1"),
        ("phone", "+1555", "r1"),
        ("phone", "+1666", "r2"),
    }

    # The owner may keep its own alias; another tenant's reps do not compete for it.
    assert (await put(client, t, "r1", {"aliases": {"email": "x@example.com"}})).status_code == 200
    other = await tenants.create()
    assert (await put(client, other, "q", {"aliases": {"email": "x@example.com"}})).status_code == 201
    # Once r1 let go of the phone, r2 may take it.
    assert (await put(client, t, "r2", {"aliases": {"phone": "+1555"}})).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"timezone": "localtime"}, "timezone"),
        ({"quota_monthly": -1}, "quota_monthly"),
        ({"quota_monthly": "lots"}, "quota_monthly"),
        ({"aliases": {"linkedin": "ada"}}, "aliases.linkedin"),
        ({"aliases": {"email": "not-an-address"}}, "aliases.email"),
        ({"aliases": {"phone": ""}}, "aliases.phone"),
        ({"hired_at": "last spring"}, "hired_at"),
        ({"active": "maybe"}, "active"),
        ({"left_at": "soon"}, "left_at"),
        ({"hired_at": "2026-03-01", "left_at": "2026-02-28"}, "left_at"),
        ({"monthly_cost": -0.01}, "monthly_cost"),
        ({"monthly_cost": "a lot"}, "monthly_cost"),
        ({"monthly_cost": "1e16"}, "monthly_cost"),
        ({"monthly_cost": "NaN"}, "monthly_cost"),
        ({"name": "x" * 201}, "name"),
        ({"nickname": "Ada"}, "nickname"),
    ],
)
async def test_invalid_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, tenants: TenantFactory, body: dict[str, Any], field: str
) -> None:
    t = await tenants.create()
    r = await put(client, t, "r1", body)
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["error"]["details"]]
    assert (await client.get("/v1/reps/r1", headers=bearer(t.api_key))).status_code == 404


async def test_body_that_is_not_json_is_422(client: httpx.AsyncClient, tenants: TenantFactory) -> None:
    t = await tenants.create()
    r = await client.put(
        "/v1/reps/r1",
        content=b"{not json",
        headers={**bearer(t.api_key), "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"


async def test_unknown_rep_is_404(client: httpx.AsyncClient, tenants: TenantFactory) -> None:
    t = await tenants.create()
    r = await client.get("/v1/reps/ghost", headers=bearer(t.api_key))
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_the_alias_kinds_are_the_ones_events_carry() -> None:
    assert tuple(Aliases.model_fields) == ALIAS_KINDS


async def test_concurrent_claims_of_one_alias_leave_a_single_owner(
    client: httpx.AsyncClient, tenants: TenantFactory, rollups: RollupFactory
) -> None:
    t = await tenants.create()
    for round_ in range(5):
        email = f"shared{round_}@example.com"
        answers = await asyncio.gather(
            *(put(client, t, f"c{round_}-{i}", {"aliases": {"email": email}}) for i in range(3))
        )
        assert sorted(r.status_code for r in answers) == [201, 409, 409]
    owners = [row for row in await rollups.alias_rows(t.slug) if row[0] == "email"]
    assert len(owners) == 5


def _today(zone: str) -> date:
    return datetime.now(ZoneInfo(zone)).date()


async def test_left_at_and_monthly_cost_round_trip(client: httpx.AsyncClient, tenants: TenantFactory) -> None:
    t = await tenants.create()
    later = (_today("UTC") + timedelta(days=30)).isoformat()
    body = {"hired_at": "2025-02-01", "left_at": later, "monthly_cost": "12500.2575"}
    r = await put(client, t, "r1", body)
    assert r.status_code == 201, r.text
    rep = r.json()
    assert (rep["hired_at"], rep["left_at"], rep["monthly_cost"], rep["active"]) == (
        "2025-02-01",
        later,
        12500.2575,
        True,  # leaving next month: active until then
    )
    assert (await client.get("/v1/reps/r1", headers=bearer(t.api_key))).json() == rep
    listed = (await client.get("/v1/reps", headers=bearer(t.api_key))).json()["reps"]
    assert [(x["left_at"], x["monthly_cost"]) for x in listed] == [(later, 12500.2575)]
    # Left out, both are null again (PUT replaces the whole rep); a rep may leave on its first day.
    r = await put(client, t, "r1", {"hired_at": "2025-02-01"})
    assert (r.json()["left_at"], r.json()["monthly_cost"]) == (None, None)
    r = await put(client, t, "r1", {"hired_at": "2025-02-01", "left_at": "2025-02-01", "monthly_cost": 0})
    assert r.status_code == 200, r.text
    assert (r.json()["left_at"], r.json()["monthly_cost"], r.json()["active"]) == ("2025-02-01", 0.0, False)


async def test_a_rep_is_inactive_from_its_leaving_day_in_its_own_timezone(
    client: httpx.AsyncClient, tenants: TenantFactory
) -> None:
    t = await tenants.create()
    # The same leaving day is today at UTC+14 and still ahead at UTC-11.
    leaving = _today("Pacific/Kiritimati")
    assert leaving > _today("Pacific/Pago_Pago")
    for rep_id, zone in (("east", "Pacific/Kiritimati"), ("west", "Pacific/Pago_Pago")):
        body = {"timezone": zone, "left_at": leaving.isoformat()}
        assert (await put(client, t, rep_id, body)).status_code == 201
    yesterday = (_today("UTC") - timedelta(days=1)).isoformat()
    assert (await put(client, t, "gone", {"left_at": yesterday})).status_code == 201
    assert (await put(client, t, "off", {"active": False})).status_code == 201

    async def listed(**params: str) -> dict[str, bool]:
        r = await client.get("/v1/reps", params=params, headers=bearer(t.api_key))
        assert r.status_code == 200, r.text
        return {x["rep_id"]: x["active"] for x in r.json()["reps"]}

    assert await listed() == {"east": False, "gone": False, "off": False, "west": True}
    assert await listed(active="true") == {"west": True}
    assert list(await listed(active="false")) == ["east", "gone", "off"]


async def test_a_rep_who_left_is_nobodys_peer_and_off_the_team_view(
    client: httpx.AsyncClient, tenants: TenantFactory, rollups: RollupFactory
) -> None:
    t = await tenants.create()
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    dials = {"a": 10, "b": 20, "c": 30, "d": 40, "e": 50, "f": 60, "left": 500}
    for rep_id, n in dials.items():
        await rollups.rep(t.slug, rep_id, team="east")
        await rollups.day(t.slug, rep_id, yesterday, dials=n)
    # It left today: its dials of yesterday are history, not a peer's.
    assert (await put(client, t, "left", {"team": "east", "left_at": str(_today("UTC"))})).status_code == 200

    team = await client.get("/v1/coaching/team", headers=bearer(t.api_key))
    assert team.status_code == 200, team.text
    assert [r["rep_id"] for r in team.json()["reps"]] == ["a", "b", "c", "d", "e", "f"]
    r = await client.get("/v1/coaching/reps/a", headers=bearer(t.api_key))
    assert r.status_code == 200, r.text
    standing = r.json()["metrics"]["dials"]
    # peers b-f: 20, 30, 40, 50, 60 (with the rep who left, 500 would be one of six)
    assert (standing["peers"], standing["peer_median"]) == (5, 40.0)
    # The rep who left is still coached against the active reps.
    own = await client.get("/v1/coaching/reps/left", headers=bearer(t.api_key))
    assert own.status_code == 200, own.text
    assert own.json()["metrics"]["dials"]["peers"] == 6
