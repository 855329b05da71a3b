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
from services.aggregator.conversation.questions import question_openings
from services.aggregator.conversation.script import in_time_order, scripts
from services.aggregator.conversation.turns import merge_turns, parse_segments

__all__ = ["METRICS", "TACTICS", "CallAnalysis", "Moment", "analyse"]


def analyse(transcript: Sequence[Mapping[str, Any]]) -> CallAnalysis:
    """Analyse one call's transcript. Never raises on a transcript the wire format accepts."""
    segments = parse_segments(transcript)
    if not segments:
        return CallAnalysis(0, dict.fromkeys(METRICS), (), 0.0, 0.0)
    rep, buyer = scripts(segments)
    turns = merge_turns(*in_time_order(rep, buyer))
    openings = question_openings(rep.folded)
    speech = speech_seconds(rep), speech_seconds(buyer)
    metrics = call_metrics(segments, turns, rep, buyer, openings, speech)
    moments = find_moments(rep, buyer, openings)
    return CallAnalysis(rep.words + buyer.words, metrics, moments, *speech)
