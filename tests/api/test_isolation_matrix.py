"""Every route of the API app against every kind of caller: no key, a revoked key, a key without the
route's scope, and another tenant's key. Routes are enumerated from the app itself, so a route added
without authentication (or without an entry here) fails this test."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import routing
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.app import create_app
from services.core.tenancy import SCOPES, create_key, revoke_key
from tests.api.org import Org, organisation
from tests.conftest import Services, Stack
from tests.factories import TenantFactory

# Operations routes answer anyone: they carry no tenant data.
EXEMPT = frozenset(
    {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
PATH_VALUES = {
    "rep_id": "secretrep",
    "team": "secretteam",
    "event_id": "secretcall",
    "contact_id": "secretlead",
}
HIRED = datetime.now(UTC).date() - timedelta(days=20)
REP = {"name": "Secret Rep", "team": "secretteam", "hired_at": str(HIRED), "quota_monthly": "1000"}
TRAITS = {"coachability": 7, "secrettrait": 4}
SPEND = {"channel": "events", "month": "2026-10", "amount": "310"}
STAGES = {"stages": [{"name": "secretstage", "probability": 0.4}]}
ECONOMICS = {"gross_margin": 0.7, "sales_cost_monthly": 500.0, "failure_rate": None}


@dataclass(frozen=True)
class Case:
    """`scopes`: any of them (or admin) may call the route. `tenant_in_path`: another tenant's key
    must get 404 as for an id that does not exist; otherwise it must see its own (here: empty)
    view. `body`: a write's body, the values this tenant already has (so its own call changes
    nothing)."""

    scopes: frozenset[str]
    tenant_in_path: bool
    body: dict[str, Any] | None = None
    foreign_status: int = 404
    params: dict[str, str] = field(default_factory=dict)
    own_status: int = 200  # what this tenant's call answers: the capacity plan refuses a one-rep team


def case(scopes: str, tenant_in_path: bool, **kw: Any) -> Case:
    return Case(frozenset(scopes.split("|")), tenant_in_path, **kw)


ROUTES: dict[tuple[str, str], Case] = {
    # Another tenant's PUT of the same rep id creates that tenant's own rep.
    ("PUT", "/v1/reps/{rep_id}"): case("reps:write", False, body=REP, foreign_status=201),
    ("GET", "/v1/reps"): case("metrics:read|reps:write", False),
    ("GET", "/v1/reps/{rep_id}"): case("metrics:read|reps:write", True),
    ("GET", "/v1/reps/{rep_id}/metrics"): case("metrics:read", True),
    ("GET", "/v1/teams/{team}/metrics"): case("metrics:read", True),
    ("GET", "/v1/coaching/reps/{rep_id}"): case("coaching:read", True),
    ("GET", "/v1/coaching/reps/{rep_id}/history"): case("coaching:read", True, params={"weeks": "2"}),
    ("GET", "/v1/coaching/team"): case("coaching:read", False),
    ("GET", "/v1/conversations/calls/{event_id}"): case("conversations:read", True),
    ("GET", "/v1/conversations/reps/{rep_id}"): case("conversations:read", True),
    ("GET", "/v1/conversations/team"): case("conversations:read", False),
    ("PUT", "/v1/hiring/scorecards/{rep_id}"): case("hiring:write", True, body={"traits": TRAITS}),
    ("GET", "/v1/hiring/scorecards/{rep_id}"): case("hiring:read", True),
    ("GET", "/v1/hiring/trait-correlations"): case("hiring:read", False),
    ("GET", "/v1/training/ramp"): case("training:read", False),
    ("GET", "/v1/training/certifications"): case("training:read", False),
    ("GET", "/v1/demand/channels"): case(
        "demand:read", False, params={"from": "2026-10-01", "to": "2026-10-30"}
    ),
    ("PUT", "/v1/demand/spend"): case("demand:write", False, body=SPEND, foreign_status=201),
    ("GET", "/v1/data-quality"): case("metrics:read", False),
    ("PUT", "/v1/pipeline/stages"): case("pipeline:write", False, body=STAGES, foreign_status=200),
    ("GET", "/v1/pipeline/stages"): case("pipeline:read", False),
    ("GET", "/v1/pipeline/velocity"): case("pipeline:read", False),
    ("GET", "/v1/pipeline/forecast"): case("pipeline:read", False),
    ("GET", "/v1/pipeline/deals"): case("pipeline:read", False, params={"status": "stale"}),
    ("PUT", "/v1/economics/settings"): case("economics:write", False, body=ECONOMICS, foreign_status=200),
    ("GET", "/v1/economics/settings"): case("economics:read", False),
    ("GET", "/v1/economics/summary"): case(
        "economics:read", False, params={"from": "2026-10-01", "to": "2026-10-30"}
    ),
    ("GET", "/v1/planning/capacity"): case(
        "economics:read", False, params={"target_bookings": "1000"}, own_status=422
    ),
    ("GET", "/v1/planning/fit"): case("economics:read", False),
    # Another tenant's erasure of the same contact id erases (and answers) its own contact.
    ("DELETE", "/v1/contacts/{contact_id:anytext}"): case("admin", False, foreign_status=200),
}


def app_routes(stack: Stack) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, included routers flattened."""
    app = create_app(stack.settings())
    # FastAPI >= 0.120 keeps included routers as nodes of `app.routes`; this walks through them.
    flatten = getattr(routing, "iter_route_contexts", lambda routes: routes)
    found = set()
    for route in flatten(app.routes):
        path = getattr(route, "path", "")
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD" and path not in EXEMPT:
                found.add((method, path))
    return found


