"""deal facts by deal

`salesloop import` asks, for every chunk of an export, which of its deals' creations, wins and
losses the tenant already has (services/importer/known.py), by tenant and deal id. Without an index
that reads every deal fact of the tenant per chunk, a cost that grows with the tenant's history. The
index is written only by deal events, a small share of the stream.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 19:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_deal_facts_tenant_deal_id", "deal_facts", ["tenant", "deal_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_deal_facts_tenant_deal_id", table_name="deal_facts")
