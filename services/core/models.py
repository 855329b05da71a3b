"""Tables. All SQL lives in each domain's queries/store module; this is only the schema."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = Numeric(20, 4)
# Sums of amounts: wide enough that no stream of valid events (each <= 1e15) can overflow a rollup row,
# which would make its batch fail on every retry.
MoneySum = Numeric(38, 4)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _counter() -> Mapped[int]:
    return mapped_column(BigInteger, nullable=False, server_default="0")


def _seconds() -> Mapped[Decimal]:
    return mapped_column(Numeric(20, 3), nullable=False, server_default="0")


class Tenant(Base):
    __tablename__ = "tenants"

    slug: Mapped[str] = mapped_column(String(63), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TenantSecret(Base):
    """Per-source secrets, Fernet-encrypted with a key derived from SALESLOOP_SECRET_KEY."""

    __tablename__ = "tenant_secrets"

    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.slug", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiKey(Base):
    __tablename__ = "api_keys"

    prefix: Mapped[str] = mapped_column(String(16), primary_key=True)
    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.slug", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Rep(Base):
    __tablename__ = "reps"

    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.slug", ondelete="CASCADE"), primary_key=True)
    rep_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    team: Mapped[str | None] = mapped_column(String(200))
    hired_at: Mapped[date | None] = mapped_column(Date)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False)
    quota_monthly: Mapped[Decimal | None] = mapped_column(Money)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    aliases: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_reps_tenant_team", "tenant", "team"),)


class RepAlias(Base):
    """Vendor identity -> rep, e.g. (acme, hubspot_owner_id, 123) -> r1."""

    __tablename__ = "rep_aliases"

    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.slug", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(320), primary_key=True)
    rep_id: Mapped[str] = mapped_column(String(200), nullable=False)


class Event(Base):
    """The archive: every folded event once, the source of truth for `salesloop rebuild`."""

    __tablename__ = "events"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    type: Mapped[str] = mapped_column(String(40), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
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
    )


class RepDaily(Base):
    """Per rep per rep-local day counters. Additive: every column is a sum."""

    __tablename__ = "rollup_rep_daily"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    rep_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    events: Mapped[int] = _counter()
    calls: Mapped[int] = _counter()
    dials: Mapped[int] = _counter()
    connects: Mapped[int] = _counter()
    talk_time_s: Mapped[Decimal] = _seconds()
    talk_calls: Mapped[int] = _counter()
    rep_talk_s: Mapped[Decimal] = _seconds()
    buyer_talk_s: Mapped[Decimal] = _seconds()
    emails_sent: Mapped[int] = _counter()
    emails_opened: Mapped[int] = _counter()
    emails_clicked: Mapped[int] = _counter()
    email_replies: Mapped[int] = _counter()
    emails_bounced: Mapped[int] = _counter()
    meetings_booked: Mapped[int] = _counter()
    meetings_held: Mapped[int] = _counter()
    meetings_no_show: Mapped[int] = _counter()
    leads_created: Mapped[int] = _counter()
    leads_mql: Mapped[int] = _counter()
    leads_sql: Mapped[int] = _counter()
    deals_created: Mapped[int] = _counter()
    deal_stage_changes: Mapped[int] = _counter()
    deals_won: Mapped[int] = _counter()
    deals_lost: Mapped[int] = _counter()
    revenue_won: Mapped[Decimal] = mapped_column(MoneySum, nullable=False, server_default="0")
    certifications: Mapped[int] = _counter()
    certifications_passed: Mapped[int] = _counter()


class ChannelDaily(Base):
    """Per acquisition channel per tenant-local day."""

    __tablename__ = "rollup_channel_daily"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    events: Mapped[int] = _counter()
    leads: Mapped[int] = _counter()
    mqls: Mapped[int] = _counter()
    sqls: Mapped[int] = _counter()
    deals_created: Mapped[int] = _counter()
    deals_won: Mapped[int] = _counter()
    revenue_won: Mapped[Decimal] = mapped_column(MoneySum, nullable=False, server_default="0")


class TenantWatermark(Base):
    """The newest event time folded per tenant: the `as_of` of every API answer."""

    __tablename__ = "tenant_watermarks"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    events_folded: Mapped[int] = _counter()


class ConsumerOffset(Base):
    """Kafka offsets committed in the same transaction as the rollups (exactly-once folding)."""

    __tablename__ = "consumer_offsets"

    consumer_group: Mapped[str] = mapped_column(String(200), primary_key=True)
    topic: Mapped[str] = mapped_column(String(249), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DataQuality(Base):
    """Vendor events whose rep could not be resolved, per source and unknown alias (SPEC 4)."""

    __tablename__ = "data_quality"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    alias_kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    alias_value: Mapped[str] = mapped_column(String(320), primary_key=True)
    events: Mapped[int] = _counter()
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Scorecard(Base):
    """Hiring trait scores (1-10) recorded at hire, SPEC 5.3."""

    __tablename__ = "scorecards"

    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.slug", ondelete="CASCADE"), primary_key=True)
    rep_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    traits: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ChannelSpend(Base):
    """Marketing spend per channel per calendar month (`month` is its first day), SPEC 5.5."""

    __tablename__ = "channel_spend"

    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.slug", ondelete="CASCADE"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    amount: Mapped[Decimal] = mapped_column(MoneySum, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CertificationAttempt(Base):
    """Every `training.certification` event, folded by the aggregator (few per rep)."""

    __tablename__ = "certification_attempts"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    rep_id: Mapped[str | None] = mapped_column(String(200))
    module: Mapped[str] = mapped_column(String(200), nullable=False)
    score: Mapped[Decimal | None] = mapped_column(Numeric(6, 2))
    passed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (Index("ix_certification_attempts_tenant_rep_id", "tenant", "rep_id"),)


class Lead(Base):
    """Lead state per contact, kept by the aggregator whatever order events arrive in (SPEC 5.5).

    `created_at` is the contact's earliest `lead.created`; `channel` its first-touch channel (the
    earliest lead.created naming one, or the CRM's source property); `first_touch_at` the earliest
    call, email or meeting at or after creation; `speed_s` their difference.
    """

    __tablename__ = "leads"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_event_id: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str | None] = mapped_column(String(32))
    origin_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    origin_event_id: Mapped[str | None] = mapped_column(String(200))
    first_touch_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    earliest_touch_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    latest_touch_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    speed_s: Mapped[Decimal | None] = mapped_column(Numeric(20, 3))
    mql_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sql_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_leads_tenant_created_at", "tenant", "created_at"),
        # The demand report counts the leads that turned MQL or SQL in a window.
        Index("ix_leads_tenant_mql_at", "tenant", "mql_at", postgresql_where=text("mql_at IS NOT NULL")),
        Index("ix_leads_tenant_sql_at", "tenant", "sql_at", postgresql_where=text("sql_at IS NOT NULL")),
    )


class DealFact(Base):
    """`deal.created` / `deal.won` / `deal.lost` facts for channel attribution at read time.

    A deal without a channel takes its contact's first-touch channel (`leads.channel`), which may
    arrive later than the deal: joining at read time keeps the answer independent of arrival order.
    """

    __tablename__ = "deal_facts"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    type: Mapped[str] = mapped_column(String(40), nullable=False)
    deal_id: Mapped[str | None] = mapped_column(String(200))
    contact_id: Mapped[str | None] = mapped_column(String(200))
    rep_id: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str | None] = mapped_column(String(32))
    amount: Mapped[Decimal | None] = mapped_column(MoneySum)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (
        Index("ix_deal_facts_tenant_occurred_at", "tenant", "occurred_at"),
        Index("ix_deal_facts_tenant_contact_id", "tenant", "contact_id"),
    )


class TenantSourceSettings(Base):
    """Per-tenant vendor mapping options (e.g. HubSpot won/lost stages, Salesforce lead statuses)."""

    __tablename__ = "tenant_source_settings"

    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.slug", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
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


class CrmEntity(Base):
    """A CRM deal or contact as the aggregator knows it (services/aggregator/crm.py).

    The columns are the newest value of each property (`rep_id`: the rep the current owner resolves
    to). `history` holds every property change, `events` the deal or lead events attributed through
    the entity, and `contribution` what those events currently add to the rollups.
    """

    __tablename__ = "crm_entities"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    entity: Mapped[str] = mapped_column(String(16), primary_key=True)
    entity_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(320))
    rep_id: Mapped[str | None] = mapped_column(String(200))
    amount: Mapped[Decimal | None] = mapped_column(Money)
    contact_id: Mapped[str | None] = mapped_column(String(320))
    channel: Mapped[str | None] = mapped_column(String(32))
    stage: Mapped[str | None] = mapped_column(String(320))
    lifecycle_stage: Mapped[str | None] = mapped_column(String(320))
    history: Mapped[list[Any]] = mapped_column(JSONB, nullable=False, server_default="[]")
    events: Mapped[list[Any]] = mapped_column(JSONB, nullable=False, server_default="[]")
    contribution: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# Counter columns of each rollup, in table order: the fold and the store share these.
REP_COUNTERS: tuple[str, ...] = tuple(
    c.name for c in RepDaily.__table__.columns if c.name not in ("tenant", "rep_id", "day")
)
CHANNEL_COUNTERS: tuple[str, ...] = tuple(
    c.name for c in ChannelDaily.__table__.columns if c.name not in ("tenant", "channel", "day")
)
