"""conversation read index

Coaching's peer group sums `conversation_rollups` over a window for every rep of a tenant, in the
statement that also sums `rollup_rep_daily`. The primary key (tenant, rep_id, day) serves that only as
a range per rep (or, before PostgreSQL 18, a scan of every day the tenant has), each row then fetched
from the heap: with a year of rollups for 200 reps the conversation sums cost as much as all the
other sums of the statement. An index on (tenant, day) that includes the columns coaching sums makes
them an index-only scan of the window's days. Rows change only when a call is analysed, so the index
costs the conversation fold little; the table holds a row per rep and day, so it builds quickly.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 16:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_conversation_rollups_tenant_day",
        "conversation_rollups",
        ["tenant", "day"],
        unique=False,
        postgresql_include=[
            "rep_id",
            "calls_analysed",
            "rep_talk_share_sum",
            "rep_talk_share_n",
            "longest_monologue_s_sum",
            "longest_monologue_s_n",
            "rep_questions_sum",
            "label_moments",
            "calibrated_question_moments",
        ],
    )


def downgrade() -> None:
    op.drop_index("ix_conversation_rollups_tenant_day", table_name="conversation_rollups")
