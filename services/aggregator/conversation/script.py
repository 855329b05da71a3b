"""A speaker's side of the call as one text, so each pattern runs once per call instead of once per turn.

The speaker's turns and back-channels, in time order, each start with a line break (a turn's segments
are joined by spaces), so a pattern can find where turns start by a literal; `folded` is that text
lowercased for matching. Offsets map back to the turn and to the segment
a match is in, whose start is the moment's time.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from services.aggregator.conversation.text import fold, sentence_bounds
from services.aggregator.conversation.turns import Turn


@dataclass(frozen=True, slots=True)
class Script:
    text: str
    folded: str
    turns: list[Turn]  # turns and back-channels of this speaker, in time order
    turn_offsets: list[int]  # where each of `turns` starts in `text`
    segment_offsets: list[int]  # where each of their segments starts in `text`
    segment_starts: list[float]  # ... and its start_s

    def turn_at(self, at: int) -> int:
        return bisect_right(self.turn_offsets, at) - 1

    def bounds(self, i: int) -> tuple[int, int]:
        """Where turn `i` starts and ends in `text`."""
        end = self.turn_offsets[i + 1] - 1 if i + 1 < len(self.turns) else len(self.text)
        return self.turn_offsets[i], end

    def start_at(self, at: int) -> float:
        """The start of the segment holding offset `at`."""
        return self.segment_starts[bisect_right(self.segment_offsets, at) - 1]

    def sentence(self, at: int) -> tuple[int, int]:
        """The sentence holding offset `at`, within its turn."""
        return sentence_bounds(self.folded, *self.bounds(self.turn_at(at)), at)


def script(turns: Sequence[Turn]) -> Script:
    """The script of `turns` (one speaker's, in time order)."""
    turn_offsets: list[int] = []
    segment_offsets: list[int] = []
    segment_starts: list[float] = []
    at = 1
    for i, turn in enumerate(turns):
        turn.at = i
        turn_offsets.append(at)
        for segment in turn.segments:
            segment_offsets.append(at)
            segment_starts.append(segment.start_s)
            at += len(segment.text) + 1
    text = "".join(["\n" + " ".join([segment.text for segment in turn.segments]) for turn in turns])
    return Script(text, fold(text), list(turns), turn_offsets, segment_offsets, segment_starts)
