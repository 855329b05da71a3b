"""leads stage indexes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 12:10:00.000000

The demand report counts the leads that turned MQL or SQL in a window. Without an index on those
instants it reads every lead the tenant ever had, so its cost grew with the tenant's history. Most
leads never reach either stage: the indexes are partial, and a new lead does not touch them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_leads_tenant_mql_at",
        "leads",
        ["tenant", "mql_at"],
        unique=False,
        postgresql_where=sa.text("mql_at IS NOT NULL"),
    )
    op.create_index(
        "ix_leads_tenant_sql_at",
        "leads",
        ["tenant", "sql_at"],
        unique=False,
        postgresql_where=sa.text("sql_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_leads_tenant_sql_at", table_name="leads", postgresql_where=sa.text("sql_at IS NOT NULL")
    )
    op.drop_index(
        "ix_leads_tenant_mql_at", table_name="leads", postgresql_where=sa.text("mql_at IS NOT NULL")
    )
