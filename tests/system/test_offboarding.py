"""Offboarding end to end (docs/operations.md, "Offboarding a tenant"), through the real commands,
ingest, broker, aggregator and api:

- `tenants export` then `salesloop import jsonl` of its events.jsonl into a new tenant (reps set up
  again from reps.jsonl) gives the same metrics, team metrics and channel answers;
- `tenants delete` leaves no row of the tenant in any table of the catalog, another tenant's rows
  untouched; its backlog produced to the topic again folds nothing, and a tenant created again with
  the same slug counts only what it receives after its creation.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from services.cli import app
from services.core.crm import SCHEMA_HEADER as CRM_SCHEMA
from services.core.events import SCHEMA_HEADER, kafka_key
from services.core.offboarding_export import export_tenant
from services.core.tenancy import create_key, create_tenant
from tests.api.org import Org, organisation
from tests.conftest import Services, Stack
from tests.factories import TenantFactory
from tests.support import wait_folded
from tests.system.test_vendors import salesloop

DAY = datetime.now(UTC).replace(hour=15, minute=0, second=0, microsecond=0) - timedelta(days=3)
REPS = {"ana": "east", "bo": "east", "cy": "west"}
# Every table with a tenant column, found here independently of the command's own catalog query.
TENANT_TABLES = """
SELECT c.table_name, c.column_name FROM information_schema.columns c
JOIN information_schema.tables t USING (table_schema, table_name)
WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
  AND (c.column_name = 'tenant' OR (c.table_name = 'tenants' AND c.column_name = 'slug'))
