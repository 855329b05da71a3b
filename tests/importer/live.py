"""What the importer's end-to-end tests do against the running stack: run `salesloop import`, count what
the events topic holds, receive HubSpot notifications by webhook, and wait until what a webhook sent
is folded."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.settings import DEV_SECRET_KEY
from services.core.tenancy import set_secret
from tests.conftest import Services, Stack
from tests.factories import TenantCtx
from tests.importer.support import SAMPLES
from tests.ingest.test_webhooks import Secrets, sign
from tests.system.test_vendors import hubspot_notification, salesloop

DANA_HS, EVE_HS = "58210455", "58210456"  # the reps' HubSpot owner ids


async def run_import(
    stack: Stack,
    t: TenantCtx,
    source: str,
    *files: str | Path,
    more: tuple[str, ...] = (),
    rep_map: Path | None = SAMPLES / "rep-map.csv",
) -> tuple[int, str]:
    """`salesloop import` of sample (or other) files, by default with the samples' rep map:
    (exit status, summary)."""
    paths = [str(f if isinstance(f, Path) else SAMPLES / f) for f in files]
    mapped = ("--rep-map", str(rep_map)) if rep_map is not None else ()
    args = ("import", source, *paths, "--tenant", t.slug, *mapped, *more)
    done = await asyncio.to_thread(salesloop, stack, *args)
    return done.returncode, " ".join(done.stderr.split())  # the summary, its table cells on one line


async def produced(stack: Stack) -> int:
    """How many messages the events topic holds: the sum of its partitions' end offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.broker.bootstrap)
    await consumer.start()
    try:
        topic = stack.settings().events_topic
        await consumer.topics()
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        await consumer.stop()


def notification(number: int, kind: str, record: str, when: str, **change: Any) -> dict[str, Any]:
    """One HubSpot webhook notification (`kind` e.g. `deal.creation`), `when` an ISO time."""
    return hubspot_notification(number, kind, int(record), datetime.fromisoformat(when), **change)


def change(number: int, record_kind: str, record: str, when: str, name: str, value: str) -> dict[str, Any]:
    kind = f"{record_kind}.propertyChange"
    return notification(number, kind, record, when, propertyName=name, propertyValue=value)


async def receive_hubspot(
    services: Services, engine: AsyncEngine, t: TenantCtx, notifications: Sequence[dict[str, Any]]
) -> None:
    """The notifications as HubSpot delivers them, signed with the tenant's app secret (set here)."""
    keys = Secrets()
    await set_secret(engine, DEV_SECRET_KEY, t.slug, "hubspot", keys.hubspot)
    d = sign("hubspot", orjson.dumps(list(notifications)), t.slug, keys, base=services.ingest_url)
    async with httpx.AsyncClient(base_url=services.ingest_url) as ingest:
        r = await ingest.post(d.path, content=d.body, headers=d.headers)
    assert r.status_code == 202, r.text


async def flush(services: Services, t: TenantCtx, keys: tuple[str, ...], tag: str) -> None:
    """One canonical event (`flush-{tag}-{key}`) on each Kafka key a webhook used (`-`: no rep or
    contact; a CRM update's key is its record's id); once they are folded, so is what the webhook sent
    before them on the same partition. They count for no rep and in no window the tests read."""
    events = [
        {"event_id": f"flush-{tag}-{key}", "type": "email.opened", "occurred_at": "2026-12-01T10:00:00Z",
         **({"contact_id": key} if key != "-" else {})}
        for key in keys
    ]  # fmt: skip
    async with httpx.AsyncClient(base_url=services.ingest_url) as ingest:
        r = await ingest.post(
            f"/v1/events/{t.slug}",
            json={"events": events},
            headers={"Authorization": f"Bearer {t.ingest_key}"},
        )
    assert r.status_code == 202, r.text
