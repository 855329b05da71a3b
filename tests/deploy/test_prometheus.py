"""A real Prometheus scrapes the three services while traffic flows, then evaluates every expression
of the pipeline-health dashboard and of alerts.yml through its HTTP API."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Services
from tests.deploy import grafana, traffic
from tests.deploy.prom import PrometheusServer, config_for, poll
from tests.deploy.tooling import ALERTS, DASHBOARDS, require_binary
from tests.factories import TenantCtx, TenantFactory

RATE_INTERVAL = "1m"

# Every panel of the pipeline-health dashboard, each of which must return series once traffic flowed.
WITH_DATA = frozenset(
    {
        "Services up",
        "Ingest requests/s by route and status",
        "Ingest events/s by source and outcome",
        "Ingest rejected requests/s by reason",
        "Auth and signature failures/s by source",
        "Ingest 5xx and 503 share",
        "Produce latency (until the broker acknowledged) by source",
        "Ingest request latency p99 by route",
        "Aggregator events folded and duplicates skipped/s",
        "Malformed and dead-lettered messages/s",
        "Batch size (messages per commit)",
        "Batch commit latency",
        "Consumer lag per partition",
        "Freshness: ingest to rollups",
        "Events folded later than 60 s",
        "Seconds since the last commit",
        "Partitions, rebalances and Postgres retries",
        "API latency p99 by route",
        "API requests/s by route and status",
        "API rollup read latency p99 by query",
    }
)
# ... except these targets: the dead-letter counter arrives with the dead-letter queue.
MAY_BE_EMPTY = frozenset({("Malformed and dead-lettered messages/s", "B")})
NOT_YET_EXPORTED = frozenset({"salesloop_aggregator_dead_letters_total"})
METRIC = re.compile(r"\b(salesloop_\w+|process_\w+|up)\b")

# Proof that rates were taken over live traffic, not over counters that stood still.
LIVE = (
    'sum(rate(salesloop_ingest_events_accepted_total{source="api"}[1m])) > 0',
    'sum(rate(salesloop_ingest_auth_failures_total{source="api"}[1m])) > 0',
    'sum(rate(salesloop_ingest_events_rejected_total{reason="invalid"}[1m])) > 0',
    "sum(rate(salesloop_aggregator_events_folded_total[1m])) > 0",
    "sum(rate(salesloop_api_rollup_read_seconds_count[1m])) > 0",
)


@pytest.fixture(scope="module")
def prometheus(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    binary = require_binary("prometheus")
    config = config_for(
        {"ingest": services.ingest_url, "api": services.api_url, "aggregator": services.aggregator_url}
    )
    server = PrometheusServer(binary, tmp_path_factory.mktemp("prometheus"), config)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


async def one_round(
    ingest: httpx.AsyncClient, api: httpx.AsyncClient, t: TenantCtx, n: int, sent: list[str]
) -> None:
    """Accepted events, one invalid batch, one bad key, rep reads: each panel's counters move."""
    at = datetime.now(UTC) - timedelta(hours=1)
    events = [traffic.call(f"p{n}-{i}", at, f"rep-{i}", connected=i % 2 == 0) for i in range(10)]
    await traffic.post_events(ingest, t, events)
    sent += [e["event_id"] for e in events]
    bad = {"events": [{**events[0], "type": "call.teleported"}]}
    r = await ingest.post(f"/v1/events/{t.slug}", json=bad, headers=traffic.bearer(t.ingest_key))
    assert r.status_code == 422, r.text
    r = await ingest.post(f"/v1/events/{t.slug}", json=events[0], headers=traffic.bearer("sl_wrong"))
    assert r.status_code == 401, r.text
    for path in ("/v1/reps/rep-0/metrics", "/v1/teams/none/metrics", "/v1/reps/rep-0"):
        r = await api.get(path, headers=traffic.bearer(t.api_key))
        assert r.status_code in (200, 404), r.text


async def test_every_dashboard_and_alert_expression_evaluates_against_live_metrics(
    prometheus: PrometheusServer, services: Services, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    t = await tenants.create(prefix="prom")
    sent: list[str] = []
    async with (
        httpx.AsyncClient(base_url=services.ingest_url, timeout=10) as ingest,
        httpx.AsyncClient(base_url=services.api_url, timeout=10) as api,
        httpx.AsyncClient(timeout=10) as prom,
    ):
        targets = await poll("all three services scraped", lambda: _all_up(prometheus, prom))
        assert sorted(targets) == ["aggregator", "api", "ingest"]

        rounds = itertools.count()

        async def live() -> bool | None:
            await one_round(ingest, api, t, next(rounds), sent)
            results = [await prometheus.query(prom, expr) for expr in LIVE]
            return True if all(results) else None

        await poll("rates over live traffic", live, timeout_s=30)
        await traffic.wait_folded(engine, t.slug, len(sent))

        board = grafana.load(DASHBOARDS / "pipeline-health.json")
        titles = {p["title"] for p in grafana.panels(board)}
        assert titles == WITH_DATA, "classify new or renamed panels in WITH_DATA"
        empty = []
        for target in grafana.targets(board):
            result = await prometheus.query(prom, grafana.expand_promql(target.query, RATE_INTERVAL))
            if not result and (target.panel, target.ref_id) not in MAY_BE_EMPTY:
                empty.append(target.name)
        assert empty == [], f"dashboard queries without data: {empty}"

        for rule in alert_rules():
            await prometheus.query(prom, rule["expr"])  # raises on any parse or evaluation error
            for name in set(METRIC.findall(rule["expr"])) - NOT_YET_EXPORTED:
                series = await prometheus.api(prom, "series", **{"match[]": name})
                assert series, f"{rule['alert']}: no service exports {name}"
        await poll("every alert rule evaluated without error", lambda: _rules_healthy(prometheus, prom))


async def _all_up(prometheus: PrometheusServer, client: httpx.AsyncClient) -> list[str] | None:
    data = await prometheus.api(client, "targets")
    active = data["activeTargets"]
    if len(active) == 3 and all(tg["health"] == "up" for tg in active):
        return [str(tg["labels"]["job"]) for tg in active]
    return None


async def _rules_healthy(prometheus: PrometheusServer, client: httpx.AsyncClient) -> bool | None:
    groups = (await prometheus.api(client, "rules"))["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
    errors = [f"{r['name']}: {r['lastError']}" for r in rules if r.get("lastError")]
    assert errors == [], errors
    evaluated = all(not r.get("lastEvaluation", "").startswith("0001-") for r in rules)
    return True if evaluated and all(r["health"] == "ok" for r in rules) else None
