"""Per-call talk metrics (SPEC 5.7), from the sorted segments, the turns and each speaker's script.

Seconds and rates are rounded to 6 decimals, as the rollups sum them: differences of float times
otherwise show as 13.399999999999999 s where the transcript said 13.4.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from statistics import median

from services.aggregator.conversation.questions import Opening
from services.aggregator.conversation.script import Script
from services.aggregator.conversation.text import QUESTION_END
from services.aggregator.conversation.turns import Segment, Turn

PATIENCE_CAP_S = 5.0
DECIMALS = 6


def speech_seconds(segments: Sequence[Segment]) -> tuple[float, float]:
    """(rep, buyer) seconds of speech: the length of the union of each speaker's segments, so a speaker's
    own overlapping segments count once and speech over the other speaker counts for both."""
    totals = {"rep": 0.0, "buyer": 0.0}
    spans: dict[str, list[float]] = {}
    for start, end, speaker, _ in segments:  # sorted by start
        span = spans.get(speaker)
        if span is None:
            spans[speaker] = [start, end]
        elif start <= span[1]:
            span[1] = max(span[1], end)
        else:
            totals[speaker] += span[1] - span[0]
            span[0], span[1] = start, end
    for speaker, (start, end) in spans.items():
        totals[speaker] += end - start
    return round(totals["rep"], DECIMALS), round(totals["buyer"], DECIMALS)


def call_metrics(
    segments: Sequence[Segment],
    turns: Sequence[Turn],
    rep: Script,
    buyer: Script,
    openings: Sequence[Opening],
    speech_s: tuple[float, float],
) -> dict[str, float | int | None]:
    rep_s, buyer_s = speech_s
    span_s = max(s.end_s for s in segments) - segments[0].start_s
    switches = max(len(turns) - 1, 0)
    return {
        "rep_talk_share": _rounded(rep_s / (rep_s + buyer_s)) if rep_s + buyer_s > 0 else None,
        "longest_monologue_s": _longest(turns, "rep"),
        "longest_story_s": _longest(turns, "buyer"),
        "interactivity": _rounded(switches * 60.0 / span_s) if span_s > 0 else None,
        "patience_s": _patience(turns),
        "rep_questions": len(QUESTION_END.findall(rep.folded)),
        "buyer_questions": len(QUESTION_END.findall(buyer.folded)),
        "open_questions": len(openings),
    }


def _rounded(value: float) -> float:
    return round(value, DECIMALS)


def _longest(turns: Sequence[Turn], speaker: str) -> float:
    return _rounded(max((t.end_s - t.start_s for t in turns if t.speaker == speaker), default=0.0))


def _patience(turns: Sequence[Turn]) -> float | None:
    pauses = [
        min(max(after.start_s - before.end_s, 0.0), PATIENCE_CAP_S)
        for before, after in pairwise(turns)
        if before.speaker == "buyer"
    ]
    return _rounded(float(median(pauses))) if pauses else None
