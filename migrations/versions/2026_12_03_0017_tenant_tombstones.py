"""tenant tombstones

The register of deleted tenants (`salesloop tenants delete`, services/core/offboarding.py): one row
per deleted slug with the time of its deletion, kept apart from the rows the deletion erases, so the
aggregator drops that tenant's events still in Kafka instead of folding them again. Not readable by
the Grafana role.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 22:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenant_tombstones",
        sa.Column("slug", sa.String(length=63), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("slug", name=op.f("pk_tenant_tombstones")),
    )


def downgrade() -> None:
    op.drop_table("tenant_tombstones")
