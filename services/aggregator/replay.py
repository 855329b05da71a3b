"""`salesloop replay-failed`: fold dead-lettered messages again once their cause is fixed.

Each row of `failed_events` not replayed yet is decoded and screened again exactly as the consumer
does, and what now passes is folded through the batch transaction (commit.py). The archive's primary key keeps
that exactly once: an event that reached the rollups some other way (or a replay interrupted after
folding) is recognised as a duplicate. Folded rows get `replayed_at`; rows that still fail stay, with
their current reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.aggregator.commit import commit_batch
from services.aggregator.dlq import DeadLetters, FailedRow, Message
from services.aggregator.store import Store
from services.core.settings import Settings
from services.core.wire import Event, Malformed, decode

log = logging.getLogger(__name__)

APPLICATION_NAME = "salesloop-replay"
BATCH_ROWS = 500


@dataclass
class ReplayResult:
    replayed: int = 0  # rows folded now (or found folded already) and marked replayed
    folded: int = 0  # of those, events that were new to the rollups
    still_failing: int = 0


async def replay_failed(settings: Settings, tenant: str | None = None) -> ReplayResult:
    store = await Store.open(settings, max_connections=1)
    dead_letters = await DeadLetters.open(settings, APPLICATION_NAME)
    result = ReplayResult()
    try:
        after_id = 0
        while rows := await dead_letters.pending(tenant, after_id, BATCH_ROWS):
            after_id = rows[-1].id
            await _replay(rows, store, dead_letters, result)
    finally:
        await dead_letters.close()
        await store.close()
    log.info(
        "replay finished",
        extra={"tenant": tenant, "replayed": result.replayed, "still_failing": result.still_failing},
    )
    return result


async def _replay(
    rows: list[FailedRow], store: Store, dead_letters: DeadLetters, result: ReplayResult
) -> None:
    failing: list[tuple[int, str, str]] = []
    decoded: list[tuple[Message, Event]] = []
    for row in rows:
        event = decode(row.value, row.headers)
        if isinstance(event, Malformed):
            failing.append((row.id, event.reason, event.detail))
        else:
            decoded.append((row, event))
    events, refused = await dead_letters.screen(decoded)
    ids = {(row.topic, row.partition, row.offset): row.id for row in rows}
    failing += [(ids[(r.topic, r.partition, r.offset)], r.reason, r.detail) for r in refused]
    refused_ids = {row_id for row_id, _, _ in failing}
    replayed = [row.id for row in rows if row.id not in refused_ids]
    # No offsets: replayed messages are behind every consumer already.
    batch = await commit_batch(store, events, {})
    await dead_letters.settle(replayed, failing)
    result.replayed += len(replayed)
    result.folded += len(batch.folded)
    result.still_failing += len(failing)
