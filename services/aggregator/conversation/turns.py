"""Segments -> runs -> turns (SPEC 5.7).

A run is what one speaker says between two things the other says: consecutive segments of one speaker.
A back-channel ("mhm", "yeah, right") is a run of at most 4 acknowledgement words. A turn is a run with
the back-channels set aside: the runs of one speaker on either side of the other's back-channels form
one turn, so turns alternate speakers and every boundary between them is a switch.

Talk metrics are measured on turns. Moments are found in runs: a back-channel does end what the rep was
saying ("A red line?" - "Mhm." is a mirror the buyer answered), though it is no switch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from services.aggregator.conversation.text import HAS_WORD, LINE_BREAKS, is_backchannel

SPEAKERS = ("rep", "buyer")


class Segment(NamedTuple):  # a tuple: sorting compares start, then end, speaker, text
    start_s: float
    end_s: float
    speaker: str
    text: str


@dataclass(slots=True)
class Run:
    speaker: str
    segments: list[Segment]
    backchannel: bool
    previous: Run | None  # the run before it (the other speaker's), None for the first
    at: int = -1  # its index in its speaker's Script (script.py)

    def answers_buyer(self) -> bool:
        """Whether this (a rep run) replies to a buyer turn: it is no back-channel and comes right after
        buyer speech that is none either (runs alternate speakers)."""
        before = self.previous
        return before is not None and not before.backchannel and not self.backchannel


class Turn(NamedTuple):
    speaker: str
    start_s: float  # its first segment's start
    end_s: float  # the latest end of its segments


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
        if not text.isprintable():  # line breaks separate runs in a Script (script.py)
            text = text.translate(LINE_BREAKS)
        start, end = float(raw.get("start_s") or 0.0), float(raw.get("end_s") or 0.0)
        segments.append(Segment(start, end if end > start else start, speaker, text.strip()))
    segments.sort()
    return segments


def split_runs(segments: Sequence[Segment]) -> list[Run]:
    """The runs of the (sorted) segments, in time order."""
    runs: list[Run] = []
    group: list[Segment] = []
    for segment in segments:
        if group and group[0].speaker != segment.speaker:
            runs.append(_run(group, runs[-1] if runs else None))
            group = []
        group.append(segment)
    if group:
        runs.append(_run(group, runs[-1] if runs else None))
    return runs


def _run(segments: list[Segment], previous: Run | None) -> Run:
    text = segments[0].text if len(segments) == 1 else " ".join([s.text for s in segments])
    return Run(segments[0].speaker, segments, is_backchannel(text), previous)


def merge_turns(runs: Sequence[Run]) -> list[Turn]:
    """The turns: runs without the back-channels, consecutive runs of one speaker merged."""
    turns: list[Turn] = []
    for run in runs:
        if run.backchannel:
            continue
        segments = run.segments
        end = segments[0].end_s if len(segments) == 1 else max([s.end_s for s in segments])
        if turns and turns[-1].speaker == run.speaker:
            last = turns[-1]
            if end > last.end_s:
                turns[-1] = Turn(last.speaker, last.start_s, end)
        else:
            turns.append(Turn(run.speaker, segments[0].start_s, end))
    return turns
