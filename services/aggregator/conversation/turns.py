"""Segments -> turns (SPEC 5.7). A turn is a run of consecutive segments of one speaker; a back-channel
("mhm", "yeah, right") is a turn of at most 4 acknowledgement words. Back-channels are set aside: the
segments of one speaker on either side of them form one turn, so the turns left alternate speakers and
every boundary between them is a switch."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.aggregator.conversation.text import BACKCHANNEL_MAX_WORDS, count_words, fold, is_backchannel

SPEAKERS = ("rep", "buyer")


@dataclass(frozen=True, slots=True)
class Segment:
    start_s: float
    end_s: float
    speaker: str
    text: str
    words: int


@dataclass(slots=True)
class Turn:
    """Consecutive segments of one speaker (back-channels of the other in between set aside)."""

    speaker: str
    segments: list[Segment]
    text: str = field(init=False)  # the segments' text joined by single spaces
    folded: str = field(init=False)  # `text` lowercased, for matching (same offsets)
    words: int = field(init=False)
    start_s: float = field(init=False)
    end_s: float = field(init=False)  # the latest end of its segments
    _offsets: list[int] = field(init=False)  # where each segment's text starts in `text`

    def __post_init__(self) -> None:
        self.text = " ".join(s.text for s in self.segments)
        self.folded = fold(self.text)
        self.words = sum(s.words for s in self.segments)
        self.start_s = self.segments[0].start_s
        self.end_s = max(s.end_s for s in self.segments)
        offsets, at = [], 0
        for s in self.segments:
            offsets.append(at)
            at += len(s.text) + 1
        self._offsets = offsets

    def start_at(self, offset: int) -> float:
        """The start of the segment holding character `offset` of `text`."""
        return self.segments[bisect_right(self._offsets, offset) - 1].start_s


def parse_segments(transcript: Sequence[Mapping[str, Any]]) -> list[Segment]:
    """The segments that carry words, sorted by start (ties by end, speaker, text: any input order of the
    same segments gives the same list). A segment ending before it starts is taken to end at its start;
    a speaker other than rep or buyer (the wire format admits none) is left out."""
    segments = []
    for raw in transcript:
        speaker = raw.get("speaker")
        text = raw.get("text")
        if speaker not in SPEAKERS or not isinstance(text, str):
            continue
        words = count_words(text)
        if not words:
            continue
        start = float(raw.get("start_s") or 0.0)
        end = max(start, float(raw.get("end_s") or 0.0))
        segments.append(Segment(start, end, speaker, text.strip(), words))
    segments.sort(key=lambda s: (s.start_s, s.end_s, s.speaker, s.text))
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
        words = sum(s.words for s in run)
        if words <= BACKCHANNEL_MAX_WORDS and is_backchannel(fold(" ".join(s.text for s in run)), words):
            backchannels.append(Turn(run[0].speaker, run))
        elif merged and merged[-1][0].speaker == run[0].speaker:
            merged[-1].extend(run)
        else:
            merged.append(run)
    return [Turn(run[0].speaker, run) for run in merged], backchannels
