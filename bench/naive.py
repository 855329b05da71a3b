"""The naive peer: how a first consumer is usually written. Run in its own process by bench.peers.

Both variants read the aggregator's topic with their own consumer group, run one Postgres
transaction per poll (<= 500 messages) with single-row statements per message, and commit the
Kafka offsets after it. They fold with services.aggregator.fold in the rep's timezone (looked up
once per rep and cached) into copies of the real rollup tables.

  same_job      the aggregator's job: each message is inserted into a copy of the archive
                (`naive_events`: same columns, jsonb payload, same indexes) with ON CONFLICT
                (tenant, event_id) DO NOTHING RETURNING; only an event it did not have yet is
                folded, by one upsert into each rollup copy. The poll's next offsets are upserted
                into a copy of `consumer_offsets`, one row per partition, in the same transaction.
  rollups_only  only the two rollup upserts per message: no archive, no dedupe (redeliveries
                are counted twice), no offsets in Postgres.

Neither keeps the aggregator's feedback state (leads, deal facts) or registers unknown reps.

stdin: JSON {bootstrap, topic, group, dsn, seconds, expected, mode};
stdout: JSON {messages, folded, seconds}: `folded` are the events counted in the rollups.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from aiokafka import AIOKafkaConsumer

from services.aggregator.fold import fold
from services.core.models import CHANNEL_COUNTERS, REP_COUNTERS
from services.core.wire import Event, Malformed, decode

MODES = ("same_job", "rollups_only")
ARCHIVE_TABLE = "naive_events"
OFFSETS_TABLE = "naive_consumer_offsets"
REP_TABLE = "naive_rollup_rep_daily"
CHANNEL_TABLE = "naive_rollup_channel_daily"
POLL_MAX = 500


def upsert_one(table: str, keys: tuple[str, ...], counters: tuple[str, ...]) -> str:
    columns = keys + counters
    values = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    sets = ", ".join(f"{c} = r.{c} + EXCLUDED.{c}" for c in counters)
    return (
        f"INSERT INTO {table} AS r ({', '.join(columns)}) VALUES ({values}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
    )


UPSERT_REP = upsert_one(REP_TABLE, ("tenant", "rep_id", "day"), REP_COUNTERS)
UPSERT_CHANNEL = upsert_one(CHANNEL_TABLE, ("tenant", "channel", "day"), CHANNEL_COUNTERS)
ARCHIVE_ONE = f"""
INSERT INTO {ARCHIVE_TABLE}
  (tenant, event_id, type, occurred_at, received_at, source, rep_id, contact_id, payload)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
ON CONFLICT (tenant, event_id) DO NOTHING
RETURNING true
"""
SAVE_OFFSET = f"""
INSERT INTO {OFFSETS_TABLE} AS o (consumer_group, topic, partition, next_offset) VALUES ($1, $2, $3, $4)
ON CONFLICT (consumer_group, topic, partition) DO UPDATE
SET next_offset = EXCLUDED.next_offset, updated_at = now()
"""
# rep_id NULL asks for the tenant's own timezone, as the aggregator's fold does.
ZONE = """
SELECT coalesce(
  (SELECT timezone FROM reps WHERE tenant = $1 AND rep_id = $2),
  (SELECT timezone FROM tenants WHERE slug = $1),
  'UTC')
"""


def setup_sql() -> list[str]:
    """Fresh copies of the real archive, rollup and offsets tables (same columns, types, keys, indexes)."""
    tables = {
        ARCHIVE_TABLE: "events",
        OFFSETS_TABLE: "consumer_offsets",
        REP_TABLE: "rollup_rep_daily",
        CHANNEL_TABLE: "rollup_channel_daily",
    }
    # The archive is partitioned by month and keeps its dedupe key in `event_keys`; the way a first
    # consumer is usually written, the copy is one table whose primary key is the dedupe key.
    return [
        f"DROP TABLE IF EXISTS {', '.join(tables)}",
        *(f"CREATE TABLE {copy} (LIKE {real} INCLUDING ALL)" for copy, real in tables.items()),
        f"ALTER TABLE {ARCHIVE_TABLE} DROP CONSTRAINT {ARCHIVE_TABLE}_pkey,"
        " ADD PRIMARY KEY (tenant, event_id)",
    ]


def archive_row(e: Event) -> tuple[object, ...]:
    return (
        *(e.tenant, e.event_id, e.type, e.occurred_at, e.received_at),
        *(e.source, e.rep_id, e.contact_id, e.payload),
    )


class Zones:
    """The fold's timezone look-up, one query per rep (and per tenant) the first time it is seen."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._zones: dict[tuple[str, str | None], ZoneInfo] = {}

    async def load(self, e: Event) -> None:
        for key in ((e.tenant, e.rep_id), (e.tenant, None)):
            if key not in self._zones:
                self._zones[key] = ZoneInfo(await self._conn.fetchval(ZONE, *key))

    def __call__(self, tenant: str, rep_id: str | None) -> ZoneInfo:
        return self._zones[(tenant, rep_id)]


async def handle(
    conn: asyncpg.Connection, zones: Zones, mode: str, value: bytes | None, headers: Any
) -> bool:
    """Archives (same_job) and folds one message; False for a redelivery or a malformed message."""
    event = decode(value, headers)
    if isinstance(event, Malformed):
        return False
    if mode == "same_job" and await conn.fetchval(ARCHIVE_ONE, *archive_row(event)) is None:
        return False  # a redelivery: archived and counted before
    await zones.load(event)
    deltas = fold([event], zones)
    for row in deltas.rep_rows():
        await conn.execute(UPSERT_REP, *row)
    for row in deltas.channel_rows():
        await conn.execute(UPSERT_CHANNEL, *row)
    return True


async def run(spec: dict[str, object]) -> dict[str, float]:
    mode = str(spec["mode"])
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    conn = await asyncpg.connect(str(spec["dsn"]))
    consumer = AIOKafkaConsumer(
        str(spec["topic"]),
        bootstrap_servers=str(spec["bootstrap"]),
        group_id=str(spec["group"]),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    group, topic = str(spec["group"]), str(spec["topic"])
    seconds, expected = float(str(spec["seconds"])), int(str(spec["expected"]))
    zones = Zones(conn)
    messages = folded = 0
    started: float | None = None
    try:
        while messages < expected and (started is None or time.perf_counter() - started < seconds):
            batch = await consumer.getmany(timeout_ms=1000, max_records=POLL_MAX)
            if not batch:
                continue
            started = started or time.perf_counter()
            async with conn.transaction():
                for records in batch.values():
                    for msg in records:
                        messages += 1
                        folded += await handle(conn, zones, mode, msg.value, msg.headers)
                if mode == "same_job":
                    for tp, records in sorted(batch.items()):
                        await conn.execute(SAVE_OFFSET, group, topic, tp.partition, records[-1].offset + 1)
            await consumer.commit()
    finally:
        await consumer.stop()
        await conn.close()
    elapsed = time.perf_counter() - started if started is not None else 0.0
    return {"messages": messages, "folded": folded, "seconds": elapsed}


def main() -> None:
    import uvloop

    result = uvloop.run(run(json.load(sys.stdin)))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
