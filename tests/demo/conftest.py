"""One small demo organisation, loaded once through the real services and folded, for the API tests,
and a client of the api with its tenant's key."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.demo import DemoOptions, Endpoints, Summary, billing, load_async, model, pipeline, simulate
from devstack.demo.model import Organisation
from devstack.demo.simulate import DemoEvent
from tests.conftest import Services
from tests.factories import TenantCtx, TenantFactory
from tests.support import wait_folded

# A fixed end keeps the organisation the same on every day the tests run (the events stay in the
# past, which is all the pipeline asks of them).
END = min(datetime(2026, 11, 1, tzinfo=UTC), model.demo_end(datetime.now(UTC)))
SMALL = {"reps": 20, "days": 120, "seed": 7}
FOLD_TIMEOUT_S = 60.0

SmallOrg = tuple[Organisation, list[DemoEvent]]


@dataclass(frozen=True)
class LoadedDemo:
    tenant: TenantCtx
    org: Organisation
    events: list[DemoEvent]
    summary: Summary
    console_output: str


@pytest.fixture(scope="session")
def small_org() -> SmallOrg:
    org = model.build(**SMALL, end=END)
    return org, billing.with_billing(org, pipeline.events(org, simulate.events(org)))


@pytest.fixture(scope="session")
async def loaded(
    services: Services, tenants: TenantFactory, engine: AsyncEngine, small_org: SmallOrg
) -> LoadedDemo:
    org, events = small_org
    tenant = await tenants.create(prefix="demo")
    out = io.StringIO()
    summary = await load_async(
        Endpoints(
            services.ingest_url,
            services.api_url,
            ingest_key=tenant.ingest_key,
            api_key=tenant.api_key,
            webhook_secret=tenant.webhook_secret,
        ),
        DemoOptions(tenant=tenant.slug, end=END, **SMALL),
        settings=services.stack.settings(),
        console=Console(file=out, width=120),
    )
    await wait_folded(engine, tenant.slug, len(events), FOLD_TIMEOUT_S)
    return LoadedDemo(tenant, org, events, summary, out.getvalue())


@pytest.fixture
async def api(services: Services, loaded: LoadedDemo) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the session's api with the loaded demo tenant's key. Like `loaded`, for the files
    tests/conftest.py keeps on one xdist worker (DEMO_ORGANISATION), so the demo is loaded once."""
    headers = {"Authorization": f"Bearer {loaded.tenant.api_key}"}
    async with httpx.AsyncClient(base_url=services.api_url, headers=headers, timeout=30) as client:
        yield client


async def get(api: httpx.AsyncClient, path: str, **params: str) -> dict[str, Any]:
    """The body of a 200 answer to GET `path`."""
    response = await api.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
