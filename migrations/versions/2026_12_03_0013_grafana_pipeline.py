"""grafana pipeline

The Pipeline and forecast dashboard reads the deals' history: the read-only Grafana role (0002) may
select `pipeline_deals`, `deal_stage_stays`, `pipeline_stages`, `deal_changes` (a deal's close date
at the start of a quarter, for slipped deals) and `contact_activity` (when a deal's contact was last
called, emailed or met, for stale deals). They hold CRM ids, stages, amounts, dates and timestamps:
no name, address, text or secret.

Revision ID: 0013
Revises: 0014
Create Date: 2026-12-03 20:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("pipeline_deals", "deal_stage_stays", "pipeline_stages", "deal_changes", "contact_activity")


def upgrade() -> None:
    # One table per statement, the role spelled out: tests/deploy/test_dashboards.py reads the grants
    # from these lines.
    op.execute("GRANT SELECT ON pipeline_deals TO salesloop_grafana")
    op.execute("GRANT SELECT ON deal_stage_stays TO salesloop_grafana")
    op.execute("GRANT SELECT ON pipeline_stages TO salesloop_grafana")
    op.execute("GRANT SELECT ON deal_changes TO salesloop_grafana")
    op.execute("GRANT SELECT ON contact_activity TO salesloop_grafana")


def downgrade() -> None:
    op.execute(f"REVOKE SELECT ON {', '.join(TABLES)} FROM salesloop_grafana")
