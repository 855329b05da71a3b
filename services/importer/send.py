"""Producing the import's events: straight to the events topic, a bounded number of batches in flight.

The import is an operator command, not a client of the ingest service: it sends with the producer
ingest uses (services.core.kafka: `acks=all`, idempotent where the broker allows, the events' key and
`schema` header), so it neither spends the tenant's ingest rate limit nor competes with live
webhooks for ingest's request slots. At most `window` batches of `batch` events wait for the
broker's acknowledgement at any time, so a large import paces itself to what the broker takes.
Exactly once rests, as for every event, on the aggregator's archive (one row per tenant and event id).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from services.core.kafka import BrokerUnavailable, EventProducer
from services.core.settings import Settings

BATCH = 1_000
WINDOW = 8
CONNECT_TIMEOUT_S = 15.0
ACK_TIMEOUT_S = 60.0


class Sender:
    def __init__(self, settings: Settings, *, batch: int = BATCH, window: int = WINDOW) -> None:
        self._producer = EventProducer(settings)
        self._batch = batch
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
        """Queue `records` in batches; waits while `window` batches are unacknowledged."""
        for start in range(0, len(records), self._batch):
            self._raise_failure()
            await self._slots.acquire()
            task = asyncio.create_task(self._send(records[start : start + self._batch]))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        """Wait until the broker acknowledged everything sent; BrokerUnavailable if it did not."""
        await asyncio.gather(*self._pending, return_exceptions=True)
        self._raise_failure()

    async def _send(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        try:
            await self._producer.send_all(records, ACK_TIMEOUT_S)
        except BrokerUnavailable as exc:
            self._error = self._error or exc
        finally:
            self._slots.release()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise BrokerUnavailable(f"the broker stopped acknowledging: {self._error}")
