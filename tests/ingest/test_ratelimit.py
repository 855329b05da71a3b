"""Per-tenant rate limits on ingest: a token bucket over events, 429 with Retry-After, nothing accepted."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from devstack.embedded import ServiceProcess, free_port
from services.core.http import ApiError
from services.ingest.app import create_app
from services.ingest.ratelimit import RateLimiter, TokenBucket
from tests.conftest import Stack
from tests.factories import TenantCtx, TenantFactory
from tests.ingest.harness import Topic, one_partition_topic, served
from tests.ingest.test_events import EVENT, signed

RATE, BURST = 100.0, 200


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def events(n: int, prefix: str) -> dict[str, Any]:
    return {"events": [{**EVENT, "event_id": f"{prefix}-{i}"} for i in range(n)]}


# ---------------------------------------------------------------------------------------------- the bucket


def test_the_bucket_admits_a_burst_then_refills_at_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    assert bucket.take(20, 0.0) == 0.0
    assert bucket.take(1, 0.0) == pytest.approx(0.1)
    assert bucket.take(5, 0.3) == pytest.approx(0.2)  # 3 tokens, 5 wanted: 0.2 s more
    assert bucket.take(5, 0.5) == 0.0
    assert bucket.take(30, 100.0) == 0.0  # full (20) and larger than the burst: admitted, in debt
    assert bucket.tokens == pytest.approx(-10)
    assert bucket.take(1, 100.0) == pytest.approx(1.1)
    assert bucket.take(20, 103.0) == 0.0  # capped at the burst again


def test_events_are_counted_not_requests() -> None:
    clock = Clock()
    limiter = RateLimiter(RATE, BURST, clock)
    limiter.admit("a", 150, "api")
    limiter.admit("a", 50, "api")
    with pytest.raises(ApiError) as refused:
        limiter.admit("a", 1, "api")
    assert refused.value.status == 429
    limiter.admit("b", BURST, "api")  # every tenant has its own bucket
    clock.now += 0.5
    limiter.admit("a", 50, "api")
    assert RateLimiter(0, 1, clock).enabled is False


# ---------------------------------------------------------------------------------------------- the route


@dataclass
class Harness:
    app: FastAPI
    client: httpx.AsyncClient
    clock: Clock
    topic: Topic
    t: TenantCtx
    other: TenantCtx

    async def post(self, body: Any, t: TenantCtx | None = None, **kw: Any) -> httpx.Response:
        t = t or self.t
        headers = {"content-type": "application/json", "Authorization": f"Bearer {t.ingest_key}"}
        return await self.client.post(
            f"/v1/events/{t.slug}", content=orjson.dumps(body), headers=headers, **kw
        )

    async def produced(self) -> dict[str, int]:
        """Events per tenant on the topic, read up to a sentinel posted now by the other tenant."""
        sentinel = f"sentinel-{secrets.token_hex(4)}"
        self.clock.now += 60  # every bucket full again
        assert (await self.post({**EVENT, "event_id": sentinel}, self.other)).status_code == 202
        counts: dict[str, int] = {}
        for rec in (await self.topic.read_until(sentinel))[:-1]:
            tenant = orjson.loads(rec.value)["tenant"]
            counts[tenant] = counts.get(tenant, 0) + 1
        return counts


@pytest.fixture
async def limited(stack: Stack, tenants: TenantFactory) -> AsyncIterator[Harness]:
    async with one_partition_topic(stack, "ratelimit") as topic:
        app = create_app(topic.settings)
        clock = Clock()
        app.state.rate_limiter = RateLimiter(RATE, BURST, clock)
        async with served(app) as client:
            yield Harness(app, client, clock, topic, await tenants.create(), await tenants.create())


async def test_over_the_limit_answers_429_with_retry_after_and_accepts_nothing(limited: Harness) -> None:
    assert (await limited.post(events(150, "a"))).status_code == 202
    assert (await limited.post(events(50, "b"))).status_code == 202
    r = await limited.post(events(10, "c"))
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"
    error = r.json()["error"]
    assert error["code"] == "rate_limited"
    assert "100 events per second" in error["message"]
    # A signed webhook delivery of the same tenant draws on the same bucket.
    body = orjson.dumps(events(1, "s"))
    r = await limited.client.post(
        f"/v1/events/{limited.t.slug}", content=body, headers=signed(limited.t.webhook_secret, body)
    )
    assert r.status_code == 429

    limited.clock.now += 0.5  # 50 tokens back
    assert (await limited.post(events(51, "d"))).status_code == 429
    r = await limited.post(events(50, "e"))
    assert (r.status_code, r.json()) == (202, {"accepted": 50})
    assert (await limited.post(events(BURST, "x"), limited.other)).status_code == 202  # its own bucket
    assert await limited.produced() == {limited.t.slug: 250, limited.other.slug: BURST}


async def test_a_tenant_in_debt_is_refused_before_its_body_is_read(limited: Harness) -> None:
    limited.clock.now += 10
    assert (await limited.post(events(BURST + 100, "big"))).status_code == 202  # over the burst: in debt
    never = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield b'{"event_id": "slow", '
        await never.wait()  # the body never completes: only a refusal before reading it can answer
        yield b"}"

    headers = {"content-type": "application/json", "Authorization": f"Bearer {limited.t.ingest_key}"}
    r = await asyncio.wait_for(
        limited.client.post(f"/v1/events/{limited.t.slug}", content=stalls(), headers=headers), 5
    )
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) == 2  # 100 tokens of debt plus the one wanted, at 100/s


async def test_the_limit_comes_from_the_settings_of_the_running_service(
    stack: Stack, tenants: TenantFactory
) -> None:
    t = await tenants.create()
    port = free_port()
    env = {**stack.env, "SALESLOOP_RATE_LIMIT_EVENTS_PER_S": "5", "SALESLOOP_RATE_LIMIT_BURST": "20"}
    ingest = ServiceProcess(
        "ingest-limited",
        ["ingest", "--port", str(port)],
        env,
        f"http://127.0.0.1:{port}/healthz",
        stack.root / f"ingest-limited-{port}.log",
    )
    ingest.start()
    try:
        headers = {"Authorization": f"Bearer {t.ingest_key}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
            assert (await client.post(f"/v1/events/{t.slug}", json=events(20, "a"))).status_code == 202
            r = await client.post(f"/v1/events/{t.slug}", json=events(5, "b"))
            assert r.status_code == 429
            wait = int(r.headers["retry-after"])
            assert wait == 1
            # After Retry-After the same request goes through.
            deadline = time.monotonic() + wait + 5
            while (r := await client.post(f"/v1/events/{t.slug}", json=events(5, "b"))).status_code == 429:
                assert time.monotonic() < deadline, "still limited long after Retry-After"
                await asyncio.sleep(0.2)
            assert r.status_code == 202
    finally:
        ingest.stop()
