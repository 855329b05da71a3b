"""`salesloop aggregator`: one member of the consumer group that folds events into the rollups.

Postgres is the truth for offsets (SPEC 7, STYLE 5): on assignment the consumer seeks to the offsets
stored with the rollups, each batch commits archive rows, rollups and next offsets in one transaction,
and the Kafka commit afterwards only serves lag tools. A batch that Postgres refuses is retried, never
skipped; if its partitions are taken away meanwhile it is dropped, and whoever owns them next starts
from the stored offsets, so nothing is lost and nothing counted twice.

A message that cannot be folded is dead-lettered (dlq.py) within its batch and never retried. Once a
partition's log is seen to restart below the stored offset (a broker that lost its log, rewind.py),
every owned partition is read again from its new beginning.

The loop is pipelined, one batch deep: while a batch commits, the next one is fetched and decoded.
Batches still commit one at a time and in order, and a batch is only committed after the one before
it: if that one is abandoned, the next is dropped too and read again from the stored offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from services.aggregator import metrics as m
from services.aggregator import rewind
from services.aggregator.batch import Batch, Records, prepare
from services.aggregator.commit import BatchResult, commit_batch
from services.aggregator.dlq import DeadLetter, DeadLetters, DeadLetterUnpublished, Message
from services.aggregator.store import APPLICATION_NAME, DB_ERRORS, Store
from services.core.kafka import new_consumer
from services.core.settings import Settings
from services.core.wire import Event

log = logging.getLogger(__name__)

T = TypeVar("T")

# Postgres retries: one connection attempt every 2 s at worst costs nothing and recovers quickly.
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 2.0
KAFKA_COMMIT_TIMEOUT_S = 5.0
LEAVE_TIMEOUT_S = 10.0

# What a committed batch leaves for the loop: its next offsets, the partitions it found rewound, and
# the generation it was fetched in.
Committed = tuple[dict[int, int], list[TopicPartition], int]


class Aggregator(ConsumerRebalanceListener):  # type: ignore[misc]
    """The consume -> fold -> commit loop and its rebalance listener.

    A generation counter, bumped by every revocation and assignment, marks fetched records as stale:
    after a rebalance every owned partition is paused until it has been moved to its stored offset.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.events_topic
        self.started = False
        self.store: Store | None = None
        self.dead_letters: DeadLetters | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()  # interrupts retry back-off: stop or revocation
        self._lock = asyncio.Lock()  # held while a batch is in flight
        self._generation = 0
        self._revoking = False
        self._pending: set[TopicPartition] = set()  # assigned, paused, not yet at the stored offset
        self._next: dict[TopicPartition, int] = {}
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
        self._revoking = True
        self._wake.set()
        try:
            async with self._lock:  # the batch in flight commits or is abandoned first
                self._generation += 1
                self._pending.clear()
                for tp in revoked:
                    self._next.pop(tp, None)
                    with contextlib.suppress(KeyError):
                        m.LAG.remove(str(tp.partition))
                m.ASSIGNED.set(0)
        finally:
            self._revoking = False
            if not self.stopping:
                self._wake.clear()
        if revoked:
            log.info("partitions revoked", extra={"partitions": sorted(tp.partition for tp in revoked)})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        async with self._lock:
            self._generation += 1
            self._pending = set(assigned)
            if assigned and self._consumer is not None:
                self._consumer.pause(*assigned)
            m.REBALANCES.inc()
            m.ASSIGNED.set(len(assigned))
        log.info("partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned)})

    # -- the loop --

    async def _step(self, consumer: AIOKafkaConsumer) -> None:
        if self._pending:
            await self._settle(consumer)
            await self._seek_pending(consumer)
            return
        generation = self._generation
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
            self._report_lag(consumer)
            await self._restart_lost_logs(consumer, generation, [])  # empty fetches show a shrunk log
            return
        self._inflight = asyncio.create_task(self._commit(batch, generation))

    async def _commit(self, batch: Batch, generation: int) -> Committed | None:
        async with self._lock:
            if generation != self._generation:
                return None  # fetched before a rebalance: positions were reset, these come again
            rewound = self._notice_rewound(batch.records)
            committed = await self._fold(batch)
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
        self._report_lag(consumer)
        await self._commit_kafka(consumer, committed)
        await self._restart_lost_logs(consumer, generation, rewound)
        return True

    async def _seek_pending(self, consumer: AIOKafkaConsumer) -> None:
        """Move freshly assigned partitions to the offsets stored in Postgres, then resume them."""
        assert self.store is not None
        generation, tps = self._generation, set(self._pending)
        store = self.store
        stored = await self._retry(
            "load offsets", lambda: store.load_offsets(tp.partition for tp in tps), generation
        )
        if stored is None:
            return
        missing = [tp for tp in tps if tp.partition not in stored]
        try:
            beginning = await consumer.beginning_offsets(missing) if missing else {}
        except KafkaError as exc:
            log.warning("could not read the partitions' first offsets", extra={"error": repr(exc)})
            await self._pause(1.0)
            return
        async with self._lock:
            if generation != self._generation:
                return
            for tp in tps:
                offset = stored[tp.partition] if tp.partition in stored else beginning[tp]
                consumer.seek(tp, offset)
                self._next[tp] = offset
            consumer.resume(*tps)
            self._pending.clear()
        log.info(
            "resuming from stored offsets",
            extra={"offsets": {str(tp.partition): self._next.get(tp) for tp in sorted(tps)}},
        )

    async def _fold(self, batch: Batch) -> dict[int, int] | None:
        """Dedupe and commit one batch. Returns its next offsets, or None if abandoned."""
        assert self.store is not None
        assert self.dead_letters is not None
        letters, offsets, updates, messages = batch.letters, batch.offsets, batch.updates, batch.messages
        store, dead_letters = self.store, self.dead_letters
        events = await self._set_aside(batch.decoded, letters)

        async def commit(events: list[Event]) -> tuple[float, BatchResult, Counter[str]]:
            started = time.perf_counter()
            recorded = Counter[str]()

            async def record(conn: asyncpg.Connection) -> None:
                recorded.update(await dead_letters.record(letters, conn))

            result = await commit_batch(store, events, offsets, updates, record if letters else None)
            return time.perf_counter() - started, result, recorded

        outcome = None
        if events is not None:
            outcome = await self._retry("commit batch", lambda: commit(events), self._generation)
        if outcome is None:
            log.warning("batch abandoned before commit; it will be read again", extra={"messages": messages})
            return None
        elapsed, result, recorded = outcome
        for reason, n in recorded.items():
            m.DEAD_LETTERS.labels(reason).inc(n)
        now = datetime.now(UTC)
        m.BATCH_SIZE.observe(messages)
        m.COMMIT_SECONDS.observe(elapsed)
        m.EVENTS_FOLDED.inc(len(result.folded))
        m.DUPLICATES.inc(result.duplicates)
        m.LAST_COMMIT.set(time.time())
        for e in result.folded:
            m.FRESHNESS.observe((now - e.received_at).total_seconds())
        for tp in batch.records:
            if tp.partition in offsets:
                self._next[tp] = offsets[tp.partition]
        log.debug("batch committed", extra={"messages": messages, "folded": len(result.folded)})
        return offsets

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
            if self.stopping or self._revoking or generation != self._generation:
                return None
            await self._pause(delay)
            if self.stopping or self._revoking or generation != self._generation:
                return None
            delay = min(delay * 2, RETRY_MAX_S)

    async def _commit_kafka(self, consumer: AIOKafkaConsumer, offsets: dict[int, int]) -> None:
        """Best effort, for lag tools only: Postgres holds the offsets that count."""
        owned = consumer.assignment()
        commit = {tp: n for p, n in offsets.items() if (tp := TopicPartition(self.topic, p)) in owned}
        if not commit:
            return
        try:
            await asyncio.wait_for(consumer.commit(commit), KAFKA_COMMIT_TIMEOUT_S)
        except (KafkaError, TimeoutError) as exc:
            log.debug("kafka offset commit skipped", extra={"error": repr(exc)})

    def _report_lag(self, consumer: AIOKafkaConsumer) -> None:
        # The broker's ListOffsets can under-report the log end; fetch high watermarks do not.
        for tp in consumer.assignment():
            highwater, position = consumer.highwater(tp), self._next.get(tp)
            if highwater is not None and position is not None:
                m.LAG.labels(str(tp.partition)).set(max(highwater - position, 0))

    # -- dead letters --

    async def _set_aside(
        self, decoded: list[tuple[Message, Event]], letters: list[DeadLetter]
    ) -> list[Event] | None:
        """The batch's events to fold. Those of unknown tenants or in a foreign currency join `letters`,
        which are then published to the DLQ topic. None: abandoned (stopping or partitions revoked)."""
        assert self.dead_letters is not None
        dead_letters, generation = self.dead_letters, self._generation
        events: list[Event] = []
        if decoded:
            screened = await self._retry("look up tenants", lambda: dead_letters.screen(decoded), generation)
            if screened is None:
                return None
            events, refused = screened
            letters.extend(refused)
        if letters:
            published = await self._retry(
                "publish dead letters", lambda: dead_letters.publish(letters), generation
            )
            if published is None:
                return None
            for letter in letters:
                _skip(letter)
        return events

    # -- logs that restarted below the stored offsets (rewind.py) --

    def _notice_rewound(self, records: Records) -> list[TopicPartition]:
        found = rewind.rewound(records, self._next)
        for tp, expected, first in found:
            rewind.restarted(tp, expected, first)
        return [tp for tp, _, _ in found]

    async def _restart_lost_logs(
        self, consumer: AIOKafkaConsumer, generation: int, rewound: list[TopicPartition]
    ) -> None:
        """Once one partition's log restarted, read every other owned partition from its beginning too."""
        if not rewound and not rewind.shrunk(consumer.assignment(), consumer.highwater, self._next):
            return
        restart = [tp for tp in consumer.assignment() if tp not in rewound]
        try:
            beginning = await consumer.beginning_offsets(restart)
        except KafkaError as exc:
            log.warning("could not read the partitions' first offsets", extra={"error": repr(exc)})
            return
        async with self._lock:
            if generation != self._generation:
                return
            for tp in restart:
                expected = self._next.get(tp)
                if expected is not None and expected != beginning[tp] and tp in consumer.assignment():
                    rewind.restarted(tp, expected, beginning[tp])
                    consumer.seek(tp, beginning[tp])
                    self._next[tp] = beginning[tp]

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)


def _skip(letter: DeadLetter) -> None:
    m.MALFORMED.labels(letter.reason).inc()
    log.warning(
        "skipping malformed message",
        extra={
            "reason": letter.reason,
            "detail": letter.detail,
            "tenant": letter.tenant,
            "event_id": letter.event_id,
            "partition": letter.partition,
            "offset": letter.offset,
        },
    )
