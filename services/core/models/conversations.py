"""Conversation analysis (SPEC 5.7): one row per analysed call, and additive per-rep-day sums of it.

Written by the aggregator's conversation fold (services/aggregator/folds/conversations_sql.py); the
transcripts themselves stay in the event archive. The reads take per-rep and team numbers from
`conversation_rollups` alone and one call's from `call_analyses`.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Date, DateTime, Float, Index, Integer, Numeric, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base, counter

# The per-call metrics (SPEC 5.7), as the analysis names them; the question counts are integers.
CALL_METRICS: tuple[str, ...] = (
    "rep_talk_share",
    "longest_monologue_s",
    "longest_story_s",
    "interactivity",
    "patience_s",
    "rep_questions",
    "buyer_questions",
    "open_questions",
)
COUNT_METRICS: frozenset[str] = frozenset({"rep_questions", "buyer_questions", "open_questions"})
# Voss's tactics, as the analysis names a moment's `tactic`.
TACTICS: tuple[str, ...] = (
    "label",
    "mirror",
    "calibrated_question",
    "no_oriented_question",
    "accusation_audit",
    "summary",
    "thats_right",
    "youre_right",
)
# Per-call metric sums keep 6 decimals: each call's contribution is rounded so before it is added, so
# the sums do not depend on how the stream was cut into batches.
METRIC_SUM = Numeric(30, 6)


class CallAnalysis(Base):
    """The analysis of one call's winning transcript, and the call's facts.

    The call (`call.completed`) and its transcript (on the call itself, or a later `call.transcribed`
    naming it) arrive in any order: until the call is folded, `occurred_at` is null and the row has no
    rep, day or rollup contribution. Of several transcripts of one call the one delivered last wins:
    the largest (`transcript_received_at`, `transcript_event_id`). `talk_reported` says whether the call
    carried `rep_talk_s` and `buyer_talk_s` itself; when not, the analysis' speech seconds feed the
    5.1 `talk_ratio` sums. `erased_at` is set once the contact's personal data was erased: then
    `contact_id` is null and the moments keep no text.
    """

    __tablename__ = "call_analyses"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    call_event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    rep_id: Mapped[str | None] = mapped_column(String(200))
    contact_id: Mapped[str | None] = mapped_column(String(200))
    occurred_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    local_day: Mapped[date | None] = mapped_column(Date)  # in the rep's timezone
    duration_s: Mapped[Decimal | None] = mapped_column(Numeric(20, 3))
    talk_reported: Mapped[bool | None] = mapped_column(Boolean)
    transcript_event_id: Mapped[str] = mapped_column(String(200), nullable=False)
    transcript_received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    words: Mapped[int] = mapped_column(Integer, nullable=False)
    rep_speech_s: Mapped[float] = mapped_column(Float, nullable=False)
    buyer_speech_s: Mapped[float] = mapped_column(Float, nullable=False)
    rep_talk_share: Mapped[float | None] = mapped_column(Float)
    longest_monologue_s: Mapped[float | None] = mapped_column(Float)
    longest_story_s: Mapped[float | None] = mapped_column(Float)
    interactivity: Mapped[float | None] = mapped_column(Float)
    patience_s: Mapped[float | None] = mapped_column(Float)
    rep_questions: Mapped[int | None] = mapped_column(Integer)
    buyer_questions: Mapped[int | None] = mapped_column(Integer)
    open_questions: Mapped[int | None] = mapped_column(Integer)
    # [{tactic, speaker, start_s, text}] sorted by start_s; text null once erased
    moments: Mapped[list[Any]] = mapped_column(JSONB, nullable=False, server_default="[]")
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # Erasing a contact finds its calls.
        Index("ix_call_analyses_tenant_contact_id", "tenant", "contact_id"),
        # Transcripts waiting for their call: every batch with calls looks for them, and there are few.
        Index(
            "ix_call_analyses_waiting",
            "tenant",
            "call_event_id",
            postgresql_where=text("occurred_at IS NULL"),
        ),
    )


def _metric_sum() -> Mapped[Decimal]:
    return mapped_column(METRIC_SUM, nullable=False, server_default="0")


class ConversationRollup(Base):
    """Per rep per rep-local day (the call's day): additive sums of the analysed calls.

    `calls_analysed` counts calls whose transcript has words; per metric, `<metric>_sum` over the calls
    where it is not null and `<metric>_n` their count (a mean is sum / n); per tactic,
    `<tactic>_moments`. A replaced analysis moved its old contribution out and its new one in.
    """

    __tablename__ = "conversation_rollups"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    rep_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    calls_analysed: Mapped[int] = counter()
    rep_talk_share_sum: Mapped[Decimal] = _metric_sum()
    rep_talk_share_n: Mapped[int] = counter()
    longest_monologue_s_sum: Mapped[Decimal] = _metric_sum()
    longest_monologue_s_n: Mapped[int] = counter()
    longest_story_s_sum: Mapped[Decimal] = _metric_sum()
    longest_story_s_n: Mapped[int] = counter()
    interactivity_sum: Mapped[Decimal] = _metric_sum()
    interactivity_n: Mapped[int] = counter()
    patience_s_sum: Mapped[Decimal] = _metric_sum()
    patience_s_n: Mapped[int] = counter()
    rep_questions_sum: Mapped[Decimal] = _metric_sum()
    rep_questions_n: Mapped[int] = counter()
    buyer_questions_sum: Mapped[Decimal] = _metric_sum()
    buyer_questions_n: Mapped[int] = counter()
    open_questions_sum: Mapped[Decimal] = _metric_sum()
    open_questions_n: Mapped[int] = counter()
    label_moments: Mapped[int] = counter()
    mirror_moments: Mapped[int] = counter()
    calibrated_question_moments: Mapped[int] = counter()
    no_oriented_question_moments: Mapped[int] = counter()
    accusation_audit_moments: Mapped[int] = counter()
    summary_moments: Mapped[int] = counter()
    thats_right_moments: Mapped[int] = counter()
    youre_right_moments: Mapped[int] = counter()

    __table_args__ = (
        # Coaching's peer group sums these columns over a window for every rep of a tenant (TALK_COLUMNS
        # of services/api/coaching/queries.py): with them in an index on (tenant, day), that read is an
        # index-only scan of the window's days rather than a heap row fetched per rep and day.
        Index(
            "ix_conversation_rollups_tenant_day",
            "tenant",
            "day",
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
        ),
    )


# The counter columns of `conversation_rollups`, in table order: the fold writes rows in this order.
CONVERSATION_COUNTERS: tuple[str, ...] = tuple(
    c.name for c in ConversationRollup.__table__.columns if c.name not in ("tenant", "rep_id", "day")
)