def url(path: str, values: dict[str, str] = PATH_VALUES) -> str:
    def fill(match: re.Match[str]) -> str:
        assert match.group(1) in values, f"no test value for path parameter {match.group(1)!r}"
        return values[match.group(1)]

    return re.sub(r"{(\w+)(?::\w+)?}", fill, path)


def stable(body: Any) -> Any:
    """The body without `updated_at` stamps, which this tenant's own (same-valued) writes move."""
    if isinstance(body, dict):
        return {k: stable(v) for k, v in body.items() if k != "updated_at"}
    if isinstance(body, list):
        return [stable(v) for v in body]
    return body


@pytest.fixture(scope="module")
async def org(services: Services, tenants: TenantFactory, engine: AsyncEngine) -> AsyncIterator[Org]:
    """A tenant with something behind every route: rep, team, scorecard, spend, stage order, leads
    and deals, a certification, a transcribed call, an unknown vendor identity; all in the last 30
    days but for one stale open deal."""
    async with organisation(services, tenants, engine) as o:
        await o.rep("secretrep", **REP)
        r = await o.request("PUT", "/v1/hiring/scorecards/secretrep", json={"traits": TRAITS})
        assert r.status_code == 201, r.text
        r = await o.request("PUT", "/v1/demand/spend", json=SPEND)
        assert r.status_code == 201, r.text
        r = await o.request("PUT", "/v1/pipeline/stages", json=STAGES)
        assert r.status_code == 200, r.text
        r = await o.request("PUT", "/v1/economics/settings", json=ECONOMICS)
        assert r.status_code == 200, r.text
        at = datetime.now(UTC) - timedelta(days=2)
        common = {"rep_id": "secretrep", "contact_id": "secretcontact"}
        o.event("lead.created", at, channel="referral", **common)
        o.event("call.completed", at, direction="outbound", outcome="connected", **common)
        transcript = [
            {"speaker": "rep", "start_s": 0, "end_s": 4, "text": "It sounds like a secret?"},
            {"speaker": "buyer", "start_s": 5, "end_s": 7, "text": "That's right."},
        ]
        o.event("call.completed", at, event_id="secretcall", transcript=transcript, **common)
        o.event("deal.won", at, amount="1234", **common)
        # An open deal whose contact nobody called for 40 days: stale.
        o.event(
            "deal.created", at - timedelta(days=40), rep_id="secretrep", contact_id="secretbuyer",
            deal_id="secretdeal", stage="secretstage", amount="4321", close_date=str(at.date()),
        )  # fmt: skip
        o.event("training.certification", at, module="secretmodule", score=90, passed=True, **common)
        # On 10 October too, for the fixed window of the channels report.
        o.event(
            "lead.created", datetime(2026, 10, 10, 12, tzinfo=UTC), channel="events", contact_id="secretlead"
        )
        await o.flush()
        await o.aircall_calls([(77, 987654, at)])  # a vendor identity nobody has
        yield o


