"""Per-call talk metrics (SPEC 5.7), from the sorted segments and their turns."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import pairwise
from statistics import median

from services.aggregator.conversation.text import SENTENCE
from services.aggregator.conversation.turns import Segment, Turn

PATIENCE_CAP_S = 5.0

# An open question opens, after a word or two of lead-in ("So, ", "And "), with one of these.
_LEAD_IN = r"(?:(?:so|and|but|okay|ok|well|now|then|alright|all right|right|yeah|um|uh)[\s,]+)*"
OPEN_QUESTION = re.compile(rf"{_LEAD_IN}(?:how|what|tell me|walk me through|help me understand)\b")


def speech_seconds(segments: Sequence[Segment]) -> tuple[float, float]:
    """(rep, buyer) seconds of speech: the length of the union of each speaker's segments, so a speaker's
    own overlapping segments count once and speech over the other speaker counts for both."""
    totals = {"rep": 0.0, "buyer": 0.0}
    open_span: dict[str, tuple[float, float]] = {}
    for s in segments:  # sorted by start
        span = open_span.get(s.speaker)
        if span is not None and s.start_s <= span[1]:
            open_span[s.speaker] = (span[0], max(span[1], s.end_s))
            continue
        if span is not None:
            totals[s.speaker] += span[1] - span[0]
        open_span[s.speaker] = (s.start_s, s.end_s)
    for speaker, (start, end) in open_span.items():
        totals[speaker] += end - start
    return totals["rep"], totals["buyer"]


def call_metrics(
    segments: Sequence[Segment],
    turns: Sequence[Turn],
    backchannels: Sequence[Turn],
    rep_s: float,
    buyer_s: float,
) -> dict[str, float | int | None]:
    span_s = max(s.end_s for s in segments) - segments[0].start_s
    switches = max(len(turns) - 1, 0)
    rep_questions, open_questions = _questions(t for t in (*turns, *backchannels) if t.speaker == "rep")
    buyer_questions, _ = _questions(t for t in (*turns, *backchannels) if t.speaker == "buyer")
    return {
        "rep_talk_share": rep_s / (rep_s + buyer_s) if rep_s + buyer_s > 0 else None,
        "longest_monologue_s": _longest(turns, "rep"),
        "longest_story_s": _longest(turns, "buyer"),
        "interactivity": switches * 60.0 / span_s if span_s > 0 else None,
        "patience_s": _patience(turns),
        "rep_questions": rep_questions,
        "buyer_questions": buyer_questions,
        "open_questions": open_questions,
    }


def _longest(turns: Sequence[Turn], speaker: str) -> float:
    return max((t.end_s - t.start_s for t in turns if t.speaker == speaker), default=0.0)


def _patience(turns: Sequence[Turn]) -> float | None:
    pauses = [
        min(max(after.start_s - before.end_s, 0.0), PATIENCE_CAP_S)
        for before, after in pairwise(turns)
        if before.speaker == "buyer"
    ]
    return float(median(pauses)) if pauses else None


def _questions(turns: Iterable[Turn]) -> tuple[int, int]:
    """(sentences ending in "?", those of them that are open questions) in the turns' text."""
    questions = opened = 0
    for turn in turns:
        for m in SENTENCE.finditer(turn.folded):
            if "?" in m.group(1):
                questions += 1
                opened += OPEN_QUESTION.match(m.group()) is not None
    return questions, opened
