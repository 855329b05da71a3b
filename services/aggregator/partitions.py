"""Partition bookkeeping of one aggregator: which partitions it owns, where each one stands, and
moving them to the offsets Postgres holds.

Postgres is the truth for offsets (SPEC 7, STYLE 5): on assignment every partition is paused until it
has been moved to the offset stored with the rollups; the Kafka commit after each batch only serves
lag tools. A generation counter, bumped by every revocation and assignment, marks fetched records as
stale: a batch fetched before a rebalance is dropped, and whoever owns its partitions next starts
from the stored offsets.

Once a partition's log is seen to restart below our position (a broker that lost its log,
rewind.py), every owned partition is read again from its new beginning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from services.aggregator import metrics as m
from services.aggregator import rewind
from services.aggregator.batch import Records

log = logging.getLogger("services.aggregator.consumer")  # one logger for the loop and what it delegates to

KAFKA_COMMIT_TIMEOUT_S = 5.0

LoadOffsets = Callable[[set[TopicPartition]], Awaitable[dict[int, int] | None]]


class Partitions:
    """Owned partitions, their next offsets, and the generation fetched records belong to.

    `lock` is held while a batch is in flight and while the rebalance listener changes ownership, so
    a batch either commits before its partitions are taken away or is abandoned.
    """

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.lock = asyncio.Lock()
        self.generation = 0
        self.revoking = False
        self.pending: set[TopicPartition] = set()  # assigned, paused, not yet at the stored offset
        self.next: dict[TopicPartition, int] = {}

    # -- rebalances (under `lock`) --

    def revoke(self, revoked: Iterable[TopicPartition]) -> None:
        self.generation += 1
        self.pending.clear()
        for tp in revoked:
            self.next.pop(tp, None)
            with contextlib.suppress(KeyError):
                m.LAG.remove(str(tp.partition))
        m.ASSIGNED.set(0)

    def assign(self, assigned: set[TopicPartition], consumer: AIOKafkaConsumer | None) -> None:
        self.generation += 1
        self.pending = set(assigned)
        if assigned and consumer is not None:
            consumer.pause(*assigned)
        m.REBALANCES.inc()
        m.ASSIGNED.set(len(assigned))

    # -- moving to the stored offsets --

    async def seek_pending(self, consumer: AIOKafkaConsumer, load_offsets: LoadOffsets) -> bool:
        """Move freshly assigned partitions to the offsets stored in Postgres, then resume them.
        False when it could not (yet): the loop pauses and tries again."""
        generation, tps = self.generation, set(self.pending)
        stored = await load_offsets(tps)
        if stored is None:
            return True  # given up on: stopping, or the partitions are being taken away
        missing = [tp for tp in tps if tp.partition not in stored]
        try:
            beginning = await consumer.beginning_offsets(missing) if missing else {}
        except KafkaError as exc:
            log.warning("could not read the partitions' first offsets", extra={"error": repr(exc)})
            return False
        async with self.lock:
            if generation != self.generation:
                return True
            for tp in tps:
                offset = stored[tp.partition] if tp.partition in stored else beginning[tp]
                consumer.seek(tp, offset)
                self.next[tp] = offset
            consumer.resume(*tps)
            self.pending.clear()
        log.info(
            "resuming from stored offsets",
            extra={"offsets": {str(tp.partition): self.next.get(tp) for tp in sorted(tps)}},
        )
        return True

    def advance(self, records: Records, offsets: Mapping[int, int]) -> None:
        """A batch of `records` committed with these next offsets."""
        for tp in records:
            if tp.partition in offsets:
                self.next[tp] = offsets[tp.partition]

    async def commit_kafka(self, consumer: AIOKafkaConsumer, offsets: Mapping[int, int]) -> None:
        """Best effort, for lag tools only: Postgres holds the offsets that count."""
        owned = consumer.assignment()
        commit = {tp: n for p, n in offsets.items() if (tp := TopicPartition(self.topic, p)) in owned}
        if not commit:
            return
        try:
            await asyncio.wait_for(consumer.commit(commit), KAFKA_COMMIT_TIMEOUT_S)
        except (KafkaError, TimeoutError) as exc:
            log.debug("kafka offset commit skipped", extra={"error": repr(exc)})

    def report_lag(self, consumer: AIOKafkaConsumer) -> None:
        # The broker's ListOffsets can under-report the log end; fetch high watermarks do not.
        for tp in consumer.assignment():
            highwater, position = consumer.highwater(tp), self.next.get(tp)
            if highwater is not None and position is not None:
                m.LAG.labels(str(tp.partition)).set(max(highwater - position, 0))

    # -- logs that restarted below the stored offsets (rewind.py) --

    def notice_rewound(self, records: Records) -> list[TopicPartition]:
        found = rewind.rewound(records, self.next)
        for tp, expected, first in found:
            rewind.restarted(tp, expected, first)
        return [tp for tp, _, _ in found]

    async def restart_lost_logs(
        self, consumer: AIOKafkaConsumer, generation: int, rewound: list[TopicPartition]
    ) -> None:
        """Once one partition's log restarted, read every other owned partition from its beginning too."""
        if not rewound and not rewind.shrunk(consumer.assignment(), consumer.highwater, self.next):
            return
        restart = [tp for tp in consumer.assignment() if tp not in rewound]
        try:
            beginning = await consumer.beginning_offsets(restart)
        except KafkaError as exc:
            log.warning("could not read the partitions' first offsets", extra={"error": repr(exc)})
            return
        async with self.lock:
            if generation != self.generation:
                return
            for tp in restart:
                expected = self.next.get(tp)
                if expected is not None and expected != beginning[tp] and tp in consumer.assignment():
                    rewind.restarted(tp, expected, beginning[tp])
                    consumer.seek(tp, beginning[tp])
                    self.next[tp] = beginning[tp]
