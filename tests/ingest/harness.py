"""What the in-process ingest tests share: a fresh one-partition events topic with a consumer on it,
reading what requests produced up to a sentinel event, an app served to an httpx client, and the
samples of its /metrics."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from services.core.kafka import ensure_topics
from services.core.settings import Settings
from tests.conftest import Stack

Record = ConsumerRecord[bytes, bytes]


@dataclass(frozen=True)
class Topic:
    name: str
    settings: Settings  # the stack's settings, producing to this topic
    consumer: AIOKafkaConsumer
    tp: TopicPartition

    async def read_until(
        self, sentinel: str, start: int | None = None, timeout_s: float = 10.0
    ) -> list[Record]:
        """The records from offset `start` (the beginning when None) up to the event whose id is
        `sentinel`, which is included last; AssertionError if it does not arrive within `timeout_s`."""
        if start is None:
            await self.consumer.seek_to_beginning(self.tp)
        else:
            self.consumer.seek(self.tp, start)
        out: list[Record] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for rec in (await self.consumer.getmany(self.tp, timeout_ms=200)).get(self.tp, []):
                out.append(rec)
                if rec.value is not None and orjson.loads(rec.value).get("event_id") == sentinel:
                    return out
        raise AssertionError(f"the sentinel did not arrive within {timeout_s} s")


@asynccontextmanager
async def one_partition_topic(stack: Stack, prefix: str, **settings: Any) -> AsyncIterator[Topic]:
    name = f"{prefix}-{secrets.token_hex(4)}"
    app_settings = stack.settings(events_topic=name, topic_partitions=1, **settings)
    await ensure_topics(app_settings)
    tp = TopicPartition(name, 0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.broker.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20
    )
    consumer.assign([tp])
    await consumer.start()
    try:
        yield Topic(name, app_settings, consumer, tp)
    finally:
        await consumer.stop()


@asynccontextmanager
async def served(app: FastAPI, base_url: str = "http://ingest") -> AsyncIterator[httpx.AsyncClient]:
    """`app`, its lifespan entered, behind an in-process client."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=base_url) as client,
    ):
        yield client


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples named `name` of a Prometheus exposition, by their sorted labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


async def metric(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    """The value of the sample `name` with exactly `labels` on the client's /metrics (0 when absent)."""
    text = (await client.get("/metrics")).text
    return samples(text, name).get(tuple(sorted(labels.items())), 0.0)
