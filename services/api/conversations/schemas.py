"""Response bodies of the conversation routes (SPEC 5.7)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from pydantic.config import JsonDict

from services.api.kit.answers import AS_OF_EXAMPLE, WINDOW_EXAMPLE, AsOf, FromDay, ToDay, example

CALL_METRICS_EXAMPLE: JsonDict = {
    "rep_talk_share": 0.46,
    "longest_monologue_s": 74.5,
    "longest_story_s": 102.0,
    "interactivity": 4.1,
    "patience_s": 0.8,
    "rep_questions": 11,
    "buyer_questions": 4,
    "open_questions": 6,
}
MOMENT_EXAMPLE: JsonDict = {
    "tactic": "label",
    "speaker": "rep",
    "start_s": 131.2,
    "text": "It sounds like the renewal date is what worries you most.",
}
REP_METRICS_EXAMPLE: JsonDict = {
    "rep_talk_share": 0.52,
    "longest_monologue_s": 81.3,
    "longest_story_s": 64.0,
    "interactivity": 3.8,
    "patience_s": 0.6,
    "rep_questions": 9.5,
    "buyer_questions": 3.25,
    "open_questions": 4.0,
    "questions_per_call": 9.5,
    "label_per_call": 0.75,
    "mirror_per_call": 0.5,
    "calibrated_question_per_call": 1.25,
    "no_oriented_question_per_call": 0.0,
    "accusation_audit_per_call": 0.0,
    "summary_per_call": 0.25,
    "thats_right_per_call": 0.25,
    "youre_right_per_call": 0.5,
}
REP_EXAMPLE: JsonDict = {"rep_id": "r1", "team": "east", "calls_analysed": 4, "metrics": REP_METRICS_EXAMPLE}


class CallMetrics(BaseModel):
    """One call's numbers; all null for a transcript without segments."""

    model_config = example(CALL_METRICS_EXAMPLE)

    rep_talk_share: float | None = Field(description="Rep speech / (rep + buyer speech), overlap for both")
    longest_monologue_s: float | None = Field(description="The rep's longest turn, first start to last end")
    longest_story_s: float | None = Field(description="The buyer's longest turn; 0 without buyer speech")
    interactivity: float | None = Field(description="Speaker switches per minute of the transcript's span")
    patience_s: float | None = Field(
        description="Median pause from a buyer turn's end to the rep's next turn, each clipped to [0, 5]; "
        "null without a buyer-to-rep change"
    )
    rep_questions: int | None
    buyer_questions: int | None
    open_questions: int | None = Field(description="Rep questions opening with how, what, tell me, ...")


class Moment(BaseModel):
    """A Voss tactic heard in the call. `text` is null once erased (the contact's erasure, or the
    transcript retention): the moment still counts."""

    model_config = example(MOMENT_EXAMPLE)

    tactic: str
    speaker: str
    start_s: float
    text: str | None


class CallOut(BaseModel):
    model_config = example(
        {
            "event_id": "call-7",
            "rep_id": "r1",
            "contact_id": "c42",
            "occurred_at": "2026-10-14T15:02:00Z",
            "duration_s": 612.0,
            "transcript_event_id": "tr-7",
            "as_of": AS_OF_EXAMPLE,
            "words": 1430,
            "metrics": CALL_METRICS_EXAMPLE,
            "moments": [MOMENT_EXAMPLE],
        }
    )

    event_id: str = Field(description="The call's event id")
    rep_id: str | None = Field(description="Null until the call's own event names its rep")
    contact_id: str | None
    occurred_at: datetime | None = Field(description="When the call happened; null until its event came")
    duration_s: float | None
    transcript_event_id: str | None = Field(description="The event whose transcript was analysed")
    as_of: AsOf
    words: int = Field(description="Words of the transcript; 0 for one without segments (not analysed)")
    metrics: CallMetrics
    moments: list[Moment] = Field(description="Sorted by start_s")


class ConversationMetrics(BaseModel):
    """Means over the window's calls: each per-call metric over the calls that have it; questions and
    each tactic's moments per analysed call. Null without an analysed call."""

    model_config = example(REP_METRICS_EXAMPLE)

    rep_talk_share: float | None
    longest_monologue_s: float | None
    longest_story_s: float | None
    interactivity: float | None
    patience_s: float | None
    rep_questions: float | None
    buyer_questions: float | None
    open_questions: float | None
    questions_per_call: float | None = Field(description="Rep questions per analysed call")
    label_per_call: float | None
    mirror_per_call: float | None
    calibrated_question_per_call: float | None
    no_oriented_question_per_call: float | None
    accusation_audit_per_call: float | None
    summary_per_call: float | None
    thats_right_per_call: float | None
    youre_right_per_call: float | None


class RepConversationsOut(BaseModel):
    model_config = example({**REP_EXAMPLE, **WINDOW_EXAMPLE})

    rep_id: str
    team: str | None
    from_: FromDay
    to: ToDay
    as_of: AsOf
    calls_analysed: int = Field(description="Calls with a transcript of at least one segment")
    metrics: ConversationMetrics


class TeamMemberConversationsOut(BaseModel):
    model_config = example(REP_EXAMPLE)

    rep_id: str
    team: str | None
    calls_analysed: int
    metrics: ConversationMetrics


class TeamConversationsOut(BaseModel):
    model_config = example({"team": "east", **WINDOW_EXAMPLE, "reps": [REP_EXAMPLE]})

    team: str | None = Field(description="The team listed, or null for every team of the tenant")
    from_: FromDay
    to: ToDay
    as_of: AsOf
    reps: list[TeamMemberConversationsOut] = Field(
        description="Every active rep (of the team), and every other rep with calls analysed in the window"
    )
