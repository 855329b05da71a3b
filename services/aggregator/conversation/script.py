"""A speaker's side of the call as one text, so each pattern runs once per call instead of once per run.

The speaker's runs (turns.py), in time order, each start with a line break (a run's segments are joined
by spaces), so a pattern finds where runs start by a literal; `folded` is that text lowercased for
matching. Offsets map back to the run and to the segment a match is in, whose start is the moment's
time.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from services.aggregator.conversation.text import fold, sentence_bounds
from services.aggregator.conversation.turns import Run


@dataclass(frozen=True, slots=True)
class Script:
    text: str
    folded: str
    runs: list[Run]  # this speaker's runs, in time order
    run_offsets: list[int]  # where each of `runs` starts in `text`
    segment_offsets: list[int]  # where each of their segments starts in `text`
    segment_starts: list[float]  # ... and its start_s

    def run_at(self, at: int) -> int:
        return bisect_right(self.run_offsets, at) - 1

    def bounds(self, i: int) -> tuple[int, int]:
        """Where run `i` starts and ends in `text`."""
        end = self.run_offsets[i + 1] - 1 if i + 1 < len(self.runs) else len(self.text)
        return self.run_offsets[i], end

    def start_at(self, at: int) -> float:
        """The start of the segment holding offset `at`."""
        return self.segment_starts[bisect_right(self.segment_offsets, at) - 1]

    def sentence(self, at: int) -> tuple[int, int]:
        """The sentence holding offset `at`, within its run."""
        return sentence_bounds(self.folded, *self.bounds(self.run_at(at)), at)


def script(runs: Sequence[Run]) -> Script:
    """The script of `runs` (one speaker's, in time order)."""
    run_offsets: list[int] = []
    segment_offsets: list[int] = []
    segment_starts: list[float] = []
    at = 1
    for i, run in enumerate(runs):
        run.at = i
        run_offsets.append(at)
        for segment in run.segments:
            segment_offsets.append(at)
            segment_starts.append(segment.start_s)
            at += len(segment.text) + 1
    text = "".join(["\n" + " ".join([segment.text for segment in run.segments]) for run in runs])
    return Script(text, fold(text), list(runs), run_offsets, segment_offsets, segment_starts)
