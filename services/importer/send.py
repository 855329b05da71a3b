"""Producing the import's events: straight to the events topic, in whole record batches, a bounded
number of them in flight.

The import is an operator command, not a client of the ingest service: it sends with the producer
ingest uses (services.core.kafka: `acks=all`, idempotent where the broker allows, the events' key,
partitioner and `schema` header), so it neither spends the tenant's ingest rate limit nor competes
with live webhooks for ingest's request slots. Exactly once rests, as for every event, on the
aggregator's archive (one row per tenant and event id).

Unlike ingest, which sends a request's few events one by one, the import fills one record batch per
partition itself and hands each to the producer whole (aiokafka's `create_batch` / `send_batch`):
the producer's per-message bookkeeping (a future and a coroutine per event) cost five times the CPU
of the rest of sending, on a machine where the aggregator folding the import needs that CPU too. At
most `window` sends of a chunk's batches wait for the broker's acknowledgement at any time, so a
large import paces itself to what the broker takes.
"""

from __future__ import annotations

import asyncio
import functools
import struct
import time
from collections.abc import Sequence
from datetime import datetime

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.producer.message_accumulator import BatchBuilder

from services.core.events import SCHEMA_HEADER, CheckedEvent, RepAlias, Source, kafka_key, to_message
from services.core.kafka import BrokerUnavailable, EventProducer
from services.core.settings import Settings

WINDOW = 4  # chunks of the import (run.CHUNK_ROWS rows) unacknowledged at once
CONNECT_TIMEOUT_S = 15.0
ACK_TIMEOUT_S = 60.0
_HEADERS = [SCHEMA_HEADER]
_M, _MASK = 0x5BD1E995, 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """aiokafka's `murmur2` (the Java client's, which services.core.kafka.KeyPartitioner partitions
    by), reading the key four bytes at a time: the same hash at a third of the CPU. An import's keys
    are mostly contacts, each new to the partitioner's memo."""
    length = len(data)
    h = 0x9747B28C ^ length
    end = length & ~3
    for (k,) in struct.iter_unpack("<I", data[:end]):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    rest = length & 3
    if rest >= 3:
        h ^= data[end + 2] << 16
    if rest >= 2:
        h ^= data[end + 1] << 8
    if rest >= 1:
        h = ((h ^ data[end]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


class Records:
    """The Kafka records (key, value) of an import's checked events, as `kafka_key` and `to_message`
    write them.

    What `to_message` adds to an event (tenant, source, received_at, rep_alias) is the same for every
    event of an import but for its source and rep alias: it is written once per source and alias, by
    `to_message` itself, and appended to each event's own JSON. A checked event is never empty and never
    holds those fields (the wire check refuses them), so the bytes are `to_message`'s.
    """

    def __init__(self, tenant: str, received_at: datetime) -> None:
        self._tenant = tenant
        self._received_at = received_at
        self._tails: dict[tuple[Source, str | None, str | None], bytes] = {}

    def record(self, event: CheckedEvent, source: Source, rep_alias: RepAlias | None) -> tuple[bytes, bytes]:
        alias = (source, rep_alias.kind, rep_alias.value) if rep_alias is not None else (source, None, None)
        tail = self._tails.get(alias)
        if tail is None:
            empty = CheckedEvent({}, None, None)
            tail = self._tails[alias] = (
                b"," + to_message(empty, self._tenant, source, self._received_at, rep_alias)[1:]
            )
        value = orjson.dumps(event.body)[:-1] + tail
        return kafka_key(self._tenant, event.rep_id, event.contact_id), value


class BatchProducer(EventProducer):
    """The services' producer, sending whole record batches, one per partition and chunk."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        # KeyPartitioner's choice: murmur2 of the key, its positive half modulo the partitions.
        self._hash = functools.lru_cache(maxsize=65_536)(lambda key: murmur2(key) & 0x7FFFFFFF)

    async def send_batches(self, records: Sequence[tuple[bytes, bytes]], timeout_s: float) -> None:
        """Produce every (key, value) on its key's partition; return once the broker acknowledged all."""
        producer = self._producer
        if producer is None:
            raise BrokerUnavailable("not connected to the broker")
        topic = self._settings.events_topic

        async def produce() -> None:
            batches = self._batches(producer, await self._partitions(producer, topic), records)
            await asyncio.gather(*[await self._enqueue(producer, topic, p, b) for p, b in batches])

        try:
            await asyncio.wait_for(produce(), timeout_s)
        except (TimeoutError, KafkaError) as exc:
            raise BrokerUnavailable(f"broker did not acknowledge: {exc!r}") from exc

    @staticmethod
    async def _partitions(producer: AIOKafkaProducer, topic: str) -> list[int]:
        partitions = producer.client.cluster.partitions_for_topic(topic)
        if not partitions:
            await producer.client.force_metadata_update()
            partitions = producer.client.cluster.partitions_for_topic(topic)
        if not partitions:
            raise BrokerUnavailable(f"the broker knows no partitions of {topic!r}")
        return sorted(partitions)

    def _batches(
        self, producer: AIOKafkaProducer, partitions: list[int], records: Sequence[tuple[bytes, bytes]]
    ) -> list[tuple[int, BatchBuilder]]:
        """The records as closed batches, (partition, batch): one per partition unless it fills up."""
        out: list[tuple[int, BatchBuilder]] = []
        open_: dict[int, BatchBuilder] = {}
        for key, value in records:
            partition = partitions[self._hash(key) % len(partitions)]
            batch = open_.get(partition)
            if batch is None:
                batch = open_[partition] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None, headers=_HEADERS) is None:
                # Full (the producer's max_batch_size): that one is done, the partition starts another.
                out.append((partition, batch))
                batch = open_[partition] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None, headers=_HEADERS)
        out.extend(open_.items())
        for _, batch in out:
            batch.close()
        return out

    @staticmethod
    async def _enqueue(
        producer: AIOKafkaProducer, topic: str, partition: int, batch: BatchBuilder
    ) -> asyncio.Future[object]:
        """Queue one batch; the future of its acknowledgement. The producer holds one batch per
        partition until it is on its way and gives up waiting for that after its request timeout:
        here that wait is the import pacing itself, so it waits on (within send_batches' deadline)."""
        while True:
            try:
                future: asyncio.Future[object] = await producer.send_batch(batch, topic, partition=partition)
                return future
            except KafkaTimeoutError:
                continue


