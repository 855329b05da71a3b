"""Pipeline history (SPEC 5.8): each deal's changes in event time, and what they add up to.

`deal_changes` is the change set: one row per fact the deal events and the CRM's deal updates
report, insert-only. Every other derived table is recomputed from a deal's whole change set whenever
a batch brings it a change (services/aggregator/folds/pipeline.py), so it does not depend on the
order the changes arrived in. `pipeline_stages` is what a tenant sets; no fold writes it.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Boolean, Date, DateTime, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base, Money

# The kinds of change a deal has (`deal_changes.kind`).
CHANGE_KINDS: tuple[str, ...] = (
    "created",
    "stage",
    "amount",
    "close_date",
    "forecast_category",
    "owner",
    "contact",
    "won",
    "lost",
)


class DealChange(Base):
    """One change of a deal at `at` (event time). `value`: the stage, amount, close date (YYYY-MM-DD),
    forecast category, owner (the vendor's id, or the rep id an event named) or contact; for won and
    lost the stage the deal closed with, if the event named one; null for created, and where a CRM
    cleared the property. `rep_id`: for `owner`, the rep the owner resolves to (null while unknown);
    else the rep the event named, if any. At one instant a creation comes first and a close last,
    otherwise ties are ordered by `change_id`."""

    __tablename__ = "deal_changes"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    deal_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    change_id: Mapped[str] = mapped_column(Text, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    value: Mapped[str | None] = mapped_column(Text)
    rep_id: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_deal_changes_tenant_deal_id_kind_at", "tenant", "deal_id", "kind", "at"),)


class PipelineDeal(Base):
    """A deal as its changes make it. `status` is open, won or lost; `closed_at` when it closed.
    `rep_id` is the current owner of an open deal and the owner at `closed_at` of a closed one;
    `created_rep_id` the owner at `created_at` (null when the creation is unknown). `stage` and
    `stage_entered_at` are the last stage entered; `amount`, `close_date`, `forecast_category` and
    `contact_id` the newest values; `updated_at` the time of the newest change."""

    __tablename__ = "pipeline_deals"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    deal_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    rep_id: Mapped[str | None] = mapped_column(String(200))
    created_rep_id: Mapped[str | None] = mapped_column(String(200))
    contact_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(8), nullable=False, server_default="open")
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stage: Mapped[str | None] = mapped_column(Text)
    stage_entered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    amount: Mapped[Decimal | None] = mapped_column(Money)
    close_date: Mapped[date | None] = mapped_column(Date)
    forecast_category: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_pipeline_deals_tenant_status_close_date", "tenant", "status", "close_date"),
        Index("ix_pipeline_deals_tenant_created_at", "tenant", "created_at"),
        Index("ix_pipeline_deals_tenant_closed_at", "tenant", "closed_at"),
        # The fold keeps `contact_activity` for the contacts deals name.
        Index("ix_pipeline_deals_tenant_contact_id", "tenant", "contact_id"),
    )


class DealStageStay(Base):
    """One stay of a deal in a stage: entered at `entered_at`, left at `left_at` for `next` (the next
    stage's name, or won / lost); both null while the deal is in it. `rep_id`: the owner at entry;
    `deal_created_at`: the deal's creation (null when unknown); `reached_later`: the stages the deal
    entered after this stay; `won_after`: whether the deal is won."""

    __tablename__ = "deal_stage_stays"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    deal_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    stage: Mapped[str] = mapped_column(Text, primary_key=True)
    left_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next: Mapped[str | None] = mapped_column(Text)
    rep_id: Mapped[str | None] = mapped_column(String(200))
    deal_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reached_later: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    won_after: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")

    __table_args__ = (
        Index("ix_deal_stage_stays_tenant_deal_created_at", "tenant", "deal_created_at"),
        Index("ix_deal_stage_stays_tenant_stage_left_at", "tenant", "stage", "left_at"),
        # The order stages were first entered in (a tenant's default order): a probe per stage.
        Index("ix_deal_stage_stays_tenant_stage_entered_at", "tenant", "stage", "entered_at"),
    )


class ContactActivity(Base):
    """The latest call, email or meeting with a contact that a deal names (stale deals, SPEC 5.8)."""

    __tablename__ = "contact_activity"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    contact_id: Mapped[str] = mapped_column(Text, primary_key=True)
    last_activity_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class PipelineStage(Base):
    """A tenant's stage order and probabilities (PUT /v1/pipeline/stages); without rows, the order is
    the order the stages were first entered."""

    __tablename__ = "pipeline_stages"

    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.slug", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    probability: Mapped[Decimal | None] = mapped_column(Numeric)
