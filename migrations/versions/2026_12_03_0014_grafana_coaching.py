"""grafana coaching

The Sales feedback dashboard's priorities and weekly trend panels read the coaching snapshots: the
read-only Grafana role (0002) may select `coaching_snapshot_weeks` and `coaching_snapshots`. Both hold
rep ids, peer groups and the coaching numbers only, no contact or vendor identity.

Revision ID: 0014
Revises: 0011
Create Date: 2026-12-03 19:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One table per statement, the role spelled out: tests/deploy/test_dashboards.py reads the grants
    # from these lines.
    op.execute("GRANT SELECT ON coaching_snapshot_weeks TO salesloop_grafana")
    op.execute("GRANT SELECT ON coaching_snapshots TO salesloop_grafana")


def downgrade() -> None:
    op.execute("REVOKE SELECT ON coaching_snapshots, coaching_snapshot_weeks FROM salesloop_grafana")
