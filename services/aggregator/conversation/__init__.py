"""Transcript analysis (SPEC 5.7): a call's transcript -> talk metrics and Voss moments. Pure: no I/O.

`analyse` takes the segments as they come on the wire (`{speaker, start_s, end_s, text}`, in any
order, possibly overlapping) and returns a `CallAnalysis`. The rules and their edge cases are written
down in docs/conversations.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.aggregator.conversation.metrics import call_metrics, speech_seconds
from services.aggregator.conversation.model import METRICS, TACTICS, CallAnalysis, Moment
from services.aggregator.conversation.moments import find_moments
from services.aggregator.conversation.turns import parse_segments, split_turns

__all__ = ["METRICS", "TACTICS", "CallAnalysis", "Moment", "analyse"]

_NO_METRICS: dict[str, float | int | None] = dict.fromkeys(METRICS)


def analyse(transcript: Sequence[Mapping[str, Any]]) -> CallAnalysis:
    """Analyse one call's transcript. Never raises on a transcript the wire format accepts."""
    segments = parse_segments(transcript)
    if not segments:
        return CallAnalysis(0, dict(_NO_METRICS), (), 0.0, 0.0)
    words = sum(s.words for s in segments)
    rep_s, buyer_s = speech_seconds(segments)
    turns, backchannels = split_turns(segments)
    metrics = call_metrics(segments, turns, backchannels, rep_s, buyer_s)
    moments = find_moments(turns)
    return CallAnalysis(words, metrics, moments, rep_s, buyer_s)
