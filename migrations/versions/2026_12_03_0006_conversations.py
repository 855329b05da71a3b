"""conversations

Conversation analysis (SPEC 5.7): `call_analyses`, one row per call with a transcript (the analysis
of the transcript delivered last, and the call's facts once the call is folded), and
`conversation_rollups`, their additive sums per rep and rep-local day, which the reads take per-rep
and team numbers from without touching a transcript. Both are derived from the event archive:
`salesloop rebuild` recomputes them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_analyses",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("call_event_id", sa.String(length=200), nullable=False),
        sa.Column("rep_id", sa.String(length=200), nullable=True),
        sa.Column("contact_id", sa.String(length=200), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("local_day", sa.Date(), nullable=True),
        sa.Column("duration_s", sa.Numeric(precision=20, scale=3), nullable=True),
        sa.Column("talk_reported", sa.Boolean(), nullable=True),
        sa.Column("transcript_event_id", sa.String(length=200), nullable=False),
        sa.Column("transcript_received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("words", sa.Integer(), nullable=False),
        sa.Column("rep_speech_s", sa.Float(), nullable=False),
        sa.Column("buyer_speech_s", sa.Float(), nullable=False),
        sa.Column("rep_talk_share", sa.Float(), nullable=True),
        sa.Column("longest_monologue_s", sa.Float(), nullable=True),
        sa.Column("longest_story_s", sa.Float(), nullable=True),
        sa.Column("interactivity", sa.Float(), nullable=True),
        sa.Column("patience_s", sa.Float(), nullable=True),
        sa.Column("rep_questions", sa.Integer(), nullable=True),
        sa.Column("buyer_questions", sa.Integer(), nullable=True),
        sa.Column("open_questions", sa.Integer(), nullable=True),
        sa.Column("moments", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant", "call_event_id", name=op.f("pk_call_analyses")),
    )
    op.create_index(
        "ix_call_analyses_tenant_contact_id", "call_analyses", ["tenant", "contact_id"], unique=False
    )
    op.create_index(
        "ix_call_analyses_waiting",
        "call_analyses",
        ["tenant", "call_event_id"],
        unique=False,
        postgresql_where=sa.text("occurred_at IS NULL"),
    )
    op.create_table(
        "conversation_rollups",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("rep_id", sa.String(length=200), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("calls_analysed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "rep_talk_share_sum", sa.Numeric(precision=30, scale=6), server_default="0", nullable=False
        ),
        sa.Column("rep_talk_share_n", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "longest_monologue_s_sum", sa.Numeric(precision=30, scale=6), server_default="0", nullable=False
        ),
        sa.Column("longest_monologue_s_n", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "longest_story_s_sum", sa.Numeric(precision=30, scale=6), server_default="0", nullable=False
        ),
        sa.Column("longest_story_s_n", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("interactivity_sum", sa.Numeric(precision=30, scale=6), server_default="0", nullable=False),
        sa.Column("interactivity_n", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("patience_s_sum", sa.Numeric(precision=30, scale=6), server_default="0", nullable=False),
        sa.Column("patience_s_n", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rep_questions_sum", sa.Numeric(precision=30, scale=6), server_default="0", nullable=False),
        sa.Column("rep_questions_n", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "buyer_questions_sum", sa.Numeric(precision=30, scale=6), server_default="0", nullable=False
        ),
        sa.Column("buyer_questions_n", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "open_questions_sum", sa.Numeric(precision=30, scale=6), server_default="0", nullable=False
        ),
        sa.Column("open_questions_n", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("label_moments", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("mirror_moments", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("calibrated_question_moments", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("no_oriented_question_moments", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("accusation_audit_moments", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("summary_moments", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("thats_right_moments", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("youre_right_moments", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("tenant", "rep_id", "day", name=op.f("pk_conversation_rollups")),
    )
    # The Sales feedback dashboard reads the sums (the 0002 role); never call_analyses, which holds text.
    op.execute("GRANT SELECT ON conversation_rollups TO salesloop_grafana")


def downgrade() -> None:
    op.drop_table("conversation_rollups")
    op.drop_index(
        "ix_call_analyses_waiting",
        table_name="call_analyses",
        postgresql_where=sa.text("occurred_at IS NULL"),
    )
    op.drop_index("ix_call_analyses_tenant_contact_id", table_name="call_analyses")
    op.drop_table("call_analyses")
