"""The broker goes away and comes back while ingest keeps running: bounded 503s, then 202s again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from devstack.embedded import EmbeddedBroker, free_port
from services.core.kafka import ensure_topics
from services.core.settings import Settings
from services.ingest.app import create_app
from tests.conftest import Stack
from tests.factories import TenantCtx, TenantFactory

PRODUCE_TIMEOUT_S = 1.5
EVENT = {"event_id": "outage-1", "type": "email.sent", "occurred_at": "2026-10-05T10:00:00Z", "rep_id": "r1"}


@pytest.fixture
async def broker(stack: Stack) -> AsyncIterator[EmbeddedBroker]:
    own = EmbeddedBroker(free_port(), log_path=stack.root / "outage-broker.log")
    await asyncio.to_thread(own.start)
    try:
        yield own
    finally:
        await asyncio.to_thread(own.stop)


def crash(broker: EmbeddedBroker) -> None:
    """SIGKILL, as in a real outage (and a graceful stop waits for connected clients)."""
    assert broker.proc is not None
    broker.proc.kill()
    broker.stop()  # reaps the process and closes its log


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"not true within {timeout_s} s"
        await asyncio.sleep(0.2)  # poll interval, bounded by the deadline above


async def test_broker_outage_answers_503_quickly_and_recovers_without_restart(
    stack: Stack, broker: EmbeddedBroker, tenants: TenantFactory
) -> None:
    settings: Settings = stack.settings(
        kafka_bootstrap=broker.bootstrap, topic_partitions=1, produce_timeout_s=PRODUCE_TIMEOUT_S
    )
    await ensure_topics(settings)
    t: TenantCtx = await tenants.create()
    headers = {"Authorization": f"Bearer {t.ingest_key}", "content-type": "application/json"}
    app = create_app(settings)

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://ingest", timeout=30) as client,
    ):

        async def post() -> httpx.Response:
            return await client.post(f"/v1/events/{t.slug}", json=EVENT, headers=headers)

        assert (await post()).status_code == 202
        assert (await client.get("/readyz")).status_code == 200

        crash(broker)
        started = time.monotonic()
        r = await post()
        elapsed = time.monotonic() - started
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "broker_unavailable"
        assert int(r.headers["Retry-After"]) > 0
        assert elapsed < PRODUCE_TIMEOUT_S + 1.0
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "not_ready"
        assert (await client.get("/healthz")).status_code == 200

        # The memory broker comes back empty: the topics have to be created again.
        await asyncio.to_thread(broker.start)
        await ensure_topics(settings)

        async def ready_again() -> bool:
            return (await client.get("/readyz")).status_code == 200

        async def accepted_again() -> bool:
            r = await post()
            assert r.status_code in (202, 503), r.text
            return r.status_code == 202

        await eventually(ready_again)
        await eventually(accepted_again)
