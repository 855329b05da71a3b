"""Hand validated events to Kafka and report success only once the broker acknowledged all of them."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from services.core import crm
from services.core.events import Attribution, RepAlias, Source, ValidEvent, kafka_key, to_message
from services.core.http import ApiError
from services.core.kafka import BrokerUnavailable, EventProducer
from services.core.observability import child
from services.ingest import metrics

log = logging.getLogger(__name__)

# Long enough for a restarting broker to come back, short enough not to stall senders.
RETRY_AFTER_S = 5


async def publish(
    producer: EventProducer,
    tenant: str,
    source: Source,
    events: Sequence[ValidEvent],
    aliases: Sequence[RepAlias | None] | None = None,
    updates: Sequence[crm.EntityUpdate] = (),
    attribution: Attribution | None = None,
) -> int:
    """Produce every event with `received_at` = now; 503 with Retry-After if the broker does not ack.

    `aliases`, when given, holds the vendor rep identity of each event (same order). `updates` are
    the delivery's CRM entity updates (HubSpot property changes...), acknowledged together with it.
    """
    received_at = datetime.now(UTC)
    records = [
        (
            kafka_key(tenant, event.rep_id, event.contact_id),
            to_message(event, tenant, source, received_at, aliases[i] if aliases else None, attribution),
        )
        for i, event in enumerate(events)
    ]
    update_records = _update_records(tenant, source, received_at, updates, attribution)
    started = time.perf_counter()
    try:
        await producer.send_all(records, updates=update_records)
    except BrokerUnavailable as exc:
        metrics.PRODUCE_LATENCY.labels(source.value, "unavailable").observe(time.perf_counter() - started)
        metrics.EVENTS_REJECTED.labels(source.value, "broker_unavailable").inc(len(records))
        log.warning(
            "broker did not acknowledge; answering 503",
            extra={"tenant": tenant, "source": source.value, "events": len(records), "error": str(exc)},
        )
        raise ApiError(
            503,
            "broker_unavailable",
            "the event broker did not acknowledge; retry later (retries are safe: events are"
            " deduplicated by event_id)",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from None
    child(metrics.PRODUCE_LATENCY, source.value, "acked").observe(time.perf_counter() - started)
    child(metrics.EVENTS_ACCEPTED, source.value).inc(len(records))
    child(metrics.BATCH_SIZE, source.value).observe(len(records))
    return len(records)


def _update_records(
    tenant: str,
    source: Source,
    received_at: datetime,
    updates: Sequence[crm.EntityUpdate],
    attribution: Attribution | None,
) -> list[tuple[bytes, bytes]]:
    """Kafka records of the CRM updates; one the aggregator could not use is dropped with a warning
    (answering an error would make the vendor retry a delivery whose events are fine)."""
    out = []
    for update in updates:
        try:
            out.append(
                (
                    crm.kafka_key(tenant, update.entity_id),
                    crm.to_message(update, tenant, source, received_at, attribution),
                )
            )
        except ValueError as exc:
            log.warning(
                "dropped an unusable CRM update",
                extra={
                    "tenant": tenant,
                    "source": source.value,
                    "property": update.property,
                    "error": str(exc),
                },
            )
    return out
