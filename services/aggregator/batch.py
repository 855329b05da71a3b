"""One fetched batch, decoded: what the consumer commits in one transaction.

Decoding is pure CPU and needs nothing from Postgres, so the consumer decodes the next batch while
the current one commits. It hands the event loop back every few hundred messages: the commit in
flight then moves on to its next statement as soon as Postgres answers, and decoding fills the time
Postgres spends on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import ConsumerRecord, TopicPartition

from services.aggregator.dlq import DeadLetter, Message
from services.core.crm import CrmUpdate
from services.core.wire import Event, Malformed, decode_message

Records = Mapping[TopicPartition, Sequence[ConsumerRecord]]

YIELD_EVERY = 250  # messages decoded between two turns of the event loop (about 2 ms)


@dataclass
class Batch:
    records: Records
    decoded: list[tuple[Message, Event]] = field(default_factory=list)
    updates: list[CrmUpdate] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    offsets: dict[int, int] = field(default_factory=dict)  # partition -> next offset, skipped ones too
    messages: int = 0


async def prepare(records: Records) -> Batch:
    batch = Batch(records)
    since_yield = 0
    for tp, messages in records.items():
        for msg in messages:
            since_yield += 1
            if since_yield == YIELD_EVERY:
                since_yield = 0
                await asyncio.sleep(0)
            item = decode_message(msg.value, msg.headers)
            if isinstance(item, Malformed):
                batch.letters.append(DeadLetter.malformed(msg, item))
            elif isinstance(item, CrmUpdate):
                batch.updates.append(item)
            else:
                batch.decoded.append((msg, item))
        if messages:
            batch.offsets[tp.partition] = messages[-1].offset + 1
            batch.messages += len(messages)
    return batch
