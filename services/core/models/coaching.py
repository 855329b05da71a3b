"""Coaching over time: each tenant's coaching as it stood at the end of a week, kept as it was.

The api takes the snapshot itself, once per tenant and week (services/api/coaching/snapshots.py).
`coaching_snapshot_weeks` is written first, in the snapshot's own transaction: its primary key is
what lets exactly one of several processes take a week (INSERT ... ON CONFLICT DO NOTHING), and a
week without a row there has no snapshot, whatever rows a failed attempt would have written.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base


class CoachingSnapshotWeek(Base):
    """A tenant's week (Monday `week_start`, in the tenant's timezone) whose coaching was taken at
    `taken_at`, over the days `window_start`..`window_end`, when `as_of` was the tenant's watermark;
    `reps` coached (the active reps then)."""

    __tablename__ = "coaching_snapshot_weeks"

    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.slug", ondelete="CASCADE"), primary_key=True)
    week_start: Mapped[date] = mapped_column(Date, primary_key=True)
    window_start: Mapped[date] = mapped_column(Date, nullable=False)
    window_end: Mapped[date] = mapped_column(Date, nullable=False)
    as_of: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reps: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CoachingSnapshot(Base):
    """One rep's coaching in a snapshot week: its peer group, focus and priorities (SPEC 5.2, 5.9) and
    its standing on every coaching metric, `{metric: {value, sample, peers, peer_median, percentile,
    gap_pct, z}}`, as the coaching answer gave them for the week's window."""

    __tablename__ = "coaching_snapshots"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    week_start: Mapped[date] = mapped_column(Date, primary_key=True)
    rep_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    team: Mapped[str | None] = mapped_column(String(200))
    peer_group: Mapped[str | None] = mapped_column(String(64))
    focus: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    priorities: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant", "week_start"],
            ["coaching_snapshot_weeks.tenant", "coaching_snapshot_weeks.week_start"],
            ondelete="CASCADE",
        ),
    )
