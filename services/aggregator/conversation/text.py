"""The shared text rules: words, sentence ends, back-channels. Patterns are compiled once and matched on
text that `fold` lowercased with plain apostrophes, which keeps every character offset."""

from __future__ import annotations

import re

# A word, for counting: a whitespace-separated token (segments without a letter or digit are dropped
# before anything is counted). For comparing words (mirrors): letters and digits with inner apostrophes
# and hyphens ("don't", "uh-huh", "e-mail" are one).
WORD = re.compile(r"[^\W_]+(?:['\-][^\W_]+)*")
HAS_WORD = re.compile(r"[^\W_]")

# A sentence ends with a run of . ! ? (closing quotes or brackets may follow) before a space or the end:
# a stop inside a token ("3.5", "e.g.x") does not end it. It is a question when that run holds a "?".
# The runs are bounded so that no text ("????...x") makes a scan quadratic.
SENTENCE_END = re.compile(r"[.!?]{1,8}[\"\u201d')\]]{0,4}(?=\s|$)")
QUESTION_END = re.compile(r"\?[.!?]{0,7}[\"\u201d')\]]{0,4}(?=\s|$)")
# How far from a phrase its sentence is looked for, either side: a longer sentence is cut there (at a
# space), so the work per match and a moment's text stay bounded whatever a transcript holds.
SENTENCE_REACH = 1000

# SPEC 5.7's acknowledgement words (with their common spellings: "mm-hmm", "mhmm", "hmmm", "uh huh").
# No two alternatives match the same text ("mm-hmm" is "mm", "-", "hmm"), so a failing match never
# tries a word's readings in every combination.
_ACK = (
    r"m+(?:h+m+)?|h+m+|uh[- ]?huh|yeah|yea|yes|yep|right|ok|okay|sure|got it|i see|exactly"
    r"|makes sense|true|great"
)
ACKNOWLEDGEMENT = re.compile(rf"[\W_]*(?:(?:{_ACK})(?![^\W_])[\W_]*)+")
BACKCHANNEL_MAX_WORDS = 4
BACKCHANNEL_MAX_CHARS = 60  # 4 acknowledgement words with their punctuation never take more

LINE_BREAKS = str.maketrans(dict.fromkeys("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029", " "))


def count_words(text: str) -> int:
    return len(text.split())


def fold(text: str) -> str:
    """Lowercase with plain apostrophes; as long as `text`, so offsets carry over."""
    lower = text.lower()
    if len(lower) != len(text):  # "İ" lowers to two characters: keep such characters as they are
        lower = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    if "\u2019" in lower or "\u2018" in lower:
        lower = lower.replace("\u2019", "'").replace("\u2018", "'")
    return lower


def is_backchannel(text: str) -> bool:
    """Whether `text` (one speaker's run of segments) is at most 4 words, all acknowledgements."""
    if len(text) > BACKCHANNEL_MAX_CHARS or count_words(text) > BACKCHANNEL_MAX_WORDS:
        return False
    return ACKNOWLEDGEMENT.fullmatch(fold(text)) is not None


def sentence_bounds(text: str, lo: int, hi: int, at: int) -> tuple[int, int]:
    """The sentence of text[lo:hi] holding offset `at`: from after the last sentence end before `at`
    (spaces skipped) to the end of its own sentence end (or `hi`), each at most SENTENCE_REACH away."""
    if at - lo > SENTENCE_REACH:
        cut = text.find(" ", at - SENTENCE_REACH, at)
        lo = at - SENTENCE_REACH if cut < 0 else cut
    if at + SENTENCE_REACH < hi:
        hi = at + SENTENCE_REACH
    start = lo
    for m in SENTENCE_END.finditer(text, lo, hi):
        end = m.end()
        if end > at:
            break
        start = end
    else:
        end = hi
    while start < hi and text[start].isspace():
        start += 1
    return start, end
