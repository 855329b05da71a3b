"""Metric labels stay bounded: traffic from 500 reps adds no series per rep, event or tenant."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Services
from tests.deploy import traffic
from tests.factories import TenantFactory

REPS = 500
# "A few dozen": bounded families (lag by partition, rejections by reason) stay under this; one label
# carrying a rep or event id would put a family in the hundreds.
MAX_SERIES_PER_FAMILY = 48
# Request families are bounded by the route table instead: route templates x methods x the few
# statuses a route answers (the whole test session exercises many of them).
STATUSES_PER_ROUTE = 6


def bound(label_sets: set[tuple[tuple[str, str], ...]]) -> int:
    """Families labelled by route (request counts, latencies and their `_created` samples) scale with
    the route table; every other family has the flat bound."""
    routes = {dict(labels)["route"] for labels in label_sets if "route" in dict(labels)}
    if routes:
        return max(MAX_SERIES_PER_FAMILY, len(routes) * STATUSES_PER_ROUTE)
    return MAX_SERIES_PER_FAMILY


async def series(client: httpx.AsyncClient, url: str) -> dict[str, set[tuple[tuple[str, str], ...]]]:
    """Metric family -> its label sets (histogram buckets and quantiles folded into their series)."""
    r = await client.get(f"{url}/metrics")
    assert r.status_code == 200
    out: dict[str, set[tuple[tuple[str, str], ...]]] = defaultdict(set)
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k not in ("le", "quantile")))
            out[family.name].add(labels)
    return out


async def test_five_hundred_reps_add_no_series(
    services: Services, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    urls = {"ingest": services.ingest_url, "api": services.api_url, "aggregator": services.aggregator_url}
    t = await tenants.create(prefix="card")
    at = datetime.now(UTC) - timedelta(hours=2)
    events = [traffic.call(f"card-{i}", at, f"card-rep-{i}", connected=i % 3 == 0) for i in range(REPS)]
    async with (
        httpx.AsyncClient(base_url=services.ingest_url, timeout=10) as ingest,
        httpx.AsyncClient(base_url=services.api_url, timeout=10) as api,
        httpx.AsyncClient(timeout=10) as scraper,
    ):
        await traffic.post_events(ingest, t, events[:1])  # every family of the path exists first
        await traffic.wait_folded(engine, t.slug, 1)
        r = await api.get("/v1/reps/card-rep-0/metrics", headers=traffic.bearer(t.api_key))
        assert r.status_code == 200, r.text
        before = {name: await series(scraper, url) for name, url in urls.items()}

        await traffic.post_events(ingest, t, events[1:])
        await traffic.wait_folded(engine, t.slug, REPS)
        for i in range(0, REPS, 25):
            r = await api.get(f"/v1/reps/card-rep-{i}/metrics", headers=traffic.bearer(t.api_key))
            assert r.status_code == 200, r.text
        after = {name: await series(scraper, url) for name, url in urls.items()}

    identities = {t.slug, t.ingest_key, t.api_key} | {e["event_id"] for e in events}
    identities |= {str(e["rep_id"]) for e in events}
    for service, families in after.items():
        assert families, f"{service} exports no metrics"
        for name, label_sets in families.items():
            limit = bound(label_sets)
            assert len(label_sets) <= limit, f"{service} {name}: {len(label_sets)} series"
            values = {v for labels in label_sets for _, v in labels}
            leaked = sorted(values & identities)[:3]
            assert not leaked, f"{service} {name} has ids or tenants in labels: {leaked}"
            assert not any("card-rep-" in v or t.slug in v for v in values), f"{service} {name}: {values}"
            grown = len(label_sets) - len(before[service].get(name, set()))
            assert grown <= 2, f"{service} {name} gained {grown} series from more reps of one tenant"
