"""A speaker's side of the call as one text, so each pattern runs once per call instead of once per run.

The speaker's runs (turns.py), in time order, each start with a line break (a run's segments are joined
by spaces), so a pattern finds where runs start by a literal; `folded` is that text lowercased for
matching. Offsets map back to the run and to the segment a match is in, whose start is the moment's
time. Both scripts are made from the sorted segments together, and what the analysis asks of a run
(where it is, when it was said, its words, whether it is a back-channel) is kept in lists indexed by
the run, made once.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from services.aggregator.conversation.text import (
    ACKNOWLEDGEMENT,
    BACKCHANNEL_MAX_CHARS,
    BACKCHANNEL_MAX_WORDS,
    fold,
    sentence_bounds,
)
from services.aggregator.conversation.turns import Segment


@dataclass(frozen=True, slots=True)
class Script:
    speaker: str
    opens: bool  # whether its first run is the call's first: runs alternate speakers from there
    text: str
    folded: str
    words: int
    run_offsets: list[int]  # where each of its runs starts in `text`
    run_ends: list[int]  # ... and ends (before the next run's line break)
    run_spans: list[tuple[float, float]]  # each run's first start_s and latest end_s
    run_words: list[int]  # each run's number of words
    backchannels: list[bool]  # whether each run is a back-channel
    segment_offsets: list[int]  # where each of its segments starts in `text`
    segment_starts: list[float]  # ... and its start_s
    segment_ends: list[float]  # ... and its end_s

    def run_at(self, at: int) -> int:
        return bisect_right(self.run_offsets, at) - 1

    def sentence(self, at: int) -> tuple[int, int]:
        """The sentence holding offset `at`, within its run."""
        i = bisect_right(self.run_offsets, at) - 1
        return sentence_bounds(self.folded, self.run_offsets[i], self.run_ends[i], at)


def scripts(segments: Sequence[Segment]) -> tuple[Script, Script]:
    """The rep's and the buyer's script of the (sorted, non-empty) segments."""
    speakers = [segment[2] for segment in segments]
    # a segment opens a run when the one before it is the other speaker's (or there is none)
    opens = [before != speaker for before, speaker in zip(["", *speakers[:-1]], speakers, strict=True)]
    rep = _script("rep", speakers[0] == "rep", segments, opens)
    return rep, _script("buyer", not rep.opens, segments, opens)


def _script(speaker: str, first: bool, segments: Sequence[Segment], opens: list[bool]) -> Script:
    mine = [(segment, run) for segment, run in zip(segments, opens, strict=True) if segment[2] == speaker]
    pieces = [("\n" if run else " ") + segment[3] for segment, run in mine]
    starts = [segment[0] for segment, _ in mine]
    ends = [segment[1] for segment, _ in mine]
    words = [segment[4] for segment, _ in mine]
    firsts = [i for i, (_, run) in enumerate(mine) if run]  # each run's first segment
    afters = [*firsts[1:], len(mine)] if firsts else []  # ... and the one after its last
    spans = [
        (starts[i], ends[i] if i + 1 == j else max(ends[i:j])) for i, j in zip(firsts, afters, strict=True)
    ]
    run_words = [words[i] if i + 1 == j else sum(words[i:j]) for i, j in zip(firsts, afters, strict=True)]
    text = "".join(pieces)
    folded = fold(text)
    segment_offsets = list(accumulate(map(len, pieces[:-1]), initial=1)) if pieces else []
    run_offsets = [segment_offsets[i] for i in firsts]
    run_ends = [at - 1 for at in run_offsets[1:]] + [len(text)] if run_offsets else []
    backchannels = _backchannels(folded, run_offsets, run_ends, run_words)
    return Script(
        speaker,
        first,
        text,
        folded,
        sum(words),
        run_offsets,
        run_ends,
        spans,
        run_words,
        backchannels,
        segment_offsets,
        starts,
        ends,
    )


def _backchannels(
    folded: str, run_offsets: list[int], run_ends: list[int], run_words: list[int]
) -> list[bool]:
    """Whether each run is a back-channel (`text.is_backchannel`), matched in the folded script: folding
    a run alone gives the same letters (but maybe a final sigma, which no acknowledgement holds)."""
    fullmatch = ACKNOWLEDGEMENT.fullmatch
    return [
        hi - lo <= BACKCHANNEL_MAX_CHARS
        and words <= BACKCHANNEL_MAX_WORDS
        and fullmatch(folded, lo, hi) is not None
        for lo, hi, words in zip(run_offsets, run_ends, run_words, strict=True)
    ]


def in_time_order(a: Script, b: Script) -> tuple[list[str], list[tuple[float, float]], list[bool]]:
    """Both scripts' runs in time order, as each run's speaker, span and whether it is a back-channel:
    runs alternate speakers, starting with the script that opens the call."""
    first, second = (a, b) if a.opens else (b, a)
    n = len(first.run_spans) + len(second.run_spans)
    speakers = [first.speaker, second.speaker] * (n // 2) + [first.speaker] * (n % 2)
    spans = first.run_spans + second.run_spans
    spans[0::2], spans[1::2] = first.run_spans, second.run_spans
    backchannels = first.backchannels + second.backchannels
    backchannels[0::2], backchannels[1::2] = first.backchannels, second.backchannels
    return speakers, spans, backchannels
