"""Dead letters: messages that passed ingest but cannot be folded, and all SQL of `failed_events`.

A message is dead-lettered when it does not decode (services/core/wire.py's reasons), when its tenant does not
exist, or when it carries an amount in another currency than the tenant's. It goes to the DLQ topic
(original key, value and headers, plus `dlq-*` headers saying why and where it came from) and to
`failed_events`, one row per topic/partition/offset, so a redelivered poison message is recorded once.
The batch commits without it: one bad message never holds up its partition. `salesloop replay-failed`
re-folds the rows once the cause is fixed.

The topic is at least once (a crash between publishing and committing publishes again: readers
dedupe on `dlq-topic`/`dlq-partition`/`dlq-offset`); the table is exactly once.
"""

from __future__ import annotations

import base64
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, TypeVar

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError

from services.aggregator.store import columns
from services.core.db import asyncpg_dsn
from services.core.offboarding import Register, registered
from services.core.settings import Settings
from services.core.tenancy import TtlCache
from services.core.wire import REASONS, Event, Malformed

log = logging.getLogger(__name__)

UNKNOWN_TENANT = "unknown_tenant"
CURRENCY_MISMATCH = "currency_mismatch"
DEAD_LETTER_REASONS: tuple[str, ...] = (*REASONS, UNKNOWN_TENANT, CURRENCY_MISMATCH)

REASON_HEADER = "dlq-reason"
DETAIL_HEADER = "dlq-detail"
ORIGIN_HEADERS = ("dlq-topic", "dlq-partition", "dlq-offset")
_MAX_DETAIL = 1000

TENANT_CURRENCIES = "SELECT slug, currency FROM tenants WHERE slug = any($1::text[])"

# Rows in key order, like every multi-row statement of the aggregator (concurrent members never deadlock).
RECORD = """
INSERT INTO failed_events (tenant, event_id, topic, partition, "offset", reason, detail, key, value, headers)
SELECT tenant, event_id, topic, partition, "offset", reason, detail, key, value, headers::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::bigint[], $6::text[], $7::text[],
            $8::bytea[], $9::bytea[], $10::text[])
  AS u(tenant, event_id, topic, partition, "offset", reason, detail, key, value, headers)
ORDER BY topic, partition, "offset"
ON CONFLICT (topic, partition, "offset") DO NOTHING
RETURNING reason
"""

PENDING = """
SELECT id, topic, partition, "offset", key, value, headers FROM failed_events
WHERE replayed_at IS NULL AND id > $1 AND ($2::text IS NULL OR tenant = $2)
ORDER BY id
LIMIT $3
"""

MARK_REPLAYED = "UPDATE failed_events SET replayed_at = now() WHERE id = any($1::bigint[])"

STILL_FAILING = """
UPDATE failed_events AS f SET reason = u.reason, detail = u.detail
FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(id, reason, detail)
WHERE f.id = u.id
"""


class Tenanted(Protocol):
    """Anything decoded from a message that belongs to a tenant: an `Event`, a CRM entity update."""

    @property
    def tenant(self) -> str: ...


T = TypeVar("T", bound=Tenanted)


class DeadLetterUnpublished(Exception):
    """The broker did not take the batch's dead letters; the batch is retried, not committed."""


