"""Per-call talk metrics (SPEC 5.7), from the sorted segments, the turns and each speaker's script.

Seconds and rates are rounded to 6 decimals, as the rollups sum them: differences of float times
otherwise show as 13.399999999999999 s where the transcript said 13.4.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from statistics import median

from services.aggregator.conversation.questions import Opening
from services.aggregator.conversation.script import Script
from services.aggregator.conversation.text import QUESTION_END
from services.aggregator.conversation.turns import Segment, Turn

PATIENCE_CAP_S = 5.0
DECIMALS = 6


def speech_seconds(script: Script) -> float:
    """The speaker's seconds of speech: the length of the union of their segments, so their own
    overlapping segments count once and speech over the other speaker counts for both."""
    starts, ends = script.segment_starts, script.segment_ends
    if not starts:
        return 0.0
    total = 0.0
    lo, hi = starts[0], ends[0]
    for start, end in zip(starts[1:], ends[1:], strict=True):  # sorted by start
        if start <= hi:
            if end > hi:
                hi = end
        else:
            total += hi - lo
            lo, hi = start, end
    return round(total + (hi - lo), DECIMALS)


def call_metrics(
    segments: Sequence[Segment],
    turns: Sequence[Turn],
    rep: Script,
    buyer: Script,
    openings: Sequence[Opening],
    speech_s: tuple[float, float],
) -> dict[str, float | int | None]:
    rep_s, buyer_s = speech_s
    span_s = max(map(itemgetter(1), segments)) - segments[0][0]
    switches = max(len(turns) - 1, 0)
    return {
        "rep_talk_share": _rounded(rep_s / (rep_s + buyer_s)) if rep_s + buyer_s > 0 else None,
        "longest_monologue_s": _longest(_of(turns, "rep")),
        "longest_story_s": _longest(_of(turns, "buyer")),
        "interactivity": _rounded(switches * 60.0 / span_s) if span_s > 0 else None,
        "patience_s": _patience(turns),
        "rep_questions": len(QUESTION_END.findall(rep.folded)),
        "buyer_questions": len(QUESTION_END.findall(buyer.folded)),
        "open_questions": len(openings),
    }


def _rounded(value: float) -> float:
    return round(value, DECIMALS)


def _of(turns: Sequence[Turn], speaker: str) -> Sequence[Turn]:
    """The speaker's turns: every other one, as turns alternate speakers."""
    return turns[0 if turns and turns[0][0] == speaker else 1 :: 2]


def _longest(turns: Sequence[Turn]) -> float:
    return _rounded(max([end - start for _, start, end in turns], default=0.0))


def _patience(turns: Sequence[Turn]) -> float | None:
    """The median pause from a buyer turn to the rep turn after it, each clipped to [0, PATIENCE_CAP_S]."""
    first = 0 if turns and turns[0][0] == "buyer" else 1  # the first buyer turn
    pauses = []
    for (_, _, end), (_, start, _) in zip(turns[first::2], turns[first + 1 :: 2], strict=False):
        pause = start - end
        pause = 0.0 if 0.0 > pause else pause
        pauses.append(PATIENCE_CAP_S if PATIENCE_CAP_S < pause else pause)
    return _rounded(float(median(pauses))) if pauses else None
