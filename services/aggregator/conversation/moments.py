"""Voss moments (SPEC 5.7): the tactics heard in a call, each with who, when and the words.

Rep tactics are looked for in the rep's script, `thats_right` and `youre_right` in the buyer's. A label
and a mirror must answer a buyer turn (come right after buyer speech that is no back-channel); a label
and a summary must open what the rep says (a run: turns.py). A moment's text is the sentence it is in (a
summary's: the rest of its run; a mirror's: its run) and its start the start of the segment that
sentence begins in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from services.aggregator.conversation import phrases as p
from services.aggregator.conversation.mirror import is_mirror
from services.aggregator.conversation.model import TACTICS, Moment
from services.aggregator.conversation.questions import Opening
from services.aggregator.conversation.script import Script
from services.aggregator.conversation.text import count_words

_ORDER = {tactic: i for i, tactic in enumerate(TACTICS)}


def find_moments(rep: Script, buyer: Script, openings: Sequence[Opening]) -> tuple[Moment, ...]:
    found = [
        *_labels(rep),
        *_mirrors(rep, buyer),
        *_calibrated_questions(rep, openings),
        *_said(rep, "no_oriented_question", p.NO_ORIENTED),
        *_said(rep, "accusation_audit", p.ACCUSATION_AUDIT),
        *_summaries(rep),
        *_said(buyer, "thats_right", p.THATS_RIGHT, doubted=True),
        *_said(buyer, "youre_right", p.YOURE_RIGHT, doubted=True),
    ]
    found.sort(key=lambda m: (m.start_s, _ORDER[m.tactic], m.text))
    return tuple(found)


def _labels(rep: Script) -> Iterator[Moment]:
    text = rep.folded
    for m in p.LABEL.finditer(text):
        if not rep.runs[rep.run_at(m.start() + 1)].answers_buyer():
            continue
        start, end = rep.sentence(m.end())
        if p.LABEL_STOCK_START.match(text, m.end(), end) or p.LABEL_STOCK_ANYWHERE.search(text, m.end(), end):
            continue
        yield _moment(rep, "label", start, end)


def _summaries(rep: Script) -> Iterator[Moment]:
    for m in p.SUMMARY.finditer(rep.folded):
        i = rep.run_at(m.start() + 1)
        if rep.runs[i].backchannel or count_words(_slice(rep, i)) < p.SUMMARY_MIN_WORDS:
            continue
        yield _moment(rep, "summary", rep.sentence(m.end())[0], rep.bounds(i)[1])


_MIRROR_MAX_SPACES = 12  # a cheap first cut: six words hold fewer spaces


def _mirrors(rep: Script, buyer: Script) -> Iterator[Moment]:
    for i, run in enumerate(rep.runs):
        lo, hi = rep.bounds(i)
        heard = run.previous
        if heard is None or not run.answers_buyer() or rep.folded.count(" ", lo, hi) > _MIRROR_MAX_SPACES:
            continue
        if is_mirror(rep.folded[lo:hi], _slice(buyer, heard.at)):
            yield _moment(rep, "mirror", lo, hi)


def _slice(script: Script, i: int) -> str:
    lo, hi = script.bounds(i)
    return script.folded[lo:hi]


def _calibrated_questions(rep: Script, openings: Sequence[Opening]) -> Iterator[Moment]:
    text = rep.folded
    for q in openings:
        if not q.how_or_what:
            continue
        if p.NOT_CALIBRATED.match(text, q.word, q.end) or p.NOT_CALIBRATED_ANYWHERE.search(
            text, q.word, q.end
        ):
            continue
        yield _moment(rep, "calibrated_question", q.sentence, q.end)


def _said(
    script: Script, tactic: str, pattern: re.Pattern[str], *, doubted: bool = False
) -> Iterator[Moment]:
    """One moment per sentence in which `pattern` is found (and, with `doubted`, not preceded in that
    sentence by words that doubt it or make it conditional: "if", "not sure")."""
    text = script.folded
    taken = -1  # where the sentence of the last moment ends
    for m in pattern.finditer(text):
        if m.start() < taken or (m.start() > 0 and text[m.start() - 1].isalnum()):  # in a word
            continue
        start, end = script.sentence(m.start())
        if doubted and p.DOUBTED.search(text, start, m.start()):
            continue
        taken = end
        yield _moment(script, tactic, start, end)


def _moment(script: Script, tactic: str, start: int, end: int) -> Moment:
    speaker = script.runs[script.run_at(start)].speaker
    return Moment(tactic, speaker, script.start_at(start), script.text[start:end].strip())
