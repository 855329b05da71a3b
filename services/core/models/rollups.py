"""The additive rollups the reads sum, and each tenant's watermark."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base, MoneySum, counter, seconds


class RepDaily(Base):
    """Per rep per rep-local day counters. Additive: every column is a sum."""

    __tablename__ = "rollup_rep_daily"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    rep_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    events: Mapped[int] = counter()
    calls: Mapped[int] = counter()
    dials: Mapped[int] = counter()
    connects: Mapped[int] = counter()
    talk_time_s: Mapped[Decimal] = seconds()
    talk_calls: Mapped[int] = counter()
    rep_talk_s: Mapped[Decimal] = seconds()
    buyer_talk_s: Mapped[Decimal] = seconds()
    emails_sent: Mapped[int] = counter()
    emails_opened: Mapped[int] = counter()
    emails_clicked: Mapped[int] = counter()
    email_replies: Mapped[int] = counter()
    emails_bounced: Mapped[int] = counter()
    meetings_booked: Mapped[int] = counter()
    meetings_held: Mapped[int] = counter()
    meetings_no_show: Mapped[int] = counter()
    leads_created: Mapped[int] = counter()
    leads_mql: Mapped[int] = counter()
    leads_sql: Mapped[int] = counter()
    deals_created: Mapped[int] = counter()
    deal_stage_changes: Mapped[int] = counter()
    deals_won: Mapped[int] = counter()
    deals_lost: Mapped[int] = counter()
    revenue_won: Mapped[Decimal] = mapped_column(MoneySum, nullable=False, server_default="0")
    certifications: Mapped[int] = counter()
    certifications_passed: Mapped[int] = counter()


class ChannelDaily(Base):
    """Per acquisition channel per tenant-local day."""

    __tablename__ = "rollup_channel_daily"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    events: Mapped[int] = counter()
    leads: Mapped[int] = counter()
    mqls: Mapped[int] = counter()
    sqls: Mapped[int] = counter()
    deals_created: Mapped[int] = counter()
    deals_won: Mapped[int] = counter()
    revenue_won: Mapped[Decimal] = mapped_column(MoneySum, nullable=False, server_default="0")


class TenantWatermark(Base):
    """The newest event time folded per tenant: the `as_of` of every API answer."""

    __tablename__ = "tenant_watermarks"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    events_folded: Mapped[int] = counter()


# Counter columns of each rollup, in table order: the fold and the store share these.
REP_COUNTERS: tuple[str, ...] = tuple(
    c.name for c in RepDaily.__table__.columns if c.name not in ("tenant", "rep_id", "day")
)
CHANNEL_COUNTERS: tuple[str, ...] = tuple(
    c.name for c in ChannelDaily.__table__.columns if c.name not in ("tenant", "channel", "day")
)
