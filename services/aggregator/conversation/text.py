"""The shared text patterns: words, sentences, back-channels. Compiled once; matched on lowercase text
with typographic apostrophes made plain (`fold`), which keeps every character offset."""

from __future__ import annotations

import re

# A word: letters/digits, with inner apostrophes and hyphens ("don't", "uh-huh", "e-mail" are one).
WORD = re.compile(r"[^\W_]+(?:['\u2019\-][^\W_]+)*")

# A sentence: from a non-space character to a run of . ! ? followed by space or the end. A stop inside a
# token ("3.5", "e.g.x") does not end it. Group 1 is the closing punctuation ("" at the end of text).
SENTENCE = re.compile(r"[^\s.!?](?:[^.!?]|[.!?]+(?=[^\s.!?\"”')\]]))*([.!?]*)")

# SPEC 5.7's acknowledgement words (with their common spellings: "mm-hmm", "mhmm", "hmmm", "uh huh").
_ACK = (
    r"m+(?:-?h+m+)?|h+m+|uh[- ]?huh|yeah|yea|yes|yep|right|ok|okay|sure|got it|i see|exactly"
    r"|makes sense|true|great"
)
ACKNOWLEDGEMENT = re.compile(rf"[\W_]*(?:(?:{_ACK})(?![^\W_])[\W_]*)+")
BACKCHANNEL_MAX_WORDS = 4

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})


def fold(text: str) -> str:
    """Lowercase with plain apostrophes; same length as `text`, so offsets carry over."""
    lower = text.lower()
    if len(lower) != len(text):  # "İ" lowers to two characters: keep such characters as they are
        lower = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return lower.translate(_APOSTROPHES)


def count_words(text: str) -> int:
    return len(WORD.findall(text))


def is_backchannel(folded: str, words: int) -> bool:
    return words <= BACKCHANNEL_MAX_WORDS and ACKNOWLEDGEMENT.fullmatch(folded) is not None
