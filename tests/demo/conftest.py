"""One small demo organisation, loaded once through the real services and folded, for the API tests."""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from rich.console import Console
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.models import TenantWatermark
from services.demo import Summary, load_async, model, simulate
from services.demo.model import Organisation
from services.demo.simulate import DemoEvent
from tests.conftest import Services
from tests.factories import TenantCtx, TenantFactory

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
    return org, simulate.events(org)


@pytest.fixture(scope="session")
async def loaded(
    services: Services, tenants: TenantFactory, engine: AsyncEngine, small_org: SmallOrg
) -> LoadedDemo:
    org, events = small_org
    tenant = await tenants.create(prefix="demo")
    out = io.StringIO()
    summary = await load_async(
        services.ingest_url,
        services.api_url,
        tenant=tenant.slug,
        ingest_key=tenant.ingest_key,
        api_key=tenant.api_key,
        webhook_secret=tenant.webhook_secret,
        settings=services.stack.settings(),
        end=END,
        console=Console(file=out, width=120),
        **SMALL,
    )
    await wait_folded(engine, tenant.slug, len(events))
    return LoadedDemo(tenant, org, events, summary, out.getvalue())


async def wait_folded(engine: AsyncEngine, tenant: str, expected: int) -> None:
    deadline = time.monotonic() + FOLD_TIMEOUT_S
    folded = 0
    while time.monotonic() < deadline:
        query = select(TenantWatermark.events_folded).where(TenantWatermark.tenant == tenant)
        async with engine.connect() as conn:
            folded = (await conn.execute(query)).scalar() or 0
        if folded >= expected:
            assert folded == expected, f"{folded} events folded, more than the {expected} sent"
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"only {folded} of {expected} events folded after {FOLD_TIMEOUT_S:.0f} s")
