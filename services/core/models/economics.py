"""Unit economics (SPEC 5.10): each billing account's MRR over time, and what a tenant sets.

`mrr_movements` holds one row per `subscription.*` event of an account (a Stripe account is its
`customer` id) with the MRR before and after it and the movement it makes; `subscription_accounts`
one row per account. Both are recomputed from an account's whole set of events whenever a batch
brings it one (services/aggregator/folds/subscriptions.py), so they do not depend on the order the
events arrived in. `economics_settings` is what a tenant sets; no fold writes it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import DateTime, ForeignKey, Index, Numeric, String, func
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base, Money, MoneySum

# The movements an event makes to its account's MRR (`mrr_movements.movement`).
MOVEMENTS: tuple[str, ...] = ("new", "expansion", "contraction", "churn", "reactivation")
# A share (gross margin, failure rate): 0 to 1, six decimal places.
Share = Numeric(7, 6)


class MrrMovement(Base):
    """One `subscription.*` event of an account, at `at` (event time), of `type`, about one of its
    subscriptions (`subscription_id`: Stripe's; '' for an event that gives the account's whole MRR)
    whose MRR after the event is `mrr`; the account's MRR (the sum over its subscriptions) before it
    and after it, and the movement that makes, null when the account's MRR did not change. An
    account's events are walked in time order (at one instant: a start first, a cancellation last,
    otherwise by event id)."""

    __tablename__ = "mrr_movements"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    type: Mapped[str] = mapped_column(String(40), nullable=False)
    subscription_id: Mapped[str] = mapped_column(String(200), nullable=False, server_default="")
    mrr: Mapped[Decimal] = mapped_column(Money, nullable=False)
    mrr_before: Mapped[Decimal] = mapped_column(Money, nullable=False)
    mrr_after: Mapped[Decimal] = mapped_column(Money, nullable=False)
    movement: Mapped[str | None] = mapped_column(String(16))
    contact_id: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (Index("ix_mrr_movements_tenant_at", "tenant", "at"),)


class SubscriptionAccount(Base):
    """A billing account as its events make it: `mrr` now, `contact_id` and `channel` (the earliest
    event naming one; the first-touch channel is the event's channel, else the contact's lead's),
    `first_paid_at` (its first MRR, null while it never had any) and `updated_at` (its newest event)."""

    __tablename__ = "subscription_accounts"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    mrr: Mapped[Decimal] = mapped_column(Money, nullable=False)
    contact_id: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str | None] = mapped_column(String(32))
    first_paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (Index("ix_subscription_accounts_tenant_contact_id", "tenant", "contact_id"),)


class EconomicsSettings(Base):
    """What a tenant sets for its unit economics: `gross_margin` (null: not set, so no LTV),
    `sales_cost_monthly` (overhead beyond reps' `monthly_cost`) and `failure_rate` (null: measured,
    else 0.35)."""

    __tablename__ = "economics_settings"

    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.slug", ondelete="CASCADE"), primary_key=True)
    gross_margin: Mapped[Decimal | None] = mapped_column(Share)
    sales_cost_monthly: Mapped[Decimal] = mapped_column(MoneySum, nullable=False, server_default="0")
    failure_rate: Mapped[Decimal | None] = mapped_column(Share)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
