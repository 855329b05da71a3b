"""What a call's analysis is: the metric and tactic names and the two result records (SPEC 5.7)."""

from __future__ import annotations

from dataclasses import dataclass

from services.core.models.conversations import CALL_METRICS, TACTICS

__all__ = ["METRICS", "TACTICS", "CallAnalysis", "Moment"]

# The names are the tables' (services.core.models.conversations), where the fold stores them.
METRICS: tuple[str, ...] = CALL_METRICS


@dataclass(frozen=True, slots=True)
class Moment:
    """One Voss tactic heard in the call: who used it, when (the start of the segment it is in), what."""

    tactic: str
    speaker: str
    start_s: float
    text: str


@dataclass(frozen=True, slots=True)
class CallAnalysis:
    words: int  # 0 for a transcript without segments (or without a word in them)
    metrics: dict[str, float | int | None]  # every key of METRICS; all None when words == 0
    moments: tuple[Moment, ...]  # sorted by start_s
    rep_speech_s: float  # seconds in which the rep speaks: the talk_ratio feed (SPEC 5.1, 5.7)
    buyer_speech_s: float
