"""Voss moments (SPEC 5.7): the tactics heard in a call, each with who, when and the words.

Rep tactics are looked for in the rep's script, `thats_right` and `youre_right` in the buyer's. A label
and a mirror must answer a buyer turn (come right after buyer speech that is no back-channel); a label
and a summary must open what the rep says (a run: turns.py). A moment's text is the sentence it is in (a
summary's: the rest of its run; a mirror's: its run) and its start the start of the segment that
sentence begins in.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence

from services.aggregator.conversation import phrases as p
from services.aggregator.conversation.alternation import Alternation
from services.aggregator.conversation.mirror import MIRROR_MAX_WORDS, is_mirror
from services.aggregator.conversation.model import TACTICS, Moment
from services.aggregator.conversation.questions import Opening
from services.aggregator.conversation.script import Script

_ORDER = {tactic: i for i, tactic in enumerate(TACTICS)}

# Each finder yields the span of text (offsets in its speaker's script) a moment of its tactic holds.
Spans = Iterator[tuple[int, int]]


def find_moments(rep: Script, buyer: Script, openings: Sequence[Opening]) -> tuple[Moment, ...]:
    answered = _answered(rep, buyer)
    found: list[tuple[float, int, str, int, str, str]] = []  # sorted as the moments are, then by finding
    for tactic, script, spans in (
        ("label", rep, _labels(rep, answered)),
        ("mirror", rep, _mirrors(rep, buyer, answered)),
        ("calibrated_question", rep, _calibrated_questions(rep, openings)),
        ("no_oriented_question", rep, _said(rep, p.NO_ORIENTED)),
        ("accusation_audit", rep, _said(rep, p.ACCUSATION_AUDIT)),
        ("summary", rep, _summaries(rep)),
        ("thats_right", buyer, _said(buyer, p.THATS_RIGHT, doubted=True)),
        ("youre_right", buyer, _said(buyer, p.YOURE_RIGHT, doubted=True)),
    ):
        order, text, speaker = _ORDER[tactic], script.text, script.speaker
        offsets, starts = script.segment_offsets, script.segment_starts  # of the segment a span starts in
        for start, end in spans:
            start_s = starts[bisect_right(offsets, start) - 1]
            found.append((start_s, order, text[start:end].strip(), len(found), tactic, speaker))
    found.sort()
    return tuple(Moment(tactic, speaker, start_s, text) for start_s, _, text, _, tactic, speaker in found)


def _answered(rep: Script, buyer: Script) -> list[int]:
    """For each rep run, the buyer run it answers, or -1: the buyer run right before it (runs alternate
    speakers), when neither is a back-channel."""
    shift = 1 if rep.opens else 0  # rep run i comes right after buyer run i - shift
    heard = buyer.backchannels
    return [
        i - shift if i >= shift and not backchannel and not heard[i - shift] else -1
        for i, backchannel in enumerate(rep.backchannels)
    ]


def _labels(rep: Script, answered: Sequence[int]) -> Spans:
    text = rep.folded
    for m in p.LABEL.finditer(text):
        if answered[rep.run_at(m.start() + 1)] < 0:
            continue
        after = m.end()
        start, end = rep.sentence(after)
        if p.LABEL_STOCK_START.match(text, after, end) or p.LABEL_STOCK_ANYWHERE.search(text, after, end):
            continue
        yield start, end


def _summaries(rep: Script) -> Spans:
    """A summary opens a run of SUMMARY_MIN_WORDS or more (the pattern starts at the run's line break), so
    it is looked for at the start of those runs only."""
    text, match = rep.folded, p.SUMMARY.match
    for lo, hi, words, backchannel in zip(
        rep.run_offsets, rep.run_ends, rep.run_words, rep.backchannels, strict=True
    ):
        m = match(text, lo - 1) if words >= p.SUMMARY_MIN_WORDS and not backchannel else None
        if m is not None:
            yield rep.sentence(m.end())[0], hi


_MIRROR_MAX_SPACES = 12  # a cut older than the count of words, kept: a mirror's words hold fewer spaces


def _mirrors(rep: Script, buyer: Script, answered: Sequence[int]) -> Spans:
    said = rep.folded
    for heard, lo, hi, words in zip(answered, rep.run_offsets, rep.run_ends, rep.run_words, strict=True):
        if heard < 0 or words > MIRROR_MAX_WORDS or said.count(" ", lo, hi) > _MIRROR_MAX_SPACES:
            continue
        if is_mirror(said[lo:hi], _slice(buyer, heard)):
            yield lo, hi


def _slice(script: Script, i: int) -> str:
    return script.folded[script.run_offsets[i] : script.run_ends[i]]


def _calibrated_questions(rep: Script, openings: Sequence[Opening]) -> Spans:
    text = rep.folded
    for sentence, word, end, how_or_what in openings:
        if not how_or_what:
            continue
        if p.NOT_CALIBRATED.match(text, word, end) or p.NOT_CALIBRATED_ANYWHERE.search(text, word, end):
            continue
        yield sentence, end


def _said(script: Script, pattern: re.Pattern[str] | Alternation, *, doubted: bool = False) -> Spans:
    """One moment per sentence in which `pattern` is found (and, with `doubted`, not preceded in that
    sentence by words that doubt it or make it conditional: "if", "not sure")."""
    text = script.folded
    taken = -1  # where the sentence of the last moment ends
    for m in pattern.finditer(text):
        at = m.start()
        if at < taken or (at > 0 and text[at - 1].isalnum()):  # in a word
            continue
        start, end = script.sentence(at)
        if doubted and p.DOUBTED.search(text, start, at):
            continue
        taken = end
        yield start, end
