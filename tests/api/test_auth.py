"""Keys: missing, bad, revoked, lacking a scope; and a key never sees another tenant."""

from __future__ import annotations

from datetime import date

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.tenancy import create_key, revoke_key
from tests.api.factories import RollupFactory, bearer
from tests.factories import TenantFactory

OCT = {"from": "2026-10-01", "to": "2026-10-30"}


def assert_401(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": "Bearer sl_000000000000_" + "A" * 43},
    ],
)
async def test_missing_or_bad_key_is_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for method, url in [("GET", "/v1/reps"), ("GET", "/v1/reps/r1/metrics"), ("PUT", "/v1/reps/r1")]:
        assert_401(await client.request(method, url, headers=headers, json={}))


async def test_auth_is_checked_before_parameters(client: httpx.AsyncClient) -> None:
    assert_401(await client.get("/v1/reps/r1/metrics", params={"window": "bad"}))
    assert_401(await client.put("/v1/reps/r1", json={"timezone": "Nowhere/Else"}))


async def test_a_tampered_key_of_a_real_prefix_is_401(
    client: httpx.AsyncClient, tenants: TenantFactory
) -> None:
    t = await tenants.create()
    tampered = t.api_key[:-1] + ("A" if t.api_key[-1] != "A" else "B")
    assert_401(await client.get("/v1/reps", headers=bearer(tampered)))


async def test_revoked_key_is_401(
    client: httpx.AsyncClient, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    t = await tenants.create()
    key = await create_key(engine, t.slug, ["metrics:read"])
    assert (await client.get("/v1/reps", headers=bearer(key))).status_code == 200
    assert await revoke_key(engine, key)
    assert_401(await client.get("/v1/reps", headers=bearer(key)))


async def test_scopes(
    client: httpx.AsyncClient, tenants: TenantFactory, engine: AsyncEngine, rollups: RollupFactory
) -> None:
    t = await tenants.create()
    await rollups.rep(t.slug, "r1", team="east")
    keys = {
        scopes: await create_key(engine, t.slug, scopes.split(","))
        for scopes in ("ingest", "metrics:read", "reps:write", "coaching:read,demand:read", "admin")
    }
    routes = {
        "put": ("PUT", "/v1/reps/r2", "reps:write"),
        "list": ("GET", "/v1/reps", "metrics:read|reps:write"),
        "get": ("GET", "/v1/reps/r1", "metrics:read|reps:write"),
        "rep_metrics": ("GET", "/v1/reps/r1/metrics", "metrics:read"),
        "team_metrics": ("GET", "/v1/teams/east/metrics", "metrics:read"),
    }
    for scopes, key in keys.items():
        for name, (method, url, needed) in routes.items():
            r = await client.request(method, url, headers=bearer(key), json={"team": "east"})
            allowed = scopes == "admin" or scopes in needed.split("|")
            if allowed:
                assert r.status_code in (200, 201), (scopes, name, r.text)
            else:
                assert r.status_code == 403, (scopes, name, r.text)
                error = r.json()["error"]
                assert error["code"] == "forbidden"
                assert needed.split("|")[0] in error["message"]


async def test_another_tenants_key_sees_nothing_of_this_tenant(
    client: httpx.AsyncClient, tenants: TenantFactory, rollups: RollupFactory
) -> None:
    mine, theirs = await tenants.create(), await tenants.create()
    await rollups.rep(mine.slug, "secret-rep", team="secret-team")
    await rollups.day(mine.slug, "secret-rep", date(2026, 10, 2), dials=7)
    own = await client.get("/v1/reps/secret-rep/metrics", params=OCT, headers=bearer(mine.api_key))
    assert own.json()["metrics"]["dials"] == 7

    for url in ("/v1/reps/{}", "/v1/reps/{}/metrics"):
        existing = await client.get(url.format("secret-rep"), params=OCT, headers=bearer(theirs.api_key))
        missing = await client.get(url.format("no-such-rep"), params=OCT, headers=bearer(theirs.api_key))
        assert existing.status_code == missing.status_code == 404
        assert existing.content == missing.content
        assert b"secret" not in existing.content
    existing = await client.get("/v1/teams/secret-team/metrics", params=OCT, headers=bearer(theirs.api_key))
    missing = await client.get("/v1/teams/no-such-team/metrics", params=OCT, headers=bearer(theirs.api_key))
    assert existing.status_code == missing.status_code == 404
    assert existing.content == missing.content

    listed = await client.get("/v1/reps", headers=bearer(theirs.api_key))
    assert listed.json() == {"reps": []}
    # Their PUT of the same id creates their own rep and leaves this tenant's untouched.
    r = await client.put("/v1/reps/secret-rep", json={"team": "theirs"}, headers=bearer(theirs.api_key))
    assert r.status_code == 201
    mine_rep = await client.get("/v1/reps/secret-rep", headers=bearer(mine.api_key))
    assert mine_rep.json()["team"] == "secret-team"
    theirs_metrics = await client.get(
        "/v1/reps/secret-rep/metrics", params=OCT, headers=bearer(theirs.api_key)
    )
    assert theirs_metrics.json()["metrics"]["dials"] == 0