async def test_every_route_is_in_the_matrix(stack: Stack) -> None:
    assert app_routes(stack) == set(ROUTES)


@dataclass(frozen=True)
class Caller:
    org: Org
    method: str
    path: str
    case: Case

    async def __call__(self, key: str | None, path_values: dict[str, str] = PATH_VALUES) -> httpx.Response:
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        return await self.org.api.request(
            self.method,
            url(self.path, path_values),
            headers=headers,
            json=self.case.body,
            params=self.case.params,
        )


async def test_the_matrix(org: Org, engine: AsyncEngine, tenants: TenantFactory) -> None:
    # Reads first, then writes; the other tenant's PUT of the rep last (it creates that tenant's rep).
    routes = sorted(ROUTES, key=lambda r: (r[0] != "GET", r[1] == "/v1/reps/{rep_id}", r))
    revoked = await create_key(engine, org.tenant.slug, sorted(SCOPES))
    assert await revoke_key(engine, revoked)
    other, empty = await tenants.create(), await tenants.create()
    own: dict[tuple[str, str], Any] = {}

    for method, path in routes:
        c = ROUTES[(method, path)]
        where = (method, path)
        call = Caller(org, method, path, c)

        mine = await call(org.tenant.api_key)
        expected = (200, 201) if c.own_status == 200 else (c.own_status,)
        assert mine.status_code in expected, (where, mine.text)
        own[where] = stable(mine.json())

        for key in (None, revoked, "sl_000000000000_" + "A" * 43):
            r = await call(key)
            assert r.status_code == 401, (where, key, r.text)
            assert r.json()["error"]["code"] == "unauthorized"

        lacking = await create_key(engine, org.tenant.slug, sorted(SCOPES - c.scopes - {"admin"}))
        r = await call(lacking)
        assert r.status_code == 403, (where, r.text)
        assert r.json()["error"]["code"] == "forbidden"
        for scope in sorted(c.scopes):
            allowed = await create_key(engine, org.tenant.slug, [scope])
            assert (await call(allowed)).status_code in (200, 201, c.own_status), (where, scope)

        theirs = await call(other.api_key)
        assert b"secret" not in theirs.content or method != "GET", (where, theirs.text)
        if method != "GET":
            assert theirs.status_code == c.foreign_status, (where, theirs.text)
        elif c.tenant_in_path:
            missing = await call(other.api_key, dict.fromkeys(PATH_VALUES, "no-such-thing"))
            assert theirs.status_code == missing.status_code == 404, (where, theirs.text)
            assert theirs.content == missing.content
        else:
            # The other tenant's own view: exactly what a tenant without any data sees.
            nothing = await call(empty.api_key)
            assert theirs.status_code == nothing.status_code == c.own_status, (where, theirs.text)
            assert theirs.json() == nothing.json(), where
            if c.own_status == 200:
                assert own[where] != stable(nothing.json()), f"{where}: this tenant's own view is empty too"

    # The other tenant's writes went to its own rows: this tenant's answers are unchanged.
    for method, path in routes:
        if method == "GET":
            again = await org.api.get(url(path), headers=org.auth, params=ROUTES[(method, path)].params)
            assert stable(again.json()) == own[(method, path)], (method, path)
