"""Partitions whose log restarted below the offsets stored in Postgres: a broker that lost its log.

Judged by fetch results only, never by the broker's ListOffsets end offset, which can under-report:
- a broker that answers "offset out of range" makes the client restart the partition at its first
  offset, so records come from below our position (they are new and are folded);
- a broker that answers with empty fetches reports a high watermark below our position instead.
A broker that lost one partition's log lost them all (a restarted memory broker, a recreated cluster),
and a partition whose new log already grew past the stored offset cannot be told apart by its numbers:
so once one partition shows it, every owned partition is read again from its beginning. What was
folded before is recognised by the archive; nothing is counted twice. Each partition is logged and
counted in `salesloop_aggregator_offset_resets_total`.

Members of the group each judge their own partitions: one whose partitions all outgrew their stored
offsets before it fetched cannot notice. Only a broker that forgets acknowledged messages gets here;
Kafka with unclean leader election off never shrinks a log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence

from aiokafka import ConsumerRecord, TopicPartition

from services.aggregator import metrics as m

log = logging.getLogger("services.aggregator.consumer")


def rewound(
    records: Mapping[TopicPartition, Sequence[ConsumerRecord]], positions: Mapping[TopicPartition, int]
) -> list[tuple[TopicPartition, int, int]]:
    """(partition, our position, first offset) of every partition whose records start below it."""
    out = []
    for tp, batch in records.items():
        expected = positions.get(tp)
        if batch and expected is not None and batch[0].offset < expected:
            out.append((tp, expected, batch[0].offset))
    return out


def shrunk(
    assigned: Iterable[TopicPartition],
    highwater: Callable[[TopicPartition], int | None],
    positions: Mapping[TopicPartition, int],
) -> list[TopicPartition]:
    """The partitions whose fetch high watermark lies below our position."""
    out = []
    for tp in assigned:
        end, expected = highwater(tp), positions.get(tp)
        if end is not None and expected is not None and end < expected:
            out.append(tp)
    return out


def restarted(tp: TopicPartition, expected: int, first: int) -> None:
    m.OFFSET_RESETS.inc()
    log.warning(
        "partition log restarted below the stored offset; reading it from its new beginning",
        extra={"partition": tp.partition, "stored_offset": expected, "resume_offset": first},
    )
