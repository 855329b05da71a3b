"""rep tenure and cost

Reps gain `left_at` (the first day away: inactive from that rep-local day on) and `monthly_cost`
(fully loaded, in the tenant's currency), SPEC 4 v2. Both nullable: existing reps have neither.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 16:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("reps", sa.Column("left_at", sa.Date(), nullable=True))
    op.add_column("reps", sa.Column("monthly_cost", sa.Numeric(precision=20, scale=4), nullable=True))


def downgrade() -> None:
    op.drop_column("reps", "monthly_cost")
    op.drop_column("reps", "left_at")
