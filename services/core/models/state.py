"""Folded state beyond plain sums, and what users record for the feedback reports."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Date, DateTime, ForeignKey, Index, Numeric, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base, Money, MoneySum, counter


class DataQuality(Base):
    """Vendor events whose rep could not be resolved, per source and unknown alias (SPEC 4)."""

    __tablename__ = "data_quality"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    alias_kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    alias_value: Mapped[str] = mapped_column(String(320), primary_key=True)
    events: Mapped[int] = counter()
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


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
        Index("ix_deal_facts_tenant_deal_id", "tenant", "deal_id"),  # salesloop import's known facts
    )


class CrmEntity(Base):
    """A CRM deal or contact as the aggregator knows it (services/aggregator/folds/crm.py).

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
