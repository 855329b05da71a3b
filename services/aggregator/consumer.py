"""`salesloop aggregator`: one member of the consumer group that folds events into the rollups.

The loop polls, decodes (batch.py) and hands each batch over to be committed (checkpoint.py, whose
transaction's steps are numbered in commit.py); it only delegates. Which partitions it owns and where
each stands is partitions.py: on assignment they are moved to the offsets stored in Postgres, which
are the truth (SPEC 7, STYLE 5). A batch that Postgres refuses is retried, never skipped; if its
partitions are taken away meanwhile it is dropped, and whoever owns them next starts from the stored
offsets, so nothing is lost and nothing counted twice.

The loop is pipelined, one batch deep: while a batch commits, the next one is fetched and decoded.
Batches still commit one at a time and in order, and a batch is only committed after the one before
it: if that one is abandoned, the next is dropped too and read again from the stored offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from services.aggregator import metrics as m
from services.aggregator.batch import Batch, Records, prepare
from services.aggregator.checkpoint import Checkpoint, Retry
from services.aggregator.dlq import DeadLetters, DeadLetterUnpublished
from services.aggregator.partitions import Partitions
from services.aggregator.store import APPLICATION_NAME, DB_ERRORS, Store
from services.core.kafka import new_consumer
from services.core.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Postgres retries: one connection attempt every 2 s at worst costs nothing and recovers quickly.
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 2.0
LEAVE_TIMEOUT_S = 10.0

# What a committed batch leaves for the loop: its next offsets, the partitions it found rewound, and
# the generation it was fetched in.
Committed = tuple[dict[int, int], list[TopicPartition], int]


class Aggregator(ConsumerRebalanceListener):  # type: ignore[misc]
    """The consume -> fold -> commit loop and its rebalance listener."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.events_topic
        self.started = False
        self.store: Store | None = None
        self.dead_letters: DeadLetters | None = None
        self.partitions = Partitions(self.topic)
        self._checkpoint: Checkpoint | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()  # interrupts retry back-off: stop or revocation
        self._inflight: asyncio.Task[Committed | None] | None = None  # the batch committing now

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def wait_stopping(self) -> None:
        await self._stop.wait()

    async def ready(self) -> bool:
        return self.started and self.store is not None and await self.store.ping()

    async def run(self) -> None:
        self.store = await Store.open(self.settings)
        self.dead_letters = await DeadLetters.open(self.settings, APPLICATION_NAME)
        self._checkpoint = Checkpoint(self.store, self.dead_letters)
        try:
            consumer = await self._start_consumer()
            if consumer is None:
                return
            try:
                while not self.stopping:
                    await self._step(consumer)
            finally:
                self.started = False
                await self._settle(consumer)
                await self._leave(consumer)
        finally:
            await self.dead_letters.close()
            await self.store.close()
            log.info("aggregator stopped")

    async def _start_consumer(self) -> AIOKafkaConsumer | None:
        delay = RETRY_FIRST_S
        while not self.stopping:
            consumer = new_consumer(self.settings)
            consumer.subscribe([self.topic], listener=self)
            self._consumer = consumer
            try:
                await consumer.start()
            except (KafkaError, OSError) as exc:
                await consumer.stop()
                log.warning("broker not reachable", extra={"error": repr(exc), "retry_in_s": delay})
                await self._pause(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self.started = True
            log.info("consumer started", extra={"topic": self.topic, "group": self.settings.consumer_group})
            return consumer
        return None

    async def _leave(self, consumer: AIOKafkaConsumer) -> None:
        """Leave the group so the others take over at once. Bounded: a rebalance in progress (waiting for
        a member that died) would otherwise hold the exit; the broker then expires this member instead."""
        try:
            await asyncio.wait_for(consumer.stop(), LEAVE_TIMEOUT_S)
        except TimeoutError:
            log.warning("could not leave the consumer group in time; the broker will expire this member")

    # -- rebalance listener (called from the group coordinator's task) --

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.partitions.revoking = True
        self._wake.set()
        try:
            async with self.partitions.lock:  # the batch in flight commits or is abandoned first
                self.partitions.revoke(revoked)
        finally:
            self.partitions.revoking = False
            if not self.stopping:
                self._wake.clear()
        if revoked:
            log.info("partitions revoked", extra={"partitions": sorted(tp.partition for tp in revoked)})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        async with self.partitions.lock:
            self.partitions.assign(assigned, self._consumer)
        log.info("partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned)})

    # -- the loop --

    async def _step(self, consumer: AIOKafkaConsumer) -> None:
        partitions = self.partitions
        if partitions.pending:
            await self._settle(consumer)
            if not await partitions.seek_pending(consumer, self._load_offsets):
                await self._pause(1.0)
            return
        generation = partitions.generation
        try:
            records: Records = await consumer.getmany(
                timeout_ms=self.settings.batch_wait_ms, max_records=self.settings.batch_max_events
            )
        except KafkaError as exc:
            log.warning("fetch failed", extra={"error": repr(exc)})
            await self._pause(1.0)
            return
        batch = await prepare(records) if records else None  # while the batch before commits
        if not await self._settle(consumer):
            return  # the batch before was abandoned; this one lies beyond it and comes again
        if batch is None:
            partitions.report_lag(consumer)
            await partitions.restart_lost_logs(consumer, generation, [])  # empty fetches show a shrunk log
            return
        self._inflight = asyncio.create_task(self._commit(batch, generation))

    async def _commit(self, batch: Batch, generation: int) -> Committed | None:
        assert self._checkpoint is not None
        partitions = self.partitions
        async with partitions.lock:
            if generation != partitions.generation:
                return None  # fetched before a rebalance: positions were reset, these come again
            rewound = partitions.notice_rewound(batch.records)
            committed = await self._checkpoint.commit(batch, self._retry_for(generation))
            if committed is not None:
                partitions.advance(batch.records, committed)
        return None if committed is None else (committed, rewound, generation)

    async def _settle(self, consumer: AIOKafkaConsumer) -> bool:
        """Wait for the batch in flight. False if it was abandoned rather than committed."""
        task, self._inflight = self._inflight, None
        if task is None:
            return True
        outcome = await task
        if outcome is None:
            return False
        committed, rewound, generation = outcome
        self.partitions.report_lag(consumer)
        await self.partitions.commit_kafka(consumer, committed)
        await self.partitions.restart_lost_logs(consumer, generation, rewound)
        return True

    async def _load_offsets(self, tps: set[TopicPartition]) -> dict[int, int] | None:
        assert self.store is not None
        store = self.store
        retry = self._retry_for(self.partitions.generation)
        return await retry("load offsets", lambda: store.load_offsets(tp.partition for tp in tps))

    # -- retries --

    def _retry_for(self, generation: int) -> Retry:
        async def retry(what: str, attempt: Callable[[], Awaitable[T]]) -> T | None:
            return await self._retry(what, attempt, generation)

        return retry

    async def _retry(self, what: str, attempt: Callable[[], Awaitable[T]], generation: int) -> T | None:
        """Retry a Postgres (or dead-letter publishing) step with capped exponential back-off until it
        succeeds. Gives up (None) only when the process stops or the partitions are being taken away.
        """
        delay = RETRY_FIRST_S
        while True:
            try:
                return await attempt()
            except DB_ERRORS as exc:
                m.DB_RETRIES.inc()
                log.warning(
                    "postgres unavailable", extra={"step": what, "error": repr(exc), "retry_in_s": delay}
                )
            except DeadLetterUnpublished as exc:
                log.warning(
                    "broker unavailable", extra={"step": what, "error": str(exc), "retry_in_s": delay}
                )
            if self._abandon(generation):
                return None
            await self._pause(delay)
            if self._abandon(generation):
                return None
            delay = min(delay * 2, RETRY_MAX_S)

    def _abandon(self, generation: int) -> bool:
        return self.stopping or self.partitions.revoking or generation != self.partitions.generation

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