"""
OTHER_TENANT_COLUMNS = """
SELECT table_name, column_name FROM information_schema.columns
WHERE table_schema = current_schema() AND column_name LIKE '%tenant%' AND column_name <> 'tenant'
"""


def history(o: Org) -> None:
    for i, rep in enumerate(REPS):
        for n in range(12 + 3 * i):
            at = DAY - timedelta(days=n % 9, minutes=n)
            outcome = "connected" if n % 3 else "no_answer"
            o.event(
                "call.completed", at, rep_id=rep, direction="outbound", outcome=outcome, duration_s=60 + n
            )
            o.event("email.sent", at, rep_id=rep, contact_id=f"{rep}-c{n}")
        o.event("lead.created", DAY, rep_id=rep, contact_id=f"{rep}-c1", channel="referral")
        o.event("meeting.held", DAY, rep_id=rep, contact_id=f"{rep}-c1", duration_s=1800)
        o.event("deal.created", DAY - timedelta(days=5), rep_id=rep, deal_id=f"{rep}-d", amount="1200.50")
        o.event("deal.won", DAY, rep_id=rep, deal_id=f"{rep}-d", amount="1200.50", contact_id=f"{rep}-c1")


async def answers(o: Org) -> dict[str, Any]:
    window = {"from": (DAY - timedelta(days=20)).date().isoformat(), "to": DAY.date().isoformat()}
    paths = [f"/v1/reps/{rep}/metrics" for rep in REPS] + ["/v1/teams/east/metrics", "/v1/demand/channels"]
    return {path: await o.get(path, **window) for path in paths}


async def rows_per_table(engine: AsyncEngine, slug: str) -> dict[str, int]:
    async with engine.connect() as conn:
        tables = (await conn.execute(text(TENANT_TABLES))).all()
        assert len(tables) > 20, tables
        # A tenant named in a column of another name would not be found by the deletion.
        assert (await conn.execute(text(OTHER_TENANT_COLUMNS))).all() == []
        return {
            name: int(
                (
                    await conn.execute(text(f'SELECT count(*) FROM "{name}" WHERE "{col}" = :s'), {"s": slug})
                ).scalar_one()
            )
            for name, col in tables
        }


async def rows_left(engine: AsyncEngine, slug: str) -> dict[str, int]:
    return {table: n for table, n in (await rows_per_table(engine, slug)).items() if n}


async def test_export_round_trips_and_delete_leaves_nothing(
    services: Services, tenants: TenantFactory, engine: AsyncEngine, tmp_path: Path
) -> None:
    stack = services.stack
    async with organisation(services, tenants, engine) as old, organisation(services, tenants, engine) as new:
        for rep, team in REPS.items():
            await old.rep(rep, team=team, hired_at="2026-01-05", quota_monthly=5000)
        history(old)
        sent = list(old.pending)
        await old.flush()

        await export_tenant(engine, old.tenant.slug, tmp_path / "x")
        manifest = orjson.loads((tmp_path / "x" / "manifest.json").read_bytes())
        files = {f["table"]: f for f in manifest["files"]}
        assert files["events"]["rows"] == len(sent)
        assert files["events"]["format"] == "buyer-event/1"
        assert files["reps"]["rows"] == len(REPS)
        assert "api_keys" not in files
        for line in (tmp_path / "x" / "reps.jsonl").read_bytes().splitlines():
            rep = orjson.loads(line)
            await new.rep(
                rep["rep_id"], team=rep["team"], hired_at=rep["hired_at"], quota_monthly=rep["quota_monthly"]
            )
        imported = await asyncio.to_thread(
            salesloop,
            stack,
            "import",
            "jsonl",
            str(tmp_path / "x" / "events.jsonl"),
            "--tenant",
            new.tenant.slug,
        )
        assert imported.returncode == 0, imported.stderr
        await wait_folded(engine, new.tenant.slug, len(sent))
        assert await answers(new) == await answers(old)

        await delete_and_replay(services, engine, old, sent, new.tenant.slug)


async def delete_and_replay(
    services: Services, engine: AsyncEngine, old: Org, sent: list[dict[str, Any]], other: str
) -> None:
    stack, slug = services.stack, old.tenant.slug
    before = await rows_per_table(engine, slug)
    assert before["events"] > 0
    assert before["api_keys"] == 2
    assert before["tenant_secrets"] == 1
    untouched = await rows_per_table(engine, other)

    refused = CliRunner().invoke(app, ["tenants", "delete", slug])
    assert refused.exit_code == 1
    assert "--yes" in refused.output
    deleted = await asyncio.to_thread(salesloop, stack, "tenants", "delete", slug, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert await rows_left(engine, slug) == {}
    assert await rows_per_table(engine, other) == untouched

    # The backlog again, as it was received before the deletion: nothing of it folds.
    received = datetime.now(UTC) - timedelta(minutes=5)
    backlog = [({**e, "tenant": slug, "source": "api"}, received) for e in sent]
    amount = {"entity": "deal", "entity_id": "ana-d", "property": "amount", "value": "99.5"}
    update = {**amount, "tenant": slug, "source": "hubspot", "update_id": "n1-amount"}
    backlog.append(({**update, "occurred_at": DAY.isoformat()}, received))
    await produce_and_wait(stack, engine, backlog)
    assert await rows_left(engine, slug) == {}

    # The slug again: its predecessor's backlog still folds nothing, its own events count.
    await create_tenant(engine, slug, "USD", "UTC")
    fresh = {"event_id": "after", "type": "call.completed", "occurred_at": DAY.isoformat(), "rep_id": "ana"}
    key = await create_key(engine, slug, ["ingest"])
    await produce_and_wait(stack, engine, backlog)
    r = await old.ingest.post(f"/v1/events/{slug}", json=fresh, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 202, r.text
    await wait_folded(engine, slug, 1)
    assert (await rows_per_table(engine, slug))["events"] == 1


async def produce_and_wait(
    stack: Stack, engine: AsyncEngine, events: list[tuple[dict[str, Any], datetime]]
) -> None:
    """Produce `events` to the events topic as ingest would, then wait until the aggregator's stored
    offsets are past every one of them."""
    settings = stack.settings()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        last: dict[int, int] = {}
        for event, received_at in events:
            value = orjson.dumps({**event, "received_at": received_at.isoformat()})
            if "update_id" in event:  # a CRM update
                key, schema = f"{event['tenant']}:{event['entity_id']}".encode(), CRM_SCHEMA
            else:
                key = kafka_key(event["tenant"], event.get("rep_id"), event.get("contact_id"))
                schema = SCHEMA_HEADER
            meta = await producer.send_and_wait(settings.events_topic, value, key=key, headers=[schema])
            last[meta.partition] = max(last.get(meta.partition, -1), meta.offset)
    finally:
        await producer.stop()
    deadline = time.monotonic() + 60
    query = text(
        "SELECT coalesce(max(next_offset), 0) FROM consumer_offsets WHERE topic = :t AND partition = :p"
    )
    for partition, offset in last.items():
        while True:
            async with engine.connect() as conn:
                stored = (
                    await conn.execute(query, {"t": settings.events_topic, "p": partition})
                ).scalar_one()
            if stored > offset:
                break
            assert time.monotonic() < deadline, f"partition {partition} not consumed past {offset}"
            await asyncio.sleep(0.1)
