"""Prometheus metrics of the ingest service.

Labels stay bounded: `source` is one of the `Source` values, `reason` and `outcome` come from small
fixed sets. Tenants, event ids and keys are never labels. Metrics are created once per process
(the Prometheus registry is process-wide), so several apps in one process share them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

from services.core.http import ApiError
from services.core.observability import RequestMetrics
from services.ingest.canonical import InvalidEvents

log = logging.getLogger("services.ingest")

BODY_BYTES_BUCKETS = (256, 1024, 4096, 16_384, 65_536, 262_144, 524_288, 1_048_576, 2_097_152)
BATCH_EVENTS_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)
PRODUCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP = RequestMetrics("ingest")

EVENTS_ACCEPTED = Counter(
    "salesloop_ingest_events_accepted_total",
    "Events acknowledged by the broker and answered 2xx",
    ["source"],
)
EVENTS_REJECTED = Counter(
    "salesloop_ingest_events_rejected_total",
    "Events refused after parsing (reason: invalid, broker_unavailable); a batch counts all its events",
    ["source", "reason"],
)
REQUESTS_REJECTED = Counter(
    "salesloop_ingest_requests_rejected_total",
    "Requests answered with an error, by error code",
    ["source", "reason"],
)
AUTH_FAILURES = Counter(
    "salesloop_ingest_auth_failures_total",
    "Requests refused for missing or bad credentials or signatures",
    ["source", "reason"],
)
PRODUCE_LATENCY = Histogram(
    "salesloop_ingest_produce_duration_seconds",
    "Time until the broker acknowledged every event of a request",
    ["source", "outcome"],
    buckets=PRODUCE_BUCKETS,
)
BODY_SIZE = Histogram(
    "salesloop_ingest_request_body_bytes",
    "Size of request bodies that were read completely",
    ["source"],
    buckets=BODY_BYTES_BUCKETS,
)
BATCH_SIZE = Histogram(
    "salesloop_ingest_request_events",
    "Events per accepted request",
    ["source"],
    buckets=BATCH_EVENTS_BUCKETS,
)


@contextmanager
def counted_rejections(source: str, tenant: str) -> Iterator[None]:
    """Count and log every `ApiError` leaving the block; the error itself goes on to the client."""
    try:
        yield
    except ApiError as exc:
        REQUESTS_REJECTED.labels(source, exc.code).inc()
        if isinstance(exc, InvalidEvents):
            EVENTS_REJECTED.labels(source, "invalid").inc(exc.events)
        # Only authenticated senders get info lines (a tenant debugging its events wants them);
        # logging refusals of anonymous requests would let anyone flood the log. Metrics count all.
        log.log(
            logging.INFO if exc.status in (403, 422) else logging.DEBUG,
            "request rejected",
            extra={"tenant": tenant[:64], "source": source, "status": exc.status, "code": exc.code},
        )
        raise
