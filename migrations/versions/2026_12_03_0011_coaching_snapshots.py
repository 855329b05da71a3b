"""coaching snapshots

Coaching over time: `coaching_snapshot_weeks` (one row per tenant and week whose coaching the api
snapshot, written first so that exactly one process takes a week) and `coaching_snapshots` (each
rep's peer group, focus, priorities and standing on every coaching metric in that week).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "coaching_snapshot_weeks",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("window_start", sa.Date(), nullable=False),
        sa.Column("window_end", sa.Date(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reps", sa.Integer(), server_default="0", nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant"],
            ["tenants.slug"],
            name=op.f("fk_coaching_snapshot_weeks_tenant_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant", "week_start", name=op.f("pk_coaching_snapshot_weeks")),
    )
    op.create_table(
        "coaching_snapshots",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("rep_id", sa.String(length=200), nullable=False),
        sa.Column("team", sa.String(length=200), nullable=True),
        sa.Column("peer_group", sa.String(length=64), nullable=True),
        sa.Column("focus", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("priorities", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("metrics", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant", "week_start"],
            ["coaching_snapshot_weeks.tenant", "coaching_snapshot_weeks.week_start"],
            name=op.f("fk_coaching_snapshots_tenant_coaching_snapshot_weeks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant", "week_start", "rep_id", name=op.f("pk_coaching_snapshots")),
    )


def downgrade() -> None:
    op.drop_table("coaching_snapshots")
    op.drop_table("coaching_snapshot_weeks")
