"""What the import produces, without a broker: the records are what `kafka_key` and `to_message` write,
and each goes to the partition the services' producer (KeyPartitioner) would choose."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal

from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from services.core.events import CheckedEvent, RepAlias, Source, kafka_key, to_message
from services.core.kafka import KeyPartitioner
from services.core.wire import check_event
from services.importer.send import Records, murmur2

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_murmur2_is_aiokafkas_for_keys_of_every_length() -> None:
    rnd = random.Random(7)
    keys = [bytes(rnd.randrange(256) for _ in range(n)) for n in range(70) for _ in range(20)]
    keys += [f"acme:{i}".encode() for i in range(500)]
    assert [murmur2(k) for k in keys] == [aiokafka_murmur2(k) for k in keys]
    partitions = list(range(12))
    chosen = KeyPartitioner()
    assert [partitions[(murmur2(k) & 0x7FFFFFFF) % 12] for k in keys] == [
        chosen(k, partitions, partitions) for k in keys
    ]


def test_records_are_to_messages_bytes() -> None:
    bodies = [
        {"event_id": "e1", "type": "deal.won", "occurred_at": NOW, "deal_id": "d1",
         "amount": Decimal("12.50"), "currency": "USD", "attributes": {"a": "ü", "b": "x"}},
        {"event_id": "e2", "type": "call.completed", "occurred_at": "2026-11-02T10:00:00+01:00",
         "contact_id": "c 1", "duration_s": 30.0},
        {"event_id": "e3", "type": "email.sent", "occurred_at": NOW, "rep_id": "r-1"},
    ]  # fmt: skip
    aliases = [None, RepAlias(kind="salesforce_user_id", value="0055e000003QwErAAK")]
    records = Records("acme", NOW)
    for body in bodies:
        event = check_event(body, now=NOW, currency="USD")
        assert isinstance(event, CheckedEvent)
        for source in (Source.SALESFORCE, Source.HUBSPOT):
            for alias in aliases:
                expected = to_message(event, "acme", source, NOW, rep_alias=alias)
                assert records.record(event, source, alias) == (
                    kafka_key("acme", event.rep_id, event.contact_id),
                    expected,
                )
