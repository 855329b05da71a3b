"""Pipeline gauges for Prometheus: per tenant, the stale deals and the amount slipped from the current
month, for the tenants an operator names in SALESLOOP_PIPELINE_METRICS_TENANTS (at most 20) and no
other.

Tenants are no label of any other metric of salesloop (tests/deploy/test_cardinality.py): a tenant
is exported here only by name, so the series stay as few as the operator chose. The numbers are
those of `GET /v1/pipeline/deals` (status=stale with stale_days 14, status=slipped of the current
month), recomputed by each api process every minute; several api processes export the same values,
so rules aggregate them with `max by (tenant)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from prometheus_client import Gauge

from services.api.kit.reads import Reads
from services.api.kit.snapshot import tenant_probe
from services.api.kit.windows import WindowSpec
from services.api.pipeline import answers, deal_queries, history
from services.api.pipeline.periods import current_month
from services.core.http import ApiError

log = logging.getLogger(__name__)

REFRESH_S = 60.0
STALE_DAYS = 14
HISTORY = WindowSpec(days=365)

STALE_DEALS = Gauge(
    "salesloop_api_pipeline_stale_deals",
    "Open deals over their stage's p90 or without activity for 14 days (SPEC 5.8), per named tenant",
    ["tenant"],
)
SLIPPED_AMOUNT = Gauge(
    "salesloop_api_pipeline_slipped_amount",
    "Amount of the deals slipped from the current month, in the tenant's currency, per named tenant",
    ["tenant"],
)
REFRESHED = Gauge(
    "salesloop_api_pipeline_gauges_refreshed_timestamp_seconds",
    "When this process last computed the pipeline gauges of every named tenant",
)


async def refresh(reads: Reads, tenants: Sequence[str], now: datetime) -> None:
    """Compute and set the gauges of `tenants`; a tenant that does not exist loses its series."""
    for tenant in tenants:
        probe = await tenant_probe(reads.pool, tenant, HISTORY, now)
        record = None if probe is None else await history.stage_history(reads.pool, tenant, probe.end, now)
        stale = None
        if record is not None:
            stale = await deal_queries.stale(
                reads.pool, tenant, HISTORY, now, record.stages, stale_days=STALE_DAYS, rep_id=None,
                team=None, limit=1,
            )  # fmt: skip
        if stale is None:
            log.warning("no such tenant for the pipeline gauges", extra={"tenant": tenant})
            with contextlib.suppress(KeyError):
                STALE_DEALS.remove(tenant)
                SLIPPED_AMOUNT.remove(tenant)
            continue
        seen, count, _, _ = stale
        month = current_month(seen.end + timedelta(days=1))  # the window ends yesterday, locally
        found = await deal_queries.slipped(reads.pool, tenant, month.spec, now, None, None)
        slipped = answers.slipped_deals(found[1] if found else (), month.first, month.last)
        STALE_DEALS.labels(tenant).set(count)
        SLIPPED_AMOUNT.labels(tenant).set(float(sum(r.amount or answers.ZERO for r in slipped)))
    REFRESHED.set(now.timestamp())


async def keep_fresh(reads: Reads, tenants: Sequence[str], every_s: float = REFRESH_S) -> None:
    """Refresh the gauges every `every_s` until cancelled; a database outage waits for the next turn."""
    while True:
        try:
            await refresh(reads, tenants, datetime.now(UTC))
        except ApiError:
            log.warning("pipeline gauges not refreshed: the database is unavailable")
        await asyncio.sleep(every_s)


def start(reads: Reads, tenants: Sequence[str]) -> asyncio.Task[None] | None:
    """The refresh task of the api's lifespan; None when no tenant is named."""
    if not tenants:
        return None
    return asyncio.create_task(keep_fresh(reads, tenants), name="pipeline-gauges")
