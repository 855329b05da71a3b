"""Segments -> turns (SPEC 5.7). A turn is a run of consecutive segments of one speaker; a back-channel
("mhm", "yeah, right") is a turn of at most 4 acknowledgement words. Back-channels are set aside: the
segments of one speaker on either side of them form one turn, so the turns left alternate speakers and
every boundary between them is a switch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, NamedTuple

from services.aggregator.conversation.text import HAS_WORD, LINE_BREAKS, is_backchannel

SPEAKERS = ("rep", "buyer")


class Segment(NamedTuple):  # a tuple: sorting compares start, then end, speaker, text
    start_s: float
    end_s: float
    speaker: str
    text: str


@dataclass(slots=True)
class Turn:
    """Consecutive segments of one speaker (back-channels of the other in between set aside)."""

    speaker: str
    segments: list[Segment]
    start_s: float
    end_s: float  # the latest end of its segments
    backchannel: bool = False
    previous: Turn | None = None  # the turn before it (None for the first and for back-channels)
    at: int = -1  # its index in its speaker's Script


def parse_segments(transcript: Sequence[Mapping[str, Any]]) -> list[Segment]:
    """The segments that carry words, sorted by start (ties by end, speaker, text: any input order of the
    same segments gives the same list). A segment ending before it starts is taken to end at its start;
    a speaker other than rep or buyer (the wire format admits none) is left out."""
    segments = []
    has_word = HAS_WORD.search
    for raw in transcript:
        speaker, text = raw.get("speaker"), raw.get("text")
        if speaker not in SPEAKERS or not isinstance(text, str) or has_word(text) is None:
            continue
        if not text.isprintable():  # line breaks separate turns in a Script (script.py)
            text = text.translate(LINE_BREAKS)
        start, end = float(raw.get("start_s") or 0.0), float(raw.get("end_s") or 0.0)
        segments.append(Segment(start, end if end > start else start, speaker, text.strip()))
    segments.sort()
    return segments


def split_turns(segments: Sequence[Segment]) -> tuple[list[Turn], list[Turn]]:
    """(turns, back-channels), each in time order; consecutive turns have different speakers."""
    runs: list[list[Segment]] = []
    for segment in segments:
        if runs and runs[-1][0].speaker == segment.speaker:
            runs[-1].append(segment)
        else:
            runs.append([segment])
    merged: list[list[Segment]] = []
    backchannels: list[Turn] = []
    for run in runs:
        if is_backchannel(run[0].text if len(run) == 1 else " ".join([s.text for s in run])):
            backchannels.append(_turn(run, backchannel=True))
        elif merged and merged[-1][0].speaker == run[0].speaker:
            merged[-1].extend(run)
        else:
            merged.append(run)
    turns = [_turn(run) for run in merged]
    for before, after in pairwise(turns):
        after.previous = before
    return turns, backchannels


def _turn(segments: list[Segment], *, backchannel: bool = False) -> Turn:
    end = max([s.end_s for s in segments]) if len(segments) > 1 else segments[0].end_s
    return Turn(segments[0].speaker, segments, segments[0].start_s, end, backchannel)
