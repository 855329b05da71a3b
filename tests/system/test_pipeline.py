"""End to end through real processes: webhooks in, metrics out, every event counted exactly once."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Services
from tests.factories import TenantCtx, TenantFactory
from tests.support import events_folded, wait_folded
from tests.system.reference import Org, assert_metrics_equal, make_events, rep_metrics, utc

ORG = Org(
    reps={
        "r1": "America/New_York",
        "r2": "Europe/Berlin",
        "r3": "Asia/Tokyo",
        "r4": "UTC",
        "r5": "America/New_York",
    },
    teams={"r1": "east", "r2": "east", "r3": "apac", "r4": "apac", "r5": "east"},
    quotas={"r1": Decimal(50000), "r2": Decimal(40000), "r3": Decimal(60000)},
)


async def register_reps(api: httpx.AsyncClient, t: TenantCtx) -> None:
    for rep, tz in ORG.reps.items():
        body: dict[str, Any] = {
            "name": rep.upper(),
            "team": ORG.teams[rep],
            "timezone": tz,
            "hired_at": "2026-01-05",
        }
        if rep in ORG.quotas:
            body["quota_monthly"] = str(ORG.quotas[rep])
        r = await api.put(f"/v1/reps/{rep}", json=body, headers={"Authorization": f"Bearer {t.api_key}"})
        assert r.status_code in (200, 201), r.text


async def post_all(ingest: httpx.AsyncClient, t: TenantCtx, events: list[dict[str, Any]], seed: int) -> None:
    """Batches and singles, with ~20 % of events delivered again, some of them concurrently."""
    rnd = random.Random(seed)
    deliveries = list(events) + rnd.sample(events, len(events) // 5)
    deliveries += rnd.sample(events, 50)  # these go out twice at the same moment below
    rnd.shuffle(deliveries)
    headers = {"Authorization": f"Bearer {t.ingest_key}"}
    requests: list[Any] = []
    i = 0
    while i < len(deliveries):
        size = rnd.choice([1, 1, 10, 50, 200])
        chunk = deliveries[i : i + size]
        requests.append(chunk[0] if size == 1 else {"events": chunk})
        i += size
    sem = asyncio.Semaphore(16)

    async def send(body: Any) -> None:
        async with sem:
            r = await ingest.post(f"/v1/events/{t.slug}", json=body, headers=headers)
            assert r.status_code == 202, r.text
            assert r.json()["accepted"] == (len(body["events"]) if "events" in body else 1)

    twins = [{"events": rnd.sample(events, 20)} for _ in range(5)]
    await asyncio.gather(*(send(b) for b in requests + twins + twins))


@asynccontextmanager
async def posted_and_folded(
    services: Services, engine: AsyncEngine, t: TenantCtx, events: list[dict[str, Any]], seed: int
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Clients of ingest and the API, once ORG's reps are registered and `events` posted (with
    redeliveries, `post_all`) and folded."""
    async with (
        httpx.AsyncClient(base_url=services.ingest_url, timeout=30) as ingest,
        httpx.AsyncClient(base_url=services.api_url, timeout=30) as api,
    ):
        await register_reps(api, t)
        await post_all(ingest, t, events, seed=seed)
        await wait_folded(engine, t.slug, len(events))
        yield ingest, api


async def test_metrics_equal_an_independent_computation(
    services: Services, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    t = await tenants.create(timezone="America/New_York")
    start = utc(2026, 9, 1)
    events = make_events(3000, ORG, start, days=60, seed=11)
    async with posted_and_folded(services, engine, t, events, seed=12) as (_, api):
        auth = {"Authorization": f"Bearer {t.api_key}"}
        windows = [(date(2026, 9, 1), date(2026, 10, 30)), (date(2026, 9, 10), date(2026, 9, 24))]
        for frm, to in windows:
            for rep in ORG.reps:
                r = await api.get(
                    f"/v1/reps/{rep}/metrics", params={"from": str(frm), "to": str(to)}, headers=auth
                )
                assert r.status_code == 200, r.text
                body = r.json()
                assert (body["rep_id"], body["from"], body["to"]) == (rep, str(frm), str(to))
                assert body["as_of"] is not None
                assert_metrics_equal(body["metrics"], rep_metrics(events, {rep}, ORG, frm, to))
            for team in sorted(set(ORG.teams.values())):
                members = {r for r, tm in ORG.teams.items() if tm == team}
                r = await api.get(
                    f"/v1/teams/{team}/metrics", params={"from": str(frm), "to": str(to)}, headers=auth
                )
                assert r.status_code == 200, r.text
                assert sorted(r.json()["reps"]) == sorted(members)
                assert_metrics_equal(r.json()["metrics"], rep_metrics(events, members, ORG, frm, to))


async def test_rejected_input_leaves_every_number_untouched(
    services: Services, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    t = await tenants.create()
    other = await tenants.create()
    events = make_events(300, ORG, utc(2026, 10, 1), days=20, seed=21)
    frm, to = date(2026, 10, 1), date(2026, 10, 21)
    async with posted_and_folded(services, engine, t, events, seed=22) as (ingest, api):
        auth = {"Authorization": f"Bearer {t.api_key}"}
        params = {"from": str(frm), "to": str(to)}
        before = (await api.get("/v1/teams/east/metrics", params=params, headers=auth)).json()["metrics"]

        good = {
            "event_id": "ok-1",
            "type": "email.sent",
            "occurred_at": "2026-10-05T10:00:00Z",
            "rep_id": "r1",
        }
        key = {"Authorization": f"Bearer {t.ingest_key}"}
        bad_requests: list[tuple[dict[str, Any], dict[str, str], int]] = [
            ({**good, "type": "email.exploded"}, key, 422),
            ({**good, "occurred_at": "2026-10-05T10:00:00"}, key, 422),
            ({**good, "currency": "EUR"}, key, 422),
            ({**good, "tenant": "someone-else"}, key, 422),
            ({"events": [good, {**good, "event_id": ""}]}, key, 422),
            (good, {"Authorization": f"Bearer {other.ingest_key}"}, 401),
            (good, {"Authorization": "Bearer sl_000000000000_nope"}, 401),
            (good, {}, 401),
        ]
        for body, headers, status in bad_requests:
            r = await ingest.post(f"/v1/events/{t.slug}", json=body, headers=headers)
            assert r.status_code == status, (body, r.text)
            assert r.json()["error"]["code"]
        r = await ingest.post(
            f"/v1/events/{t.slug}", content=b"{not json", headers={**key, "content-type": "application/json"}
        )
        assert r.status_code == 400

        # A sentinel after the bad requests: once it is folded, everything before it has been too.
        r = await ingest.post(f"/v1/events/{t.slug}", json=good, headers=key)
        assert r.status_code == 202
        await wait_folded(engine, t.slug, len(events) + 1)
        after = (await api.get("/v1/teams/east/metrics", params=params, headers=auth)).json()["metrics"]
        assert after["emails_sent"] == before["emails_sent"] + 1
        over_sends = ("emails_sent", "reply_rate", "open_rate", "click_rate", "bounce_rate")
        assert {k: v for k, v in after.items() if k not in over_sends} == {
            k: v for k, v in before.items() if k not in over_sends
        }
        assert await events_folded(engine, other.slug) == 0