@dataclass(frozen=True)
class KeptMessage:
    """A Kafka message as kept outside Kafka (a `Message`)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


# A Kafka message as consumed, or as kept in `failed_events` (`FailedRow`).
Message: TypeAlias = ConsumerRecord[bytes, bytes] | KeptMessage


@dataclass(frozen=True)
class DeadLetter(KeptMessage):
    reason: str
    detail: str
    tenant: str | None = None
    event_id: str | None = None

    @classmethod
    def of(
        cls, msg: Message, reason: str, detail: str, tenant: str | None, event_id: str | None
    ) -> DeadLetter:
        return cls(
            msg.topic,
            msg.partition,
            msg.offset,
            msg.key,
            msg.value or b"",
            tuple(msg.headers),
            reason,
            detail,
            tenant,
            event_id,
        )

    @classmethod
    def malformed(cls, msg: Message, why: Malformed) -> DeadLetter:
        return cls.of(msg, why.reason, why.detail, why.tenant, why.event_id)

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        why = [(REASON_HEADER, self.reason.encode()), (DETAIL_HEADER, self.detail[:_MAX_DETAIL].encode())]
        origin = zip(ORIGIN_HEADERS, (self.topic, str(self.partition), str(self.offset)), strict=True)
        return [*self.headers, *why, *((name, value.encode()) for name, value in origin)]

    def row(self) -> tuple[Any, ...]:
        return (
            _column_text(self.tenant, 63),
            _column_text(self.event_id, 200),
            self.topic,
            self.partition,
            self.offset,
            self.reason,
            _clean(self.detail)[:_MAX_DETAIL],
            self.key,
            self.value,
            orjson.dumps(headers_to_json(self.headers)).decode(),
        )


@dataclass(frozen=True)
class FailedRow(KeptMessage):
    """A row of `failed_events`: the message and the row's id."""

    id: int


def headers_to_json(headers: Iterable[tuple[str, bytes]]) -> dict[str, Any]:
    """Kafka headers as a readable JSON object that `headers_from_json` turns back into the same headers.

    Text values stay text; values that are not UTF-8 or hold NUL (which jsonb cannot store) become
    {"base64": ...}; a repeated name holds a list, in order. jsonb keeps no order between names.
    """
    out: dict[str, Any] = {}
    for name, value in headers:
        text = _header_text(value)
        key = _clean(name)
        if key in out:
            previous = out[key]
            out[key] = [*previous, text] if isinstance(previous, list) else [previous, text]
        else:
            out[key] = text
    return out


def _header_text(value: bytes) -> str | dict[str, str]:
    encoded = {"base64": base64.b64encode(value).decode()}
    try:
        text = value.decode()
    except UnicodeDecodeError:
        return encoded
    return encoded if "\x00" in text else text


def headers_from_json(data: dict[str, Any]) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for name, stored in data.items():
        for value in stored if isinstance(stored, list) else [stored]:
            raw = base64.b64decode(value["base64"]) if isinstance(value, dict) else str(value).encode()
            out.append((name, raw))
    return out


def screen(
    items: Sequence[tuple[Message, T]], currencies: dict[str, str]
) -> tuple[list[T], list[DeadLetter]]:
    """Split decoded messages into those to fold and those of unknown tenants or, for events, with an
    amount in another currency than the tenant's. `currencies` maps the batch's known tenants to theirs.
    """
    kept: list[T] = []
    letters: list[DeadLetter] = []
    for msg, item in items:
        currency = currencies.get(item.tenant)
        event_id = item.event_id if isinstance(item, Event) else None
        if currency is None:
            detail = f"tenant {item.tenant!r} does not exist"
            letters.append(DeadLetter.of(msg, UNKNOWN_TENANT, detail, item.tenant, event_id))
            continue
        # Most events name no currency: only those are parsed again.
        if isinstance(item, Event) and '"currency"' in item.payload:
            given = orjson.loads(item.payload).get("currency")
            if given is not None and given != currency:
                detail = f"currency {str(given)[:10]!r} is not the tenant's reporting currency {currency}"
                letters.append(DeadLetter.of(msg, CURRENCY_MISMATCH, detail, item.tenant, event_id))
                continue
        kept.append(item)
    return kept, letters


