"""Voss moments (SPEC 5.7): the tactics heard in a call's turns, each with who, when and the words.

Rep tactics are looked for in rep turns, `thats_right` and `youre_right` in buyer turns. A label and a
mirror must answer a buyer turn (the turn right before); a label and a summary must open the rep's turn.
A moment's text is the sentence it is in (a summary's and a mirror's: the rest of the turn) and its
start the start of the segment that sentence begins in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from services.aggregator.conversation import phrases as p
from services.aggregator.conversation.mirror import is_mirror
from services.aggregator.conversation.model import TACTICS, Moment
from services.aggregator.conversation.text import SENTENCE
from services.aggregator.conversation.turns import Turn

_ORDER = {tactic: i for i, tactic in enumerate(TACTICS)}


def find_moments(turns: Sequence[Turn]) -> tuple[Moment, ...]:
    found: list[Moment] = []
    previous: Turn | None = None
    for turn in turns:
        if turn.speaker == "rep":
            found.extend(_rep_moments(turn, previous))
        else:
            found.extend(_said(turn, "thats_right", p.THATS_RIGHT, doubted=True))
            found.extend(_said(turn, "youre_right", p.YOURE_RIGHT, doubted=True))
        previous = turn
    found.sort(key=lambda m: (m.start_s, _ORDER[m.tactic]))
    return tuple(found)


def _rep_moments(turn: Turn, buyer: Turn | None) -> Iterator[Moment]:
    text = turn.folded
    if buyer is not None and (m := p.LABEL.match(text)) is not None and not _stock(text, m.end()):
        yield _moment(turn, "label", m.end())
    if turn.words >= p.SUMMARY_MIN_WORDS and (m := p.SUMMARY.match(text)) is not None:
        start = _sentence(turn, m.end())[0]
        yield Moment("summary", "rep", turn.start_at(start), turn.text[start:].strip())
    if buyer is not None and is_mirror(turn, buyer):
        yield Moment("mirror", "rep", turn.start_s, turn.text)
    yield from _calibrated_questions(turn)
    yield from _said(turn, "no_oriented_question", p.NO_ORIENTED)
    yield from _said(turn, "accusation_audit", p.ACCUSATION_AUDIT)


def _stock(text: str, at: int) -> bool:
    """Whether the label phrase ending at `at` is a stock phrase about a plan, the time or the call."""
    end = _sentence_end(text, at)
    return bool(p.LABEL_STOCK_START.match(text, at, end) or p.LABEL_STOCK_ANYWHERE.search(text, at, end))


def _calibrated_questions(turn: Turn) -> Iterator[Moment]:
    text = turn.folded
    for opening in p.QUESTION_OPENING.finditer(text):
        at = opening.end()  # the question word
        sentence = SENTENCE.match(
            text, opening.start() + len(opening.group()) - len(opening.group().lstrip())
        )
        if sentence is None or "?" not in sentence.group(1):
            continue
        end = sentence.end()
        if p.NOT_CALIBRATED.match(text, at, end) or p.NOT_CALIBRATED_ANYWHERE.search(text, at, end):
            continue
        yield _moment(turn, "calibrated_question", at)


def _said(turn: Turn, tactic: str, pattern: re.Pattern[str], *, doubted: bool = False) -> Iterator[Moment]:
    """One moment per sentence of `turn` in which `pattern` is found (and, if `doubted` is set, not
    preceded in that sentence by words that doubt it or make it conditional: "if", "not sure")."""
    last_sentence = -1
    for m in pattern.finditer(turn.folded):
        start, _ = _sentence(turn, m.start())
        if start == last_sentence:
            continue
        if doubted and p.DOUBTED.search(turn.folded, start, m.start()):
            continue
        last_sentence = start
        yield _moment(turn, tactic, m.start())


def _moment(turn: Turn, tactic: str, at: int) -> Moment:
    start, end = _sentence(turn, at)
    return Moment(tactic, turn.speaker, turn.start_at(start), turn.text[start:end].strip())


def _sentence(turn: Turn, at: int) -> tuple[int, int]:
    """The bounds of the sentence of `turn` holding character `at`."""
    for m in SENTENCE.finditer(turn.folded):
        if m.end() > at:
            return (m.start(), m.end()) if m.start() <= at else (at, m.end())
    return at, len(turn.folded)


def _sentence_end(text: str, at: int) -> int:
    m = _SENTENCE_END.search(text, at)
    return m.end() if m else len(text)


_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