class Sender:
    def __init__(self, settings: Settings, *, window: int = WINDOW) -> None:
        self._producer = BatchProducer(settings)
        self._slots = asyncio.Semaphore(window)
        self._pending: set[asyncio.Task[None]] = set()
        self._error: BaseException | None = None

    async def start(self, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        """Connect; BrokerUnavailable when the broker does not answer within `timeout_s`."""
        await self._producer.start()
        deadline = time.monotonic() + timeout_s
        while not await self._producer.ready():
            if time.monotonic() > deadline:
                await self._producer.stop()
                raise BrokerUnavailable(f"the broker did not answer within {timeout_s:.0f}s")
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        for task in self._pending:
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        await self._producer.stop()

    async def send(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Queue `records` (one chunk of the import); waits while `window` chunks are unacknowledged."""
        self._raise_failure()
        if not records:
            return
        await self._slots.acquire()
        task = asyncio.create_task(self._send(records))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        """Wait until the broker acknowledged everything sent; BrokerUnavailable if it did not."""
        await asyncio.gather(*self._pending, return_exceptions=True)
        self._raise_failure()

    async def _send(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        try:
            await self._producer.send_batches(records, ACK_TIMEOUT_S)
        except BrokerUnavailable as exc:
            self._error = self._error or exc
        finally:
            self._slots.release()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise BrokerUnavailable(f"the broker stopped acknowledging: {self._error}")
