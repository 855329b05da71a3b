"""Every ingest route that accepts data refuses a request without valid credentials.

Routes are read from the app itself, so a route added later without authentication fails here.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from services.ingest.app import create_app
from tests.conftest import Stack
from tests.factories import TenantFactory

# Read-only operations routes: open by design (SPEC 3).
FIXTURES = Path(__file__).parent / "sources" / "fixtures"
CONTENT = [
    ("application/json", b"{}"),
    ("application/x-www-form-urlencoded", b"CallSid=CA1&CallStatus=completed"),
    # Salesforce carries its credential (OrganizationId) in a well-formed envelope.
    ("text/xml", (FIXTURES / "salesforce_leads.xml").read_bytes()),
    # Aircall carries its credential (token) in the body.
    ("application/json", (FIXTURES / "aircall_call_ended.json").read_bytes()),
]
OPEN = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


async def test_every_data_route_refuses_missing_and_foreign_credentials(
    stack: Stack, tenants: TenantFactory
) -> None:
    t, other = await tenants.create(), await tenants.create()
    app = create_app(stack.settings())
    # The OpenAPI document lists every route the app serves, included routers too.
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path not in OPEN
        for method in operations
    }
    assert {path for _, path in routes} >= {"/v1/events/{tenant}", "/webhooks/hubspot/{tenant}"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://ingest") as client,
    ):
        for method, template in sorted(routes):
            path = template.replace("{tenant}", t.slug)
            for headers in (
                {},
                {"Authorization": f"Bearer {other.ingest_key}"},
                {"Authorization": "Bearer sl_000000000000_not-a-key"},
            ):
                # Whatever content type the route expects, credentials are checked: one of these
                # bodies passes the content-type check and must then be refused with 401.
                statuses = []
                for content_type, body in CONTENT:
                    r = await client.request(
                        method, path, content=body, headers={"Content-Type": content_type, **headers}
                    )
                    assert r.status_code < 500, (method, template, r.status_code, r.text)
                    assert r.status_code not in range(200, 300), (method, template, headers, r.text)
                    statuses.append(r.status_code)
                assert 401 in statuses, (method, template, headers, statuses)