class DeadLetters:
    """The DLQ topic and the `failed_events` table, with the tenant look-ups the screen needs."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        # Known tenants only: a tenant created a moment ago must not stay "unknown" for a TTL.
        self._currencies: TtlCache[str, str] = TtlCache(settings.auth_cache_ttl_s)

    @classmethod
    async def open(cls, settings: Settings, application_name: str) -> DeadLetters:
        """A lazy pool: no connection until asked, so the service starts with Postgres down."""
        pool = await asyncpg.create_pool(
            asyncpg_dsn(settings.database_url.get_secret_value()),
            min_size=0,
            max_size=2,
            timeout=5,
            command_timeout=60,
            server_settings={"application_name": application_name},
        )
        return cls(pool, settings)

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
        await self._pool.close()

    async def screen(self, items: Sequence[tuple[Message, T]]) -> tuple[list[T], list[DeadLetter]]:
        currencies: dict[str, str] = {}
        missing = []
        for tenant in {item.tenant for _, item in items}:
            hit, currency = self._currencies.get(tenant)
            if hit and currency is not None:
                currencies[tenant] = currency
            else:
                missing.append(tenant)
        deleted: Register = {}
        if missing:
            async with self._pool.acquire() as conn:
                for row in await conn.fetch(TENANT_CURRENCIES, missing):
                    currencies[row["slug"]] = row["currency"]
                    self._currencies.put(row["slug"], row["currency"])
                # A deleted tenant's events are dropped, not dead-lettered (services/core/offboarding.py).
                deleted = await registered(conn, (t for t in missing if t not in currencies))
        return screen([(msg, item) for msg, item in items if item.tenant not in deleted], currencies)

    async def publish(self, letters: Sequence[DeadLetter]) -> int:
        """Produce every letter to the DLQ topic; returns their number once the broker acknowledged."""
        try:
            producer = await self._started_producer()
            futures = [
                await producer.send(
                    self._settings.dlq_topic, letter.value, key=letter.key, headers=letter.kafka_headers()
                )
                for letter in letters
            ]
            for future in futures:
                await future
        except (KafkaError, OSError, TimeoutError) as exc:
            raise DeadLetterUnpublished(repr(exc)) from exc
        return len(futures)

    async def _started_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._settings.kafka_bootstrap,
                acks="all",
                request_timeout_ms=int(self._settings.produce_timeout_s * 1000),
                max_request_size=2 * 1024 * 1024,
                client_id="salesloop-aggregator-dlq",
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def record(
        self, letters: Sequence[DeadLetter], conn: asyncpg.Connection | None = None
    ) -> Counter[str]:
        """Store the letters (in `conn`'s transaction when given); returns how many were new, by reason.

        A redelivered message is recorded once: its topic/partition/offset is there already.
        """
        rows = columns([letter.row() for letter in letters])
        if conn is None:
            async with self._pool.acquire() as own:
                inserted = await own.fetch(RECORD, *rows)
        else:
            inserted = await conn.fetch(RECORD, *rows)
        return Counter(r["reason"] for r in inserted)

    async def pending(self, tenant: str | None, after_id: int, limit: int) -> list[FailedRow]:
        """Rows not replayed yet, in the order they failed, after `after_id`."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(PENDING, after_id, tenant, limit)
        return [
            FailedRow(
                r["topic"],
                r["partition"],
                r["offset"],
                r["key"],
                r["value"],
                tuple(headers_from_json(orjson.loads(r["headers"]))),
                id=r["id"],
            )
            for r in rows
        ]

    async def settle(self, replayed: Sequence[int], failing: Sequence[tuple[int, str, str]]) -> None:
        """Mark rows re-folded, and give rows that still fail their current reason."""
        async with self._pool.acquire() as conn, conn.transaction():
            if replayed:
                await conn.execute(MARK_REPLAYED, list(replayed))
            if failing:
                rows = [(row_id, reason, _clean(detail)[:_MAX_DETAIL]) for row_id, reason, detail in failing]
                await conn.execute(STILL_FAILING, *columns(rows))


def _clean(text: str) -> str:
    """PostgreSQL text cannot hold NUL."""
    return text.replace("\x00", "\ufffd")


def _column_text(value: str | None, max_len: int) -> str | None:
    """Only what fits the column: an over-long or NUL-bearing id would fail the batch on every retry."""
    if value is None or not 0 < len(value) <= max_len or "\x00" in value:
        return None
    return value
