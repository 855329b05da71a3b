"""One decoded batch on its way into Postgres, as the loop hands it over (consumer.py):

- before the transaction, the batch's dead letters are set aside: messages that did not decode
  (batch.py), and events of unknown tenants or in a foreign currency (dlq.screen); all of them are
  published to the DLQ topic (at least once);
- the transaction (commit.py, its steps numbered there) is retried on a lost or refused connection
  until it commits, never skipped; it records the dead letters with the batch;
- once committed: the batch's metrics.

Each of these gives up (None) only when the process stops or the batch's partitions are being taken
away: the batch is then abandoned, and read again from the stored offsets by whoever owns them next.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import asyncpg

from services.aggregator import metrics as m
from services.aggregator.batch import Batch
from services.aggregator.commit import BatchResult, commit_batch
from services.aggregator.dlq import DeadLetter, DeadLetters
from services.aggregator.store import Store
from services.core.wire import Event

log = logging.getLogger("services.aggregator.consumer")  # one logger for the loop and what it delegates to

T = TypeVar("T")


class Retry(Protocol):
    """Run `attempt` until it succeeds; None once the batch is to be abandoned (consumer.py)."""

    async def __call__(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T | None: ...


class Checkpoint:
    def __init__(self, store: Store, dead_letters: DeadLetters) -> None:
        self.store = store
        self.dead_letters = dead_letters

    async def commit(self, batch: Batch, retry: Retry) -> dict[int, int] | None:
        """Set aside the dead letters and commit the batch. Returns its next offsets, or None if
        abandoned."""
        events = await self._set_aside(batch, retry)
        outcome = None
        if events is not None:
            outcome = await retry("commit batch", lambda: self._transaction(batch, events))
        if outcome is None:
            log.warning(
                "batch abandoned before commit; it will be read again", extra={"messages": batch.messages}
            )
            return None
        elapsed, result, recorded = outcome
        _observe(batch, elapsed, result, recorded)
        log.debug("batch committed", extra={"messages": batch.messages, "folded": len(result.folded)})
        return batch.offsets

    async def _set_aside(self, batch: Batch, retry: Retry) -> list[Event] | None:
        """The batch's events to fold. Those of unknown tenants or in a foreign currency join the batch's
        letters, which are then published to the DLQ topic. None: abandoned."""
        dead_letters, letters = self.dead_letters, batch.letters
        events: list[Event] = []
        if batch.decoded:
            screened = await retry("look up tenants", lambda: dead_letters.screen(batch.decoded))
            if screened is None:
                return None
            events, refused = screened
            letters.extend(refused)
        if letters:
            published = await retry("publish dead letters", lambda: dead_letters.publish(letters))
            if published is None:
                return None
            for letter in letters:
                _skip(letter)
        return events

    async def _transaction(
        self, batch: Batch, events: list[Event]
    ) -> tuple[float, BatchResult, Counter[str]]:
        started = time.perf_counter()
        recorded = Counter[str]()
        letters = batch.letters

        async def record(conn: asyncpg.Connection) -> None:
            recorded.update(await self.dead_letters.record(letters, conn))

        result = await commit_batch(
            self.store, events, batch.offsets, batch.updates, record if letters else None
        )
        return time.perf_counter() - started, result, recorded


def _observe(batch: Batch, elapsed: float, result: BatchResult, recorded: Counter[str]) -> None:
    for reason, n in recorded.items():
        m.DEAD_LETTERS.labels(reason).inc(n)
    now = datetime.now(UTC)
    m.BATCH_SIZE.observe(batch.messages)
    m.COMMIT_SECONDS.observe(elapsed)
    m.EVENTS_FOLDED.inc(len(result.folded))
    m.DUPLICATES.inc(result.duplicates)
    m.LAST_COMMIT.set(time.time())
    for e in result.folded:
        m.FRESHNESS.observe((now - e.received_at).total_seconds())


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
