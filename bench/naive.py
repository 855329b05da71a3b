"""The naive peer: how a first consumer is usually written. Run in its own process by bench.peers.

Same topic, same decode, same fold definitions and same rollup tables (copies of the real ones), but
one single-row upsert per event into each rollup, one Postgres transaction per poll (<= 500 messages)
and a Kafka offset commit after it. No archive and no dedupe, so it also counts redeliveries twice:
the comparison flatters it.

stdin: JSON {bootstrap, topic, group, dsn, seconds, expected}; stdout: JSON {events, seconds}.
"""

from __future__ import annotations

import json
import sys
import time
from zoneinfo import ZoneInfo

import asyncpg
from aiokafka import AIOKafkaConsumer

from services.aggregator.decode import Malformed, decode
from services.aggregator.fold import fold
from services.core.models import CHANNEL_COUNTERS, REP_COUNTERS

REP_TABLE = "naive_rollup_rep_daily"
CHANNEL_TABLE = "naive_rollup_channel_daily"
POLL_MAX = 500
UTC = ZoneInfo("UTC")


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


def setup_sql() -> list[str]:
    """Fresh copies of the real rollup tables (same columns, types and keys)."""
    return [
        f"DROP TABLE IF EXISTS {REP_TABLE}, {CHANNEL_TABLE}",
        f"CREATE TABLE {REP_TABLE} (LIKE rollup_rep_daily INCLUDING ALL)",
        f"CREATE TABLE {CHANNEL_TABLE} (LIKE rollup_channel_daily INCLUDING ALL)",
    ]


async def run(spec: dict[str, object]) -> dict[str, float]:
    conn = await asyncpg.connect(str(spec["dsn"]))
    consumer = AIOKafkaConsumer(
        str(spec["topic"]),
        bootstrap_servers=str(spec["bootstrap"]),
        group_id=str(spec["group"]),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seconds, expected = float(str(spec["seconds"])), int(str(spec["expected"]))
    done = 0
    started: float | None = None
    try:
        while done < expected and (started is None or time.perf_counter() - started < seconds):
            batch = await consumer.getmany(timeout_ms=1000, max_records=POLL_MAX)
            if not batch:
                continue
            started = started or time.perf_counter()
            async with conn.transaction():
                for messages in batch.values():
                    for msg in messages:
                        event = decode(msg.value, msg.headers)
                        if isinstance(event, Malformed):
                            continue
                        deltas = fold([event], lambda _tenant, _rep: UTC)
                        for row in deltas.rep_rows():
                            await conn.execute(UPSERT_REP, *row)
                        for row in deltas.channel_rows():
                            await conn.execute(UPSERT_CHANNEL, *row)
                        done += 1
            await consumer.commit()
    finally:
        await consumer.stop()
        await conn.close()
    elapsed = time.perf_counter() - started if started is not None else 0.0
    return {"events": done, "seconds": elapsed}


def main() -> None:
    import uvloop

    result = uvloop.run(run(json.load(sys.stdin)))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
