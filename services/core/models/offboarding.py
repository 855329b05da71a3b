"""The register of deleted tenants (`salesloop tenants delete`, services/core/offboarding.py).

Kept apart from the tenant's own rows, which the deletion erases: it is what tells the aggregator that
events of the slug still in Kafka belong to a tenant that is gone. One row per slug, holding only the
slug and when it was last deleted.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, func
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base


class TenantTombstone(Base):
    __tablename__ = "tenant_tombstones"

    slug: Mapped[str] = mapped_column(String(63), primary_key=True)
    deleted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
