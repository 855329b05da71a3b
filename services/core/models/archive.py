"""What the aggregator archives and keeps to fold exactly once: events, CRM updates, offsets,
failed messages.

The event archive is partitioned by month of `occurred_at` (PostgreSQL declarative partitioning,
services/aggregator/archive_partitions.py creates and drops the partitions); a unique index of a
partitioned table must hold the partition key, so the dedupe key (tenant, event_id) is kept unique in
`event_keys`, a table of its own (docs/guarantees.md, "Dedupe horizon").
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, Integer, LargeBinary, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base

# Monthly partitions are named `<table>_pYYYYMM`; migrations/env.py leaves them out of `alembic check`.
PARTITION_NAME = re.compile(r"^(?P<table>[a-z_]+)_p(?P<year>\d{4})(?P<month>\d{2})$")


class Event(Base):
    """The archive: every folded event once, the source of truth for `salesloop rebuild`; one partition
    per month of `occurred_at` (UTC). `event_keys` holds its dedupe key."""

    __tablename__ = "events"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    type: Mapped[str] = mapped_column(String(40), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    folded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    source: Mapped[str] = mapped_column(String(20), nullable=False)
    rep_id: Mapped[str | None] = mapped_column(String(200))
    contact_id: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)

    __table_args__ = (
        Index("ix_events_tenant_occurred_at", "tenant", "occurred_at"),
        # Speed to lead looks up a contact's earliest touch in a time range.
        Index("ix_events_tenant_contact_id_occurred_at", "tenant", "contact_id", "occurred_at"),
        {"postgresql_partition_by": "RANGE (occurred_at)"},
    )


class EventKey(Base):
    """The dedupe key of every archived event, unique across the archive's partitions: an event is
    archived (and folded) by the transaction that inserted its key. `occurred_at` names the partition
    its archived row is in; keys go with their partition when retention drops it."""

    __tablename__ = "event_keys"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class ArchiveHorizon(Base):
    """Per partitioned table, where its kept months start once retention dropped older ones: rows that
    occurred before `kept_from` are no longer archived nor folded (their month's rollups are final)."""

    __tablename__ = "archive_horizon"

    table_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    kept_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class CrmUpdateArchive(Base):
    """The archive of CRM property updates (services/core/crm.py): their dedupe, and what a rebuild replays.

    `rep_id` is the rep an owner identity (`alias_kind`, `alias_value`) resolved to when folded; null
    while the identity is unknown (re-resolved by `salesloop rebuild`).
    """

    __tablename__ = "crm_updates"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    update_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    source: Mapped[str] = mapped_column(String(20), nullable=False)
    entity: Mapped[str] = mapped_column(String(16), nullable=False)
    entity_id: Mapped[str] = mapped_column(String(200), nullable=False)
    property: Mapped[str] = mapped_column(String(32), nullable=False)
    value: Mapped[str | None] = mapped_column(String(320))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    folded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    alias_kind: Mapped[str | None] = mapped_column(String(32))
    alias_value: Mapped[str | None] = mapped_column(String(320))
    rep_id: Mapped[str | None] = mapped_column(String(200))


class ConsumerOffset(Base):
    """Kafka offsets committed in the same transaction as the rollups (exactly-once folding)."""

    __tablename__ = "consumer_offsets"

    consumer_group: Mapped[str] = mapped_column(String(200), primary_key=True)
    topic: Mapped[str] = mapped_column(String(249), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class FailedEvent(Base):
    """Messages the aggregator could not fold (also on the DLQ topic); `salesloop replay-failed`
    re-folds them."""

    __tablename__ = "failed_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant: Mapped[str | None] = mapped_column(String(63))
    event_id: Mapped[str | None] = mapped_column(String(200))
    topic: Mapped[str] = mapped_column(String(249), nullable=False)
    partition: Mapped[int] = mapped_column(Integer, nullable=False)
    offset: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reason: Mapped[str] = mapped_column(String(64), nullable=False)
    detail: Mapped[str | None] = mapped_column(Text)
    key: Mapped[bytes | None] = mapped_column(LargeBinary)
    value: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    headers: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    replayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # One row per message: a redelivered poison message is recorded once.
        Index("uq_failed_events_topic_partition_offset", "topic", "partition", "offset", unique=True),
        Index("ix_failed_events_tenant_replayed_at", "tenant", "replayed_at"),
    )
