"""Prometheus metrics of the aggregator (`salesloop_aggregator_*`). Labels stay bounded: partition, reason."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.aggregator.dlq import DEAD_LETTER_REASONS
from services.core.wire import REASONS

BATCH_SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 20_000, 50_000)
COMMIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FRESHNESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0)

EVENTS_FOLDED = Counter("salesloop_aggregator_events_folded_total", "Distinct events folded into rollups")
DUPLICATES = Counter(
    "salesloop_aggregator_duplicates_skipped_total",
    "Deliveries of events already archived (redeliveries, duplicate webhooks)",
)
MALFORMED = Counter(
    "salesloop_aggregator_malformed_messages_total",
    "Messages skipped because they cannot be folded",
    ["reason"],
)
for _reason in REASONS:
    MALFORMED.labels(_reason)
DEAD_LETTERS = Counter(
    "salesloop_aggregator_dead_letters_total",
    "Messages recorded in failed_events and sent to the DLQ topic (each message once)",
    ["reason"],
)
for _dead_letter_reason in DEAD_LETTER_REASONS:
    DEAD_LETTERS.labels(_dead_letter_reason)
OFFSET_RESETS = Counter(
    "salesloop_aggregator_offset_resets_total",
    "Partitions found restarted below the stored offset (a broker that lost its log), read again from"
    " their new beginning",
)
BATCH_SIZE = Histogram(
    "salesloop_aggregator_batch_size_events", "Messages per committed batch", buckets=BATCH_SIZE_BUCKETS
)
COMMIT_SECONDS = Histogram(
    "salesloop_aggregator_batch_commit_seconds",
    "Time to archive, fold and commit one batch in Postgres",
    buckets=COMMIT_BUCKETS,
)
FRESHNESS = Histogram(
    "salesloop_aggregator_freshness_seconds",
    "From ingest (received_at) to the event being committed in the rollups",
    buckets=FRESHNESS_BUCKETS,
)
LAG = Gauge(
    "salesloop_aggregator_consumer_lag_messages",
    "Messages in the partition after this consumer's position (from fetch high watermarks)",
    ["partition"],
)
ASSIGNED = Gauge("salesloop_aggregator_assigned_partitions", "Partitions this consumer owns now")
REBALANCES = Counter("salesloop_aggregator_rebalances_total", "Partition assignments received")
DB_RETRIES = Counter(
    "salesloop_aggregator_db_retries_total", "Batch or offset-load attempts that failed and will be retried"
)
LAST_COMMIT = Gauge(
    "salesloop_aggregator_last_commit_timestamp_seconds", "Unix time of the last successful batch commit"
)
