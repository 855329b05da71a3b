"""Kafka helpers: topic creation, the ingest producer, the aggregator consumer factory."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, UnknownError, UnsupportedVersionError
from aiokafka.partitioner import murmur2

from services.core.crm import SCHEMA_HEADER as CRM_SCHEMA_HEADER
from services.core.events import SCHEMA_HEADER
from services.core.settings import Settings

log = logging.getLogger(__name__)

EVENTS_RETENTION_MS = 7 * 24 * 3600 * 1000
DLQ_RETENTION_MS = 30 * 24 * 3600 * 1000


class BrokerUnavailable(Exception):
    """The broker did not acknowledge in time: nothing may be reported as accepted."""


async def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create the events and DLQ topics if missing. Returns the names it created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10_000)
    await asyncio.wait_for(admin.start(), timeout_s)
    try:
        existing = set(await admin.list_topics())
        # Configs are given explicitly: some brokers only describe configs that were set at creation.
        wanted = {
            settings.events_topic: EVENTS_RETENTION_MS,
            settings.dlq_topic: DLQ_RETENTION_MS,
        }
        new = [
            NewTopic(
                name,
                settings.topic_partitions,
                settings.topic_replication,
                topic_configs={"retention.ms": str(retention), "cleanup.policy": "delete"},
            )
            for name, retention in wanted.items()
            if name not in existing
        ]
        if new:
            await admin.create_topics(new)
        return [t.name for t in new]
    finally:
        await admin.close()


class KeyPartitioner:
    """aiokafka's default partitioning (murmur2 of the key, as the Java client does), with each key's hash
    remembered: the hash is pure Python, and a tenant's reps send under the same few keys again and again.
    """

    def __init__(self, max_keys: int = 65_536) -> None:
        self._hash = functools.lru_cache(maxsize=max_keys)(murmur2)

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return random.choice(available or all_partitions)
        index: int = self._hash(key) & 0x7FFFFFFF
        return all_partitions[index % len(all_partitions)]


class EventProducer:
    """An `acks=all` producer that never blocks a request beyond its timeout.

    Idempotence is enabled where the broker supports it. When the broker is unreachable at
    start-up, the service still starts (not ready) and the producer connects in the background.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self.idempotent = False

    def _new(self, idempotent: bool) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            acks="all",
            enable_idempotence=idempotent,
            partitioner=KeyPartitioner(),
            linger_ms=2,
            max_batch_size=512 * 1024,
            max_request_size=2 * 1024 * 1024,
            request_timeout_ms=int(self._settings.produce_timeout_s * 1000),
            retry_backoff_ms=100,
            client_id="salesloop-ingest",
        )

    async def _try_start(self) -> bool:
        for idempotent in (True, False):
            producer = self._new(idempotent)
            try:
                await producer.start()
            except (UnknownError, UnsupportedVersionError):
                await producer.stop()
                log.warning("broker does not support idempotent producers; continuing without")
                continue
            except (KafkaError, OSError) as exc:
                await producer.stop()
                log.warning("broker not reachable yet: %s", exc)
                return False
            self._producer, self.idempotent = producer, idempotent
            return True
        return False

    async def start(self) -> None:
        if not await self._try_start():
            self._connect_task = asyncio.create_task(self._keep_connecting())

    async def _keep_connecting(self) -> None:
        delay = 0.5
        while not await self._try_start():
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        log.info("connected to the broker")

    async def stop(self) -> None:
        if self._connect_task is not None:
            self._connect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connect_task
        if self._producer is not None:
            await self._producer.stop()

    async def send_all(
        self,
        records: Sequence[tuple[bytes, bytes]],
        timeout_s: float | None = None,
        *,
        updates: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        """Produce every (key, value) and wait until the broker acknowledged all of them.

        `records` are BuyerEvents; `updates` are CRM entity updates (their own schema header), sent
        and acknowledged together with the events of the same delivery.
        """
        producer = self._producer
        if producer is None:
            raise BrokerUnavailable("not connected to the broker")
        timeout = timeout_s if timeout_s is not None else self._settings.produce_timeout_s
        topic = self._settings.events_topic
        headers = [SCHEMA_HEADER]
        update_headers = [CRM_SCHEMA_HEADER]

        async def produce() -> None:
            futures = [await producer.send(topic, value, key=key, headers=headers) for key, value in records]
            for key, value in updates:
                futures.append(await producer.send(topic, value, key=key, headers=update_headers))
            await asyncio.gather(*futures)

        try:
            await asyncio.wait_for(produce(), timeout)
        except (TimeoutError, KafkaError) as exc:
            raise BrokerUnavailable(f"broker did not acknowledge: {exc!r}") from exc

    async def ready(self, timeout_s: float = 2.0) -> bool:
        producer = self._producer
        if producer is None:
            return False
        try:
            cluster = await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout_s)
        except (TimeoutError, KafkaError, OSError):
            return False
        return bool(cluster.partitions_for_topic(self._settings.events_topic))


def new_consumer(settings: Settings, *, group_id: str | None = None) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group_id or settings.consumer_group,
        client_id="salesloop-aggregator",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
        session_timeout_ms=settings.consumer_session_timeout_ms,
        heartbeat_interval_ms=min(1_000, settings.consumer_session_timeout_ms // 3),
        max_poll_interval_ms=300_000,
    )
