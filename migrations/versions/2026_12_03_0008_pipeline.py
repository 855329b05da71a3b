"""pipeline

Pipeline history (SPEC 5.8): `deal_changes` (every change of a deal in event time, insert-only) and
what the aggregator recomputes from a deal's changes: `pipeline_deals` (one row per deal),
`deal_stage_stays` (each stay in a stage) and `contact_activity` (the latest call, email or meeting
with a deal's contact). All four are derived from the archives: `salesloop rebuild` recomputes them.
`pipeline_stages` holds a tenant's stage order and probabilities.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deal_changes",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("deal_id", sa.String(length=200), nullable=False),
        sa.Column("change_id", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("rep_id", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("tenant", "deal_id", "change_id", name=op.f("pk_deal_changes")),
    )
    op.create_index(
        "ix_deal_changes_tenant_deal_id_kind_at", "deal_changes", ["tenant", "deal_id", "kind", "at"]
    )
    op.create_table(
        "pipeline_deals",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("deal_id", sa.String(length=200), nullable=False),
        sa.Column("rep_id", sa.String(length=200), nullable=True),
        sa.Column("created_rep_id", sa.String(length=200), nullable=True),
        sa.Column("contact_id", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=8), server_default="open", nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stage", sa.Text(), nullable=True),
        sa.Column("stage_entered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("amount", sa.Numeric(precision=20, scale=4), nullable=True),
        sa.Column("close_date", sa.Date(), nullable=True),
        sa.Column("forecast_category", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant", "deal_id", name=op.f("pk_pipeline_deals")),
    )
    op.create_index(
        "ix_pipeline_deals_tenant_status_close_date", "pipeline_deals", ["tenant", "status", "close_date"]
    )
    op.create_index("ix_pipeline_deals_tenant_created_at", "pipeline_deals", ["tenant", "created_at"])
    op.create_index("ix_pipeline_deals_tenant_closed_at", "pipeline_deals", ["tenant", "closed_at"])
    op.create_index("ix_pipeline_deals_tenant_contact_id", "pipeline_deals", ["tenant", "contact_id"])
    op.create_table(
        "deal_stage_stays",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("deal_id", sa.String(length=200), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next", sa.Text(), nullable=True),
        sa.Column("rep_id", sa.String(length=200), nullable=True),
        sa.Column("deal_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reached_later", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("won_after", sa.Boolean(), server_default="false", nullable=False),
        sa.PrimaryKeyConstraint("tenant", "deal_id", "entered_at", "stage", name=op.f("pk_deal_stage_stays")),
    )
    op.create_index(
        "ix_deal_stage_stays_tenant_deal_created_at", "deal_stage_stays", ["tenant", "deal_created_at"]
    )
    op.create_index(
        "ix_deal_stage_stays_tenant_stage_left_at", "deal_stage_stays", ["tenant", "stage", "left_at"]
    )
    op.create_index(
        "ix_deal_stage_stays_tenant_stage_entered_at", "deal_stage_stays", ["tenant", "stage", "entered_at"]
    )
    op.create_table(
        "contact_activity",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("contact_id", sa.Text(), nullable=False),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "contact_id", name=op.f("pk_contact_activity")),
    )
    op.create_table(
        "pipeline_stages",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("probability", sa.Numeric(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant"], ["tenants.slug"], name=op.f("fk_pipeline_stages_tenant_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant", "position", name=op.f("pk_pipeline_stages")),
    )


def downgrade() -> None:
    op.drop_table("pipeline_stages")
    op.drop_table("contact_activity")
    op.drop_index("ix_deal_stage_stays_tenant_stage_entered_at", table_name="deal_stage_stays")
    op.drop_index("ix_deal_stage_stays_tenant_stage_left_at", table_name="deal_stage_stays")
    op.drop_index("ix_deal_stage_stays_tenant_deal_created_at", table_name="deal_stage_stays")
    op.drop_table("deal_stage_stays")
    op.drop_index("ix_pipeline_deals_tenant_contact_id", table_name="pipeline_deals")
    op.drop_index("ix_pipeline_deals_tenant_closed_at", table_name="pipeline_deals")
    op.drop_index("ix_pipeline_deals_tenant_created_at", table_name="pipeline_deals")
    op.drop_index("ix_pipeline_deals_tenant_status_close_date", table_name="pipeline_deals")
    op.drop_table("pipeline_deals")
    op.drop_index("ix_deal_changes_tenant_deal_id_kind_at", table_name="deal_changes")
    op.drop_table("deal_changes")
