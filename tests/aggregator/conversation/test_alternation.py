"""An `Alternation` finds exactly what its whole pattern finds, in text crowded with the words its phrases
open with, overlapping and inside other words; and it refuses literals that could match at one place."""

from __future__ import annotations

import random

import pytest

from services.aggregator.conversation import phrases
from services.aggregator.conversation.alternation import Alternation

PIECES = (
    "is ", "it ", "this ", "that ", "would ", "you ", "you're ", "you are ", "i know ", "i'm sure ", "i bet ",
    "what i'm ", "about to say ", "going to ", "may sound ", "might ", "sound ", "sounds ", "a bad idea ",
    "bad time ", "now ", "be ", "against ", "opposed to ", "object ", "have ", "had ", "did ", "do ", "i ",
    "catch ", "caught ", "given up on ", "probably ", "thinking ", "familiar ", "right ", "my question ",
    "crazy ", "to ", "if ", "th", "his", "s", "y", "a ", "really ", "idea", "time", "wondering ", "weren't ",
    "expecting ", "think ", "we're ", ". ", "\n",
    # whole phrases, so that they also start inside each other
    "is it a bad idea ", "is now a bad time ", "would it be crazy ", "would you be against ",
    "are you against ", "would you object ", "do you object ", "have you given up on ",
    "had you decided against ", "did you give up on ", "did i catch you at a bad time ",
    "have i caught you at a bad time ", "you're probably thinking ", "you might be wondering ",
    "you're going to think i'm ", "i'm sure you're thinking ", "i bet you are wondering ",
    "i know what you're thinking ", "i know you weren't expecting ", "i know this sounds ",
    "this might sound ", "that may sound ", "it will sound ", "what i'm about to say might sound ",
    "my question may sound ", "you're going to think i'm sure you're thinking ", "i know this may sound ",
    "i know what i'm about to say might sound ",
)  # fmt: skip


def spans(matches: object) -> list[tuple[int, int]]:
    return [m.span() for m in matches]  # type: ignore[attr-defined]


@pytest.mark.parametrize("alternation", [phrases.NO_ORIENTED, phrases.ACCUSATION_AUDIT], ids=["no", "audit"])
def test_the_parts_find_what_the_whole_pattern_finds(alternation: Alternation) -> None:
    rnd = random.Random(2026)
    found = 0
    for _ in range(3000):
        text = "".join(rnd.choice(PIECES) for _ in range(rnd.randint(1, 40)))
        expected = spans(alternation.pattern.finditer(text))
        assert spans(alternation.finditer(text)) == expected, text
        found += len(expected)
    assert found > 1000  # the texts do hold the phrases, often overlapping


def test_literals_that_could_match_at_one_place_are_refused() -> None:
    with pytest.raises(ValueError, match="'i'"):
        Alternation(("i", "t"), ("it", " is"))
